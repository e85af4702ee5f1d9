"""A STRESS checkpoint: random SAM 2.1 weights with a trained model's activations where float16 breaks.

`scripts/make_stress_checkpoint.py` writes it and prints its activation report.

Random weights (convert/random_checkpoint.py) have small activations, so
float16 looks harmless on them. Trained vision transformers do not: a few
channels of the residual stream carry large, nearly constant values, and the
LayerNorms that read the stream learn to ignore those channels. Published
observations this follows:
- outlier channels of the residual stream, orders of magnitude above the rest
  and the same across tokens ("massive activations", Sun et al. 2024, in LLMs
  and ViTs such as CLIP and DINOv2; outlier features, Dettmers et al. 2022;
  outlier LayerNorm dimensions, Kovaleva et al. 2021);
- in the SAM family they break float16: residual values of |x| ≈ 180 overflowed
  a float16 LayerNorm variance (microsoft/onnxruntime pull request 28442),
  float16 SAM gave bad masks until its LayerNorms ran in float32
  (facebookresearch/segment-anything issue 696), and Ascend's own SAM port
  breaks a LayerNorm fusion in the decoder;
- attention logits with a large range (sharp attention of trained models).

What is changed in the seeded random checkpoint (hiera-t, official format):
- image encoder: in the first block of every Hiera stage the MLP's output bias
  adds STAGE_OFFSETS to two channels (MASSIVE_CHANNELS, the second with the
  opposite sign at half the size), so every later LayerNorm of the stage reads
  values of hundreds to thousands; the sum of squared deviations a float16
  accumulator would hold is far above 65504, and single squares above 256² are
  too. Memory attention: the same with MEMORY_OFFSET from its first layer's MLP.
- every LayerNorm that reads such a stream is set as a trained one would be:
  weight 0 on the outlier channels and, on the others, weight and bias scaled
  so that the output equals the random model's (the outliers fix the
  normaliser's mean and std, which the scale undoes using the random model's
  typical input std, measured on a textured frame). The FPN neck and the
  stage-change projections ignore the outlier channels, as trained ones do.
  So the float32 model behaves like the random one, and float16 overflow shows
  as a change.
- query and key projections of every attention are multiplied by
  LOGIT_GAIN, so softmax logits span tens to hundreds.

EdgeTAM's stress checkpoint (`edgetam_stress_state_dict`, the same seeded
random format as convert/random_checkpoint.py) changes what of this its
networks have: RepViT-M1 is a convolutional network whose BatchNorms fold into
its convolutions (no LayerNorm reads a residual stream there), so its image
encoder is left random; its two memory-attention layers get the same outlier
channels (MEMORY_OFFSET from the first layer's MLP, LayerNorms that ignore
them) and sharpened queries and keys; the spatial perceiver's attentions get
sharpened queries and keys (their logits decide which memory tokens survive).
The printed table (and docs/ascend.md) gives the measured statistics per node:
largest |x|, the channels that reach it, the largest float16-accumulated sum of
squares, the largest logit range.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from convert.checkpoint import CHECKPOINT_NAMES, build_model
from convert.edgetam.model import CHECKPOINT_NAME as EDGETAM_CHECKPOINT_NAME
from convert.edgetam.model import build_edgetam
from convert.random_checkpoint import random_edgetam_state_dict, random_state_dict

MODEL_SIZE = "t"
# The state dict is size-free; calibration and the printed report run at these sizes.
CALIBRATION_SIZE = 256
DEFAULT_REPORT_SIZE = 256
DEFAULT_OUT = Path("checkpoints") / f"stress_{CHECKPOINT_NAMES[MODEL_SIZE]}"
EDGETAM_DEFAULT_OUT = Path("checkpoints") / f"stress_{EDGETAM_CHECKPOINT_NAME}"
# SAM 2's input normalisation (sam2/utils/misc.py).
IMAGE_MEAN = (0.485, 0.456, 0.406)
IMAGE_STD = (0.229, 0.224, 0.225)
# Outlier channels of a stream of width D: D // 3 and 2 * D // 3 (arbitrary, fixed).
MASSIVE_CHANNELS = (1 / 3, 2 / 3)
# Offset per Hiera stage (96, 192, 384, 768 channels); the second channel gets -offset / 2.
STAGE_OFFSETS = (300.0, 600.0, 1500.0, 3000.0)
MEMORY_OFFSET = 1000.0
SECOND_CHANNEL_SIGN = -0.5
# Query and key weights are each multiplied by sqrt(LOGIT_GAIN): logits by LOGIT_GAIN.
LOGIT_GAIN = 16.0


def _massive(width: int, offset: float) -> dict[int, float]:
    first, second = (int(width * f) for f in MASSIVE_CHANNELS)
    return {first: offset, second: SECOND_CHANNEL_SIGN * offset}


def _calibration_frame(image_size: int) -> torch.Tensor:
    """The textured clip's first frame, resized and normalised as SAM 2 expects."""
    from app.media.textured_clip import make_frames

    frame = torch.from_numpy(make_frames(1)[0][0]).permute(2, 0, 1)[None].float() / 255.0
    frame = F.interpolate(frame, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return (frame - torch.tensor(IMAGE_MEAN)[:, None, None]) / torch.tensor(IMAGE_STD)[:, None, None]


@torch.no_grad()
def _input_scales(model: nn.Module, seed: int, edgetam: bool = False) -> dict[str, float]:
    """Median per-token std of every LayerNorm input of the image encoder and memory attention."""
    scales: dict[str, float] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, nn.LayerNorm) and name.startswith(("image_encoder.", "memory_attention.")):
            def record(mod, args, name=name):
                scales[name] = float(args[0].float().std(dim=-1).median())

            hooks.append(module.register_forward_pre_hook(record))
    try:
        out = model.forward_image(_calibration_frame(CALIBRATION_SIZE))
        generator = torch.Generator().manual_seed(seed)
        if edgetam:
            _edgetam_memory_attention(model, out, generator)
        else:
            feat = out["backbone_fpn"][-1].flatten(2).permute(2, 0, 1)
            pos = out["vision_pos_enc"][-1].flatten(2).permute(2, 0, 1)
            memory = torch.randn(feat.shape[0], 1, model.mem_dim, generator=generator)
            memory_pos = torch.randn(feat.shape[0], 1, model.mem_dim, generator=generator)
            model.memory_attention(curr=feat, curr_pos=pos, memory=memory, memory_pos=memory_pos)
    finally:
        for hook in hooks:
            hook.remove()
    return scales


def _edgetam_memory_attention(model: nn.Module, image: dict, generator: torch.Generator) -> torch.Tensor:
    """EdgeTAM's static memory attention on the frame's features, every memory slot and pointer present."""
    frames, tokens = model.num_maskmem, model.spatial_perceiver.num_tokens
    memory = torch.randn(frames, tokens, model.mem_dim, generator=generator)
    memory_pos = torch.randn(frames, tokens, model.mem_dim, generator=generator)
    pointers = torch.randn(model.max_obj_ptrs_in_encoder, model.hidden_dim, generator=generator)
    return model.memory_attention(
        image["backbone_fpn"][-1], image["vision_pos_enc"][-1], memory, memory_pos, torch.ones(frames),
        pointers, torch.ones(pointers.shape[0]),
    )


def _ignore_outliers(norm: nn.LayerNorm, massive: dict[int, float], input_std: float) -> None:
    """Set `norm` so that, reading a stream with `massive` constant channels, it outputs what it did without them.

    With outliers m_c in D channels, mean and std of every token are about
    mu = sum(m)/D and S = sqrt(sum(m^2)/D - mu^2), so for an ordinary channel
    (x - mu)/S * w' + b' = (x / input_std) * w + b needs w' = w S / input_std and
    b' = b + w mu / input_std; the outlier channels get weight and bias 0.
    """
    width = norm.normalized_shape[0]
    values = torch.tensor(list(massive.values()), dtype=torch.float64)
    mean = float(values.sum()) / width
    std = math.sqrt(float((values**2).sum()) / width - mean**2)
    outliers = torch.tensor(list(massive))
    weight = norm.weight.detach().clone()
    norm.bias += weight * mean / input_std
    norm.weight *= std / input_std
    norm.weight[outliers] = 0.0
    norm.bias[outliers] = 0.0


def _sharpen(linear: nn.Linear, rows: slice) -> None:
    gain = math.sqrt(LOGIT_GAIN)
    linear.weight[rows] *= gain
    if linear.bias is not None:
        linear.bias[rows] *= gain


@torch.no_grad()
def _stress_image_encoder(model: nn.Module, scales: dict[str, float]) -> None:
    trunk, neck = model.image_encoder.trunk, model.image_encoder.neck
    stage_starts = {0} | {end + 1 for end in trunk.stage_ends[:-1]}
    massive: dict[int, float] = {}
    for index, block in enumerate(trunk.blocks):
        prefix = f"image_encoder.trunk.blocks.{index}"
        if massive:
            _ignore_outliers(block.norm1, massive, scales[f"{prefix}.norm1"])
        if block.dim != block.dim_out:
            block.proj.weight[:, list(massive)] = 0.0  # the next stage's shortcut starts without them
            massive = {}
        if massive:
            _ignore_outliers(block.norm2, massive, scales[f"{prefix}.norm2"])
        if index in stage_starts:
            stage = sorted(stage_starts).index(index)
            added = _massive(block.dim_out, STAGE_OFFSETS[stage])
            for channel, value in added.items():
                block.mlp.layers[-1].bias[channel] += value
            massive = added  # a stage starts without outliers: the previous ones ended at its projection
        q_and_k = slice(0, 2 * block.dim_out)
        _sharpen(block.attn.qkv, q_and_k)
        if index in trunk.stage_ends:
            for conv in neck.convs:
                if conv.conv.in_channels == block.dim_out:
                    conv.conv.weight[:, list(massive)] = 0.0


@torch.no_grad()
def _stress_memory_attention(model: nn.Module, scales: dict[str, float]) -> None:
    attention = model.memory_attention
    width = attention.norm.normalized_shape[0]
    massive: dict[int, float] = {}
    for index, layer in enumerate(attention.layers):
        prefix = f"memory_attention.layers.{index}"
        for norm in ("norm1", "norm2", "norm3"):
            if massive:
                _ignore_outliers(getattr(layer, norm), massive, scales[f"{prefix}.{norm}"])
        if index == 0:
            massive = _massive(width, MEMORY_OFFSET)
            for channel, value in massive.items():
                layer.linear2.bias[channel] += value
        for attn in (layer.self_attn, layer.cross_attn_image):
            _sharpen(attn.q_proj, slice(None))
            _sharpen(attn.k_proj, slice(None))
    _ignore_outliers(attention.norm, massive, scales["memory_attention.norm"])


@torch.no_grad()
def _stress_perceiver(model: nn.Module) -> None:
    for layer in model.spatial_perceiver.layers:
        for attn in (layer.attn, layer.self_attn):
            inner = attn.to_q.out_features
            _sharpen(attn.to_q, slice(None))
            _sharpen(attn.to_kv, slice(0, inner))  # keys first, then values


def edgetam_stress_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """The seeded random EdgeTAM checkpoint with memory attention's outlier channels and sharpened attention."""
    torch.manual_seed(seed)
    model = build_edgetam(CALIBRATION_SIZE)
    model.load_state_dict(random_edgetam_state_dict(seed))
    scales = _input_scales(model, seed, edgetam=True)
    _stress_memory_attention(model, scales)
    _stress_perceiver(model)
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def stress_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """The seeded random checkpoint with outlier channels, matching LayerNorms and sharpened attention."""
    torch.manual_seed(seed)
    model = build_model(MODEL_SIZE, CALIBRATION_SIZE)
    model.load_state_dict(random_state_dict(MODEL_SIZE, seed))
    scales = _input_scales(model, seed)
    _stress_image_encoder(model, scales)
    _stress_memory_attention(model, scales)
    return {name: tensor.clone() for name, tensor in model.state_dict().items()}


def activation_report(model_dir: Path, num_frames: int, threads: int | None = None) -> list[str]:
    """Track the textured clip with the export in `model_dir`; the per-node statistics as Markdown rows."""
    from acl_models.bundle import ModelBundle
    from acl_models.manifest import SUBMODELS, load_constants, load_manifest
    from acl_models.onnx_runner import OnnxRunner
    from app.samurai.config import TrackerConfig
    from app.samurai.tracker import SamuraiTracker
    from convert.activations import ActivationProbe, format_stats
    from convert.precision_study import clip_frames

    frames, box = clip_frames("textured", num_frames)
    manifest = load_manifest(model_dir)
    constants = load_constants(manifest)
    probes, runners = {}, {}
    for name in SUBMODELS:
        path = model_dir / manifest.models[name]["file"]
        probes[name] = ActivationProbe(path, threads)
        runners[name] = _ProbedRunner(OnnxRunner(path, threads=threads), probes[name])
    with ModelBundle(manifest, constants, runners) as bundle:
        tracker = SamuraiTracker(bundle, TrackerConfig(), num_frames=len(frames))
        for i, frame in enumerate(frames):
            tracker.step(i, frame, box if i == 0 else None)
    header = [
        "| sub-model | node | op | max abs(x) | top channels (max abs) | max sum (x - mean)^2 (x 65504) "
        "| max logit range |",
        "|---|---|---|---|---|---|---|",
    ]
    return header + [row for name in SUBMODELS for row in format_stats(name, probes[name].stats)]


class _ProbedRunner:
    """An ONNX Runtime runner that also feeds every call's inputs to an ActivationProbe."""

    def __init__(self, runner, probe):
        self.runner, self.probe = runner, probe
        self.path, self.input_names, self.output_names = runner.path, runner.input_names, runner.output_names
        self.takes_pixels = runner.takes_pixels

    def run(self, inputs):
        self.probe.record(inputs)
        return self.runner.run(inputs)

    def close(self):
        self.runner.close()
