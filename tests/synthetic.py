"""Generated clips for tests (the generator lives in scripts/make_clip.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from scripts.make_clip import make_frames, write_jpeg_folder

__all__ = ["make_frames", "write_jpeg_folder", "read_jpeg_folder", "DEMO_IMAGE_SIZE", "DEMO_THREADS"]

# The colour model does not depend on resolution; 256 px runs ~4x faster than 512.
DEMO_IMAGE_SIZE = 256
# One compute thread for ONNX Runtime and PyTorch: their spinning worker threads
# collapse when other processes share the cores (measured on 2 busy cores: the
# reference predictor 13 s with one thread, 190 s with two; our tracker 5 s vs 16 s).
DEMO_THREADS = 1


def read_jpeg_folder(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.jpg"))]
