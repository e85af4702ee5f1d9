"""The official EdgeTAM code, run in its own environment (scripts/setup_official_edgetam.sh) on this project's inputs.

The official package's top-level name is `sam2`, like SAM 2.1's in .venv, so it
runs in a subprocess with that environment's Python and the tests-and-benchmark-only
`torchvision` stand-in (scripts/official_edgetam/standin/) on its path. The
environment is made on first use when CI's set-up has not made it already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-edgetam-official"
SETUP = ROOT / "scripts" / "setup_official_edgetam.sh"
HERE = Path(__file__).resolve().parent / "official_edgetam"
RUNNER = HERE / "run_official.py"
PREDICTOR = HERE / "run_predictor.py"
STANDIN = ROOT / "scripts" / "official_edgetam" / "standin"
# Building the official model and running a few modules on one thread.
TIMEOUT_S = 600
# The project's modules and graphs compute what the official ones compute in another order: float32 rounding only.
REL_TOL = 1e-4
# Tracking against the official predictor: float32 graph-vs-PyTorch differences and bfloat16 memories on both sides
# (as tests/test_parity.py).
LOGIT_ATOL = 1e-2
MIN_MASK_IOU = 0.99


def export_edgetam(checkpoint: Path, tmp_path_factory, image_size: int) -> Path:
    """`checkpoint` exported at `image_size` into a fresh folder (a module's export at a size no session fixture has)."""
    from convert.export_onnx import export

    folder = tmp_path_factory.mktemp(f"edgetam_{image_size}")
    export(checkpoint, folder, image_size=image_size)
    return folder


def official_python() -> Path:
    """The official environment's Python, made first if needed (once: test workers wait for each other)."""
    python = VENV / "bin" / "python"
    with FileLock(str(ROOT / ".venv-edgetam-official.lock")):
        if not python.exists():
            subprocess.run(["bash", str(SETUP), sys.executable, str(VENV)], check=True, cwd=ROOT)
    return python


def official_config() -> Path:
    """The official `sam2/configs/edgetam.yaml` the official environment installed."""
    official_python()
    (path,) = {p.resolve() for p in VENV.glob("lib*/python3*/site-packages/sam2/configs/edgetam.yaml")}
    return path


def _run(script: Path, *args: object, work: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(STANDIN)}
    done = subprocess.run([str(official_python()), str(script), *map(str, args)],
                          env=env, cwd=work, capture_output=True, text=True, timeout=TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"official EdgeTAM run failed:\n{done.stderr[-3000:]}")


def run_official(checkpoint: Path, image_size: int, cases: dict, work: Path) -> dict:
    """{case: [official outputs]} plus "state_shapes", for `cases` = {case: {input: tensor}}."""
    cases_path, out_path = work / "official_cases.pt", work / "official_out.pt"
    torch.save(cases, cases_path)
    _run(RUNNER, checkpoint, image_size, cases_path, out_path, work=work)
    return torch.load(out_path, weights_only=True)


def run_official_predictor(checkpoint: Path, image_size: int, folder: Path, box_xyxy, work: Path,
                           samurai: dict | None = None) -> dict:
    """The official EdgeTAM video predictor's masks, low-res logits and object scores per frame; with `samurai`
    (overrides of the official SAMURAI values, {} for none) the SAMURAI reference on the official modules, and its
    per-frame decision log."""
    out_path = work / "official_predictor.pt"
    extra = [] if samurai is None else [json.dumps(samurai)]
    _run(PREDICTOR, checkpoint, image_size, folder, *box_xyxy, out_path, *extra, work=work)
    return torch.load(out_path, weights_only=True)


def close(ours: torch.Tensor, official: torch.Tensor) -> float:
    """Max abs difference relative to the official output's range (floor 1)."""
    assert ours.shape == official.shape, (ours.shape, official.shape)
    return float((ours - official).abs().max() / max(float(official.abs().max()), 1.0))


def official_memory_inputs(vision_feat, vision_pos, memory, memory_pos, ptrs, mem_dim):
    """The official memory-attention call's tensors: sequence-first, memories then 4 tokens per pointer (no position)."""
    curr = vision_feat.flatten(2).permute(2, 0, 1)
    curr_pos = vision_pos.flatten(2).permute(2, 0, 1)
    frames = [m.unsqueeze(1) for m in memory]
    frames_pos = [p.unsqueeze(1) for p in memory_pos]
    split = ptrs.shape[1] // mem_dim
    tokens = ptrs.reshape(-1, 1, split, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
    return {
        "curr": curr, "curr_pos": curr_pos,
        "memory": torch.cat([*frames, tokens]),
        "memory_pos": torch.cat([*frames_pos, torch.zeros_like(tokens)]),
        "num_obj_ptr_tokens": torch.tensor(tokens.shape[0]),
        "num_spatial_mem": torch.tensor(len(frames)),
    }


def padded(real: torch.Tensor, total: int, generator) -> torch.Tensor:
    filler = torch.randn((total - real.shape[0], *real.shape[1:]), generator=generator)
    return torch.cat((real, filler))


def memory_attention_case(model, frames: int, ptrs: int, generator):
    """(official inputs, this project's padded inputs) for `frames` memories and `ptrs` pointers."""
    side = model.image_size // model.backbone_stride
    tokens = model.spatial_perceiver.num_tokens
    vision_feat = torch.randn((1, model.hidden_dim, side, side), generator=generator)
    vision_pos = torch.randn((1, model.hidden_dim, side, side), generator=generator)
    memory = torch.randn((frames, tokens, model.mem_dim), generator=generator)
    memory_pos = torch.randn((frames, tokens, model.mem_dim), generator=generator)
    ptr = torch.randn((ptrs, model.hidden_dim), generator=generator)
    slots, max_ptrs = model.num_maskmem, model.max_obj_ptrs_in_encoder
    ours = {
        "vision_feat": vision_feat, "vision_pos": vision_pos,
        "memory": padded(memory, slots, generator), "memory_pos": padded(memory_pos, slots, generator),
        "memory_valid": (torch.arange(slots) < frames).float(),
        "obj_ptrs": padded(ptr, max_ptrs, generator), "obj_ptr_valid": (torch.arange(max_ptrs) < ptrs).float(),
    }
    return official_memory_inputs(vision_feat, vision_pos, memory, memory_pos, ptr, model.mem_dim), ours


def memory_encoder_case(model, from_prompt: bool, generator):
    side = model.image_size // model.backbone_stride
    vision_feat = torch.randn((1, model.hidden_dim, side, side), generator=generator)
    low_res = 4 * torch.randn((1, 1, 4 * side, 4 * side), generator=generator)
    score = torch.randn((1, 1), generator=generator)
    high_res = F.interpolate(low_res, size=(model.image_size,) * 2, mode="bilinear", align_corners=False)
    official = {"vision_feat": vision_feat, "mask_high_res": high_res, "object_score_logits": score,
                "from_prompt": torch.tensor(from_prompt)}
    ours = {"vision_feat": vision_feat, "mask_logits": low_res, "object_score_logits": score,
            "binarize": torch.tensor([1.0 if from_prompt else 0.0])}
    return official, ours


# The mask decoder's prompts (convert.graph_export.mask_decoder_inputs' point counts): two corners of a box,
# three clicks (negative, positive, negative), and a mask prompt with tracking's padding point.
MASK_DECODER_PROMPTS = {"box": (2, False), "clicks": (3, False), "mask": (1, True)}
# The cases of graph_cases: the exported graph each is fed to is the name's start.
GRAPH_CASES = ("image_encoder", "memory_attention_1_1", "memory_attention_7_16", "memory_encoder_tracked",
               "memory_encoder_prompt", *(f"mask_decoder_{prompt}" for prompt in MASK_DECODER_PROMPTS))
GRAPHS = ("image_encoder", "memory_attention", "memory_encoder", "mask_decoder")


def mask_decoder_case(model, num_points: int, mask_prompt: bool, generator):
    """(official `_forward_sam_heads` inputs, this project's graph feeds): the graph's gate at the official 0."""
    from convert.graph_export import mask_decoder_inputs

    ours = mask_decoder_inputs(model, num_points, generator, mask_prompt=mask_prompt)
    return {k: v for k, v in ours.items() if k != "min_obj_score"}, ours


def graph_cases(model, seed: int) -> tuple[dict, dict]:
    """(official inputs, this project's graph feeds) per case at the model's size, for each exported graph: the image
    encoder, memory attention with the fewest and the most memories and pointers, the memory encoder for a tracked
    and a prompted mask, the mask decoder for a box, clicks and a mask prompt."""
    g = torch.Generator().manual_seed(seed)
    image = torch.randn((1, 3, model.image_size, model.image_size), generator=g)
    official, ours = {"image_encoder": {"image": image}}, {"image_encoder": {"image": image}}
    for frames, ptrs in ((1, 1), (model.num_maskmem, model.max_obj_ptrs_in_encoder)):
        name = f"memory_attention_{frames}_{ptrs}"
        official[name], ours[name] = memory_attention_case(model, frames, ptrs, g)
    for from_prompt in (False, True):
        name = f"memory_encoder_{'prompt' if from_prompt else 'tracked'}"
        official[name], ours[name] = memory_encoder_case(model, from_prompt, g)
    for prompt, (num_points, mask_prompt) in MASK_DECODER_PROMPTS.items():
        official[f"mask_decoder_{prompt}"], ours[f"mask_decoder_{prompt}"] = mask_decoder_case(
            model, num_points, mask_prompt, g)
    return official, ours


def run_graph(folder: Path, name: str, feeds: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """The exported graph `name` of `folder` in ONNX Runtime on the inputs it declares."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(folder / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    wanted = {i.name for i in session.get_inputs()}
    got = session.run(None, {k: v.numpy() for k, v in feeds.items() if k in wanted})
    return [torch.from_numpy(np.asarray(g)) for g in got]


def graph_errors(folder: Path, case: str, ours: dict, official: dict) -> list[float]:
    """`close` of each output of the export's graph on `case` against the official module's; for the memory encoder
    also the export's `memory_pos.npy` against the official perceiver's position encoding."""
    graph = next(g for g in GRAPHS if case.startswith(g))
    mine, theirs = run_graph(folder, graph, ours[case]), official[case]
    if graph == "memory_attention":  # the official output is sequence-first
        return [close(mine[0].flatten(2).permute(2, 0, 1), theirs[0])]
    if graph == "memory_encoder":
        return [close(mine[0], theirs[0]), close(torch.from_numpy(np.load(folder / "memory_pos.npy")), theirs[1])]
    if graph == "mask_decoder":  # the graph's tokens 1-3 are the official multimask outputs, pointer of the best
        masks, ious, pointers, score = mine
        best = int(ious[0, 1:].argmax()) + 1
        return [close(masks[:, 1:], theirs[0]), close(ious[:, 1:], theirs[1]), close(pointers[:, best], theirs[2]),
                close(score, theirs[3])]
    return [close(m, t) for m, t in zip(mine, theirs, strict=True)]


def check_sam2_parity(checkpoint: Path, models: Path, image_size: int, num_frames: int, work: Path) -> None:
    """sam2 mode on ONNX Runtime against the official EdgeTAM video predictor, frame by frame, on a generated clip of
    `num_frames`: low-res logits and object scores within LOGIT_ATOL, masks' IoU at least MIN_MASK_IOU."""
    from app.samurai.config import load_config
    from tests.backends import exact_factory, mask_iou, track_clip
    from tests.synthetic import make_frames, read_jpeg_folder, write_jpeg_folder

    frames, boxes = make_frames(num_frames)
    folder = write_jpeg_folder(work / "clip", frames)
    x, y, w, h = boxes[0]
    box = (x, y, x + w, y + h)
    official = run_official_predictor(checkpoint, image_size, folder, box, work)
    config = load_config(None, "edgetam", "sam2")
    results = track_clip(models, read_jpeg_folder(folder), box, config, exact_factory("onnx", models, 1))
    assert len(results) == num_frames
    for r in results:
        logits = official["logits"][r.frame_idx].numpy()
        assert logits.shape == r.low_res_logits.shape == (image_size // 4, image_size // 4)
        assert np.abs(r.low_res_logits - logits).max() <= LOGIT_ATOL, f"frame {r.frame_idx}"
        assert abs(r.object_score - official["scores"][r.frame_idx]) <= LOGIT_ATOL, f"frame {r.frame_idx}"
        assert mask_iou(r.mask, official["masks"][r.frame_idx].numpy()) >= MIN_MASK_IOU, f"frame {r.frame_idx}"
