"""Measure what letting prompts go back `prompt_history` frames costs in memory, per source resolution.

    python scripts/measure_prompt_memory.py --model-dir om_model [--objects 2] [--sizes 1280x720 1920x1080 3840x2160]

Tracks a generated clip (a textured background, moving squares) at each size
until the history is full, then counts the bytes of every distinct array held:
the loop's decoded frames (app/live/frame_history.py) and the tracker's held
records (app/samurai/multi_tracker.py: each object's result, with its
full-resolution mask, and its states, on each held frame; arrays shared between
frames, such as memory-bank entries, are counted once). docs/usage.md quotes
its output.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import deque
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from acl_models.bundle import open_bundle  # noqa: E402
from app.live.frame_history import FrameHistory  # noqa: E402
from app.media.sources import Frame  # noqa: E402
from app.samurai.config import load_config  # noqa: E402
from app.samurai.multi_tracker import MultiObjectTracker  # noqa: E402

MIB = 1024 * 1024
SQUARE = 0.1  # each object's side, a share of the frame's height
EXTRA_FRAMES = 2  # tracked past a full history, so that the oldest entries were dropped once


def distinct_bytes(value: object, seen: set[int]) -> int:
    """Bytes of the arrays reachable from `value` not counted yet (`seen`: ids of arrays counted)."""
    if isinstance(value, np.ndarray):
        if id(value) in seen:
            return 0
        seen.add(id(value))
        return value.nbytes
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(distinct_bytes(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    if isinstance(value, dict):
        return sum(distinct_bytes(v, seen) for v in value.values())
    if isinstance(value, (list, tuple, deque)):
        return sum(distinct_bytes(v, seen) for v in value)
    return 0


def clip_frame(index: int, width: int, height: int, objects: int, rng: np.random.Generator,
               background: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    image = background.copy()
    side = int(height * SQUARE)
    boxes = []
    for k in range(objects):
        x = (width // (objects + 1)) * (k + 1) + 2 * index - side // 2
        y = height // 2 - side // 2
        image[y:y + side, x:x + side] = rng.integers(0, 255, 3, dtype=np.uint8)
        boxes.append((x, y, side, side))
    return image, boxes


def measure(bundle, config, width: int, height: int, objects: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    background = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
    tracker = MultiObjectTracker(bundle, config)
    history = FrameHistory(config.prompt_history)
    for index in range(config.prompt_history + EXTRA_FRAMES):
        image, boxes = clip_frame(index, width, height, objects, rng, background)
        if index == 0:
            for obj_id, (x, y, w, h) in enumerate(boxes, start=1):
                tracker.add(obj_id, (x, y, x + w, y + h))
        history.add(Frame(index, image, 0.0))
        tracker.track(tracker.encoder.encode(index, image))
    frames = distinct_bytes([history.get(i).image for i in history.held()], set())
    seen: set[int] = set()
    held = tracker._held  # the records a prompt on an older frame refines from
    masks = sum(distinct_bytes(record.result.mask, seen) for _, objs in held for record in objs.values())
    rest = distinct_bytes(held, seen)
    count = len(held)
    return {"frames held": count, "decoded frames MiB": frames / MIB,
            "per frame MiB": frames / MIB / count,
            "held masks MiB per object": masks / MIB / objects,
            "held states MiB per object": rest / MIB / objects}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--objects", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", default=["1280x720", "1920x1080", "3840x2160"])
    args = parser.parse_args()
    bundle = open_bundle(args.model_dir)
    config = load_config(None, bundle.manifest.model_size)
    print(f"{bundle.manifest.model_size} at {bundle.manifest.image_size} px, prompt_history "
          f"{config.prompt_history}, {args.objects} objects")
    for size in args.sizes:
        width, height = (int(v) for v in size.split("x"))
        figures = measure(bundle, config, width, height, args.objects)
        print(size, ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
