"""Export EdgeTAM as the four graphs + `.npy` constants + manifest that the tracker reads (via convert/export_onnx.py).

Each graph is verified in ONNX Runtime against the PyTorch module it was traced
from, on random inputs, within `export_onnx.TOLERANCES`; the modules themselves
are compared with the official EdgeTAM code in tests/test_edgetam.py. The
manifest names the family and the memory layout: a memory frame is
`tokens_per_frame` perceiver latents of `mem_dim` channels (not a feature map),
`memory_pos` is the perceiver's (1, T, mem_dim) position encoding to which the
tracker adds the slot's temporal encoding, and pointers carry no temporal
encoding.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from loguru import logger

from convert import graph_export as base
from convert import submodels
from convert.checkpoint import CheckpointError, read_state_dict
from convert.edgetam import graphs
from convert.edgetam.model import FAMILY, check_image_size, load_edgetam
from convert.family import EDGETAM, check_family, family_of

# Memory-attention cases the verification runs: the fewest memories the tracker feeds and the most.
_SMALLEST = (1, 1)


def load_checkpoint(path: Path, family: str | None, model_size: str | None, image_size: int) -> torch.nn.Module:
    """An EdgeTAM checkpoint in EdgeTAM's architecture; CheckpointError for anything else."""
    state_dict = read_state_dict(path)
    check_family(family, family_of(state_dict, path), path)
    if model_size is not None:
        raise CheckpointError(
            f"checkpoint {path} holds EdgeTAM weights, which have one size; --model-size {model_size} is for "
            f"SAM 2.1 checkpoints: leave it out"
        )
    check_image_size(image_size)
    return load_edgetam(state_dict, path, image_size)


def memory_attention_inputs(model, consts, frames: int, ptrs: int, generator) -> dict[str, torch.Tensor]:
    """Padded graph inputs with `frames` real memories and `ptrs` real pointers, random filler elsewhere."""
    side = model.image_size // model.backbone_stride
    tokens = model.spatial_perceiver.num_tokens
    slots, max_ptrs = model.num_maskmem, model.max_obj_ptrs_in_encoder
    memory_pos = torch.from_numpy(consts["memory_pos"]) + torch.from_numpy(consts["maskmem_tpos_enc"])[:, None, :]
    memory_pos[frames:] = torch.randn((slots - frames, tokens, model.mem_dim), generator=generator)
    return {
        "vision_feat": torch.randn((1, model.hidden_dim, side, side), generator=generator),
        "vision_pos": torch.from_numpy(consts["vision_pos"]),
        "memory": torch.randn((slots, tokens, model.mem_dim), generator=generator),
        "memory_pos": memory_pos,
        "memory_valid": (torch.arange(slots) < frames).float(),
        "obj_ptrs": torch.randn((max_ptrs, model.hidden_dim), generator=generator),
        "obj_ptr_valid": (torch.arange(max_ptrs) < ptrs).float(),
    }


def build_submodels(model, consts) -> list[base.SubModel]:
    g = torch.Generator().manual_seed(0)
    shapes = base.feature_shapes(model)
    return [
        base.SubModel("image_encoder", graphs.ImageEncoder(model),
                      {"image": torch.randn(shapes["image"], generator=g)}, {}),
        base.SubModel("memory_attention", model.memory_attention,
                      memory_attention_inputs(model, consts, 3, 5, g), {}),
        base.SubModel("memory_encoder", graphs.MemoryEncoder(model), base.memory_encoder_inputs(model, False, g), {}),
        base.SubModel(
            "mask_decoder",
            submodels.MaskDecoder(model),
            base.mask_decoder_inputs(model, 2, g),
            {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
        ),
    ]


def verification_inputs(model, consts, name: str) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    if name == "image_encoder":
        return [{"image": torch.randn(base.feature_shapes(model)["image"], generator=g)}]
    if name == "memory_attention":
        most = (model.num_maskmem, model.max_obj_ptrs_in_encoder)
        return [memory_attention_inputs(model, consts, f, p, g) for f, p in (_SMALLEST, most)]
    if name == "memory_encoder":
        return [base.memory_encoder_inputs(model, b, g) for b in (False, True)]
    # Both presence gates, and a correction: clicks with the previous logits as a mask prompt.
    cases = ((1, 0.0, False), (2, -1.0, False), (3, 0.0, True))
    return [base.mask_decoder_inputs(model, n, g, gate, prompt) for n, gate, prompt in cases]


def verify(path: Path, sub: base.SubModel, model, consts, variant: str) -> dict[str, float]:
    """Max abs error per output of the graph at `path` against `sub.module`; ExportError above tolerance."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = type(sub.module).output_names
    # An input the model does not use (e.g. the object score without a no-object embedding) is not in the graph.
    graph_inputs = {i.name for i in session.get_inputs()}
    worst: dict[str, float] = {}
    for feeds in verification_inputs(model, consts, sub.name):
        with torch.no_grad():
            expected = sub.module(**feeds)
        expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
        graph_feeds = {k: v for k, v in feeds.items() if k in graph_inputs}
        for out, (err, scale) in base.max_errors(session, graph_feeds, expected, names).items():
            worst[out] = max(worst.get(out, 0.0), err)
            if err / max(scale, 1.0) > base.TOLERANCES[variant]:
                raise base.ExportError(
                    f"{path.name}: output '{out}' differs from PyTorch by {err:.3g} (range {scale:.3g}), "
                    f"above the {variant} tolerance {base.TOLERANCES[variant]}"
                )
    for out, err in worst.items():
        logger.info("  {:<28} {:<20} max abs diff {:.3e}", path.name, out, err)
    return worst


def memory_layout(model) -> dict:
    """What the tracker needs to hold and feed EdgeTAM's memories."""
    perceiver = model.spatial_perceiver
    return {
        "kind": "tokens",
        "tokens_per_frame": perceiver.num_tokens,
        "global_latents": perceiver.shape.num_latents,
        "grid_latents": perceiver.shape.num_latents_2d,
        "channels": model.mem_dim,
        "position_encoding": "memory_pos",
        "position_encoding_shape": list(perceiver.position_encoding().shape),
        "memory_attention_layers": len(model.memory_attention.layers),
        "obj_ptr_temporal_encoding": bool(model.add_tpos_enc_to_obj_ptrs),
        "no_obj_embed_spatial": model.no_obj_embed_spatial is not None,
    }


def export(
    checkpoint: Path,
    out: Path,
    image_size: int = 512,
    family: str | None = None,
    model_size: str | None = None,
    simplify_graphs: bool = False,
    fp16: bool = False,
    int8: bool = False,
) -> dict:
    """Export an EdgeTAM checkpoint into `out`; returns the manifest. Raises CheckpointError / ExportError."""
    started = time.perf_counter()
    model = load_checkpoint(checkpoint, family, model_size, image_size)
    out.mkdir(parents=True, exist_ok=True)
    consts = graphs.constants(model)
    models, errors = base.export_graphs(
        build_submodels(model, consts), out, base.variants(fp16, int8), simplify_graphs,
        lambda path, sub, variant: verify(path, sub, model, consts, variant),
    )
    manifest = base.write_folder(
        out, checkpoint, model, consts, models, errors, family=FAMILY, model_size=EDGETAM,
        memory_layout=memory_layout(model),
    )
    logger.info("exported EdgeTAM at {} px to {} in {:.1f}s", image_size, out, time.perf_counter() - started)
    return manifest
