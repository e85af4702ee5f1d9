"""Small generated clips: a textured object moving over a textured background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_frames(num_frames: int = 32, width: int = 320, height: int = 240, seed: int = 0) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """RGB uint8 frames and the object's true boxes (x, y, w, h)."""
    rng = np.random.default_rng(seed)
    background = (rng.random((height, width, 3)) * 60 + 40).astype(np.uint8)
    texture = (rng.random((48, 48, 3)) * 80).astype(np.uint8)
    texture[..., 0] += 170
    frames, boxes = [], []
    for i in range(num_frames):
        frame = background.copy()
        x = int(40 + 6 * i) % (width - 60)
        y = int(90 + 30 * np.sin(i / 5.0))
        frame[y : y + 48, x : x + 48] = texture
        frames.append(frame)
        boxes.append((x, y, 48, 48))
    return frames, boxes


def write_jpeg_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.jpg", quality=95)
    return folder


def read_jpeg_folder(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.jpg"))]
