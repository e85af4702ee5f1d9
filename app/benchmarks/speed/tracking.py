"""One timed run of the multi-object tracker over a clip: frame time, per-stage time, latency, memory, decisions."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acl_models.bundle import ModelBundle
from acl_models.manifest import load_constants, load_manifest
from app.benchmarks.speed.pairs import open_pair
from app.benchmarks.speed.timing import TimedRunner, rss_mb
from app.samurai.config import load_config
from app.samurai.multi_tracker import MultiObjectTracker

RSS_REFERENCE_FRAME = 100
# Frames are generated once and replayed in a loop, so that a 3000-frame run
# measures the tracker's memory, not the clip's.
CLIP_FRAMES = 120
# Extra objects' boxes (x1, y1, x2, y2) on the generated clip: background patches.
EXTRA_BOXES = [(200.0, 20.0, 260.0, 70.0), (20.0, 150.0, 100.0, 210.0), (150.0, 10.0, 190.0, 60.0),
               (240.0, 170.0, 300.0, 230.0), (10.0, 10.0, 60.0, 50.0), (120.0, 180.0, 170.0, 230.0), (260.0, 90.0, 310.0, 140.0)]
MAX_OBJECTS = len(EXTRA_BOXES) + 1


@dataclass(frozen=True)
class BenchSettings:
    """What every mode shares: the export, the frames per run, the tracker mode and the runs each figure is a median of."""

    model_dir: Path
    frames: int
    mode: str
    repeats: int


class SizeError(ValueError):
    """A source size that is not WIDTHxHEIGHT; the message says what is expected."""


def parse_size(text: str) -> tuple[int, int]:
    """"640x360" -> (640, 360)."""
    width, _, height = text.partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) < 1 or int(height) < 1:
        raise SizeError(f"'{text}' is not a WIDTHxHEIGHT source size such as 640x360")
    return int(width), int(height)


def prompt_box(box_xywh) -> tuple[float, float, float, float]:
    """A clip's (x, y, w, h) ground-truth box as the tracker's (x1, y1, x2, y2) prompt."""
    x, y, w, h = box_xywh
    return (x, y, x + w, y + h)


def bench_tracker(
    model_dir: Path, frames, box, mode: str, num_frames: int, backend: str = "onnx", precision: str = "fp32",
    objects: int = 1, runners=None, keep_masks: bool = False, overlap: bool = False,
) -> dict:
    """Track `objects` objects (the first on `box`); `runners` from an earlier call are reused (and stay open).

    With `overlap` the next frame's image encoder runs while this frame's objects are tracked.
    A frame's latency runs from when the loop takes it (to encode it) to its result.
    """
    manifest = load_manifest(model_dir)
    runners = runners or open_pair(model_dir, backend, precision, overlap).wrap(TimedRunner).runners
    for runner in runners.values():
        runner.seconds, runner.calls = 0.0, 0
    bundle = ModelBundle(manifest, load_constants(manifest), runners)
    tracker = MultiObjectTracker(bundle, load_config(None, manifest.model_size, mode))
    for obj_id, obj_box in enumerate([box, *EXTRA_BOXES][:objects], start=1):
        tracker.add(obj_id, obj_box)
    stage_ms: dict[str, float] = {}
    reference_rss = None
    tokens, masks, logits, latency_ms = [], [], [], []
    taken: dict[int, float] = {}

    def source():
        for i in range(num_frames):
            taken[i] = time.perf_counter()
            yield i, frames[i % len(frames)], None

    started = time.perf_counter()
    for frame in tracker.encoder.frames(source(), overlap):
        result = tracker.track(frame)
        latency_ms.append(1000.0 * (time.perf_counter() - taken.pop(frame.frame_idx)))
        for k, v in result.timings.items():
            stage_ms[k] = stage_ms.get(k, 0.0) + v
        if keep_masks:
            tokens.append(result.objects[1].mask_index)
            masks.append(np.packbits(result.objects[1].mask))
            logits.append(result.objects[1].low_res_logits)
        if frame.frame_idx == min(RSS_REFERENCE_FRAME, num_frames // 2):
            reference_rss = rss_mb()
    last_frame_at = time.time()
    elapsed = time.perf_counter() - started
    model_s = sum(r.seconds for r in runners.values())
    image_encoder_calls = runners["image_encoder"].calls
    return {
        "runners": runners,
        "frame_ms": 1000.0 * elapsed / num_frames,
        "fps": num_frames / elapsed,
        "loop_s": elapsed,
        "last_frame_at": last_frame_at,
        "latency_ms": latency_ms,
        "stage_ms": {k: v / num_frames for k, v in stage_ms.items()},
        "overhead_pct": 100.0 * (elapsed - model_s) / elapsed,
        "image_encoder_calls": image_encoder_calls,
        "rss_growth_mb": rss_mb() - reference_rss,
        "state_bytes": tracker.state_nbytes(),
        "tokens": tokens,
        "masks": masks,
        "logits": logits,
    }
