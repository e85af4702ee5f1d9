"""The demo colour clip cut into a tiny LaSOT-layout dataset, and `scripts/eval.py run` on it.

Shared by test_benchmark_run and test_benchmark_ray through the session fixtures in
tests/conftest.py, so the dataset is written and tracked once per session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.media.colour_clip import make_frames
from scripts import eval as eval_cli
from tests import benchmark_layouts as layouts

CLIP_FRAMES = 30
# Three short sequences cut from the demo clip (first frame, length), all before the
# distractor outgrows the target (frame 17 of 30), which no mode follows from a cold start.
SEQUENCES = {"red-1": (0, 5), "red-2": (6, 5), "red-3": (11, 6)}


def write_demo_lasot(root: Path) -> Path:
    """The three sequences under `root` in LaSOT's layout (red-3 with one occluded frame)."""
    frames, boxes = make_frames(CLIP_FRAMES)
    boxes = np.asarray(boxes, dtype=np.float64)
    sequences = {name: boxes[start:start + length] for name, (start, length) in SEQUENCES.items()}
    images = {name: frames[start:start + length] for name, (start, length) in SEQUENCES.items()}
    return layouts.lasot(root, sequences, images, occluded={"red-3": [0, 0, 0, 1, 0, 0]})


def run_eval(root, models, out, *extra) -> int:
    """`scripts/eval.py run` on LaSOT with one ONNX Runtime thread per process (identical arithmetic everywhere)."""
    return eval_cli.main(["run", "--dataset", "lasot", "--root", str(root), "--model-dir", str(models),
                          "--out", str(out), "--threads", "1", *extra])


def result_files(folder: Path) -> dict[str, str]:
    """The per-sequence box files of a run, by name (the timing files left out)."""
    return {p.name: p.read_text() for p in sorted(folder.glob("red-*.txt")) if not p.name.endswith("_time.txt")}
