"""Each backend/precision pair against the official PyTorch predictor, one timed process per run, alternated.

The parent writes the clip as a JPEG folder and starts a child process per run (the command line it is given,
so that the child is set up as the front door sets up its own process); each child times its run and writes the
figures and decisions to an .npz the parent reads back.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from loguru import logger

from acl_models.manifest import load_manifest
from app.benchmarks.speed.pairs import DEFAULT_PAIRS, REFERENCE_PAIR, available_pairs, parse_pair
from app.benchmarks.speed.tracking import BenchSettings, bench_tracker
from app.media.textured_clip import make_frames, write_jpeg_folder

OFFICIAL = "official"
OFFICIAL_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
REPO = Path(__file__).resolve().parents[3]


@dataclass
class Run:
    whole_s: float
    loop_s: float
    overhead_pct: float | None
    tokens: list[int]
    masks: list[np.ndarray]


def bench_official(checkpoint: Path, image_size: int, folder: Path, box) -> dict:
    """The official predictor on a JPEG folder, timed from the prompt frame to the last frame."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor

    predictor = build_sam2_video_predictor(
        OFFICIAL_CONFIG, str(checkpoint), device="cpu",
        hydra_overrides_extra=[f"++model.image_size={image_size}"],
    )
    masks = []
    with torch.inference_mode():
        state = predictor.init_state(str(folder))
        started = time.perf_counter()
        predictor.add_new_points_or_box(state, 0, 1, box=list(box))
        for _, _, logits in predictor.propagate_in_video(state):
            masks.append(np.packbits((logits[0, 0] > 0).numpy()))
    last_frame_at = time.time()
    elapsed = time.perf_counter() - started
    return {"fps": len(masks) / elapsed, "loop_s": elapsed, "last_frame_at": last_frame_at, "tokens": [], "masks": masks}


def child_run(settings: BenchSettings, name: str, folder: Path, result: Path, checkpoint: Path | None) -> int:
    """One timed run in this process (`name` is OFFICIAL or a pair); the result goes to `result` as .npz."""
    from PIL import Image

    box = tuple(json.loads(folder.with_suffix(".json").read_text()))
    if name == OFFICIAL:
        out = bench_official(checkpoint, load_manifest(settings.model_dir).image_size, folder, box)
        overhead = np.nan
    else:
        # Read as the official predictor's init_state does: every frame before the loop.
        frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.jpg"))]
        backend, precision, overlap = parse_pair(name)
        out = bench_tracker(
            settings.model_dir, frames, box, settings.mode, len(frames), backend, precision, keep_masks=True,
            overlap=overlap,
        )
        overhead = out["overhead_pct"]
    np.savez(
        result, loop_s=out["loop_s"], last_frame_at=out["last_frame_at"], overhead_pct=overhead,
        tokens=np.asarray(out["tokens"], dtype=np.int64), masks=np.stack(out["masks"]),
    )
    return 0


def run_child(child_command: list[str], name: str, settings: BenchSettings, checkpoint: Path, clip: Path,
              result: Path) -> Run:
    """`child_command` (the front door's own command line) timing run `name` in a process of its own."""
    command = [*child_command, "--child", name, "--clip", str(clip), "--result", str(result),
               "--model-dir", str(settings.model_dir), "--mode", settings.mode]
    if checkpoint:
        command += ["--official", str(checkpoint)]
    # Idle OpenMP threads of the official predictor sleep, as ONNX Runtime's do here: on
    # shared cores PyTorch's default spin-waiting makes it several times slower, which
    # would flatter the tracker.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    spawned_at = time.time()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{name} run failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
    data = np.load(result)
    overhead = float(data["overhead_pct"])
    return Run(
        whole_s=float(data["last_frame_at"]) - spawned_at, loop_s=float(data["loop_s"]),
        overhead_pct=None if np.isnan(overhead) else overhead, tokens=data["tokens"].tolist(), masks=list(data["masks"]),
    )


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.unpackbits(a).astype(bool), np.unpackbits(b).astype(bool)
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def side_by_side(settings: BenchSettings, checkpoint: Path, pairs: str | None, child_command: list[str]) -> int:
    """Time every available pair and the official predictor, alternated, and print the medians and agreement."""
    chosen = available_pairs(pairs or DEFAULT_PAIRS, settings.model_dir)
    if REFERENCE_PAIR not in chosen:
        chosen.insert(0, REFERENCE_PAIR)
    names = [OFFICIAL, *chosen]
    runs: dict[str, list[Run]] = {name: [] for name in names}
    frames, boxes = make_frames(settings.frames)
    x, y, w, h = boxes[0]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_jpeg_folder(Path(tmp) / "clip", frames)
        clip.with_suffix(".json").write_text(json.dumps([x, y, x + w, y + h]))
        for repeat in range(settings.repeats):
            # Alternate the order so that a slow spell on the shared machine does not hit one side only.
            for name in names if repeat % 2 == 0 else names[::-1]:
                runs[name].append(run_child(child_command, name, settings, checkpoint, clip, Path(tmp) / "result.npz"))
                logger.info("run {}/{} {}: whole {:.1f} s", repeat + 1, settings.repeats, name, runs[name][-1].whole_s)
    _print_table(settings, names, runs, load_before)
    return 0


def _print_table(settings: BenchSettings, names: list[str], runs: dict[str, list[Run]], load_before: float) -> None:
    official = runs[OFFICIAL]
    official_whole = statistics.median(r.whole_s for r in official)
    official_loop = statistics.median(r.loop_s for r in official)
    reference = runs[REFERENCE_PAIR][0]
    frames = settings.frames
    print(f"{frames} frames, {settings.mode} mode, median of {settings.repeats} alternated runs per row, one process "
          f"each; {os.cpu_count()} CPUs, load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"{'run':<16}{'whole s':>9}{'FPS':>7}{'ratio':>7}{'loop ms/f':>11}{'FPS':>7}{'ratio':>7}"
          f"{'overhead':>10}{'flips':>7}{'min IoU':>9}")
    for name in names:
        whole = statistics.median(r.whole_s for r in runs[name])
        loop = statistics.median(r.loop_s for r in runs[name])
        overheads = [r.overhead_pct for r in runs[name] if r.overhead_pct is not None]
        overhead = f"{statistics.median(overheads):.1f} %" if overheads else "-"
        agreement = f"{'-':>7}{'-':>9}"
        if name != OFFICIAL:
            first = runs[name][0]
            flips = sum(a != b for a, b in zip(first.tokens, reference.tokens))
            iou = min(_mask_iou(a, b) for a, b in zip(first.masks, reference.masks))
            agreement = f"{flips:>7}{iou:>9.3f}"
        print(f"{name:<16}{whole:>9.1f}{frames / whole:>7.2f}{official_whole / whole:>6.2f}x"
              f"{1000 * loop / frames:>11.0f}{frames / loop:>7.2f}{official_loop / loop:>6.2f}x"
              f"{overhead:>10}{agreement}")
