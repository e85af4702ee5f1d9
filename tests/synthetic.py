"""Generated clips for tests (the generator lives in app/media/textured_clip.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from app.media.textured_clip import make_frames, write_jpeg_folder

__all__ = ["make_frames", "write_jpeg_folder", "read_jpeg_folder"]


def read_jpeg_folder(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.jpg"))]
