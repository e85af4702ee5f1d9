"""The generated textured clip: a textured object moving over a textured background, and the files a clip is written as.

Random-weight exports have nothing to recognise, so their tests, benchmarks and
int8 calibration track this clip; its files (a JPEG folder, an .mp4 beside it,
a ground truth file of x,y,w,h lines) are the layout every generated clip uses
(`scripts/make_clip.py` is its command).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

OBJECT_SIZE = 48
JPEG_QUALITY = 95
CLIP_FPS = 15.0


def make_frames(num_frames: int = 32, width: int = 320, height: int = 240, seed: int = 0):
    """RGB uint8 frames and the object's true boxes (x, y, w, h)."""
    rng = np.random.default_rng(seed)
    background = (rng.random((height, width, 3)) * 60 + 40).astype(np.uint8)
    texture = (rng.random((OBJECT_SIZE, OBJECT_SIZE, 3)) * 80).astype(np.uint8)
    texture[..., 0] += 170
    frames, boxes = [], []
    for i in range(num_frames):
        frame = background.copy()
        x = int(40 + 6 * i) % (width - OBJECT_SIZE - 12)
        y = int(height / 2 - OBJECT_SIZE / 2 + 30 * np.sin(i / 5.0))
        frame[y : y + OBJECT_SIZE, x : x + OBJECT_SIZE] = texture
        frames.append(frame)
        boxes.append((x, y, OBJECT_SIZE, OBJECT_SIZE))
    return frames, boxes


def scaled_clip(frames: list[np.ndarray], boxes: list[tuple], width: int, height: int):
    """The frames (bilinear, as a camera's scaler would) and x, y, w, h boxes at another resolution."""
    source_height, source_width = frames[0].shape[:2]
    sx, sy = width / source_width, height / source_height
    scaled = [cv2.resize(f, (width, height), interpolation=cv2.INTER_LINEAR) for f in frames]
    return scaled, [(x * sx, y * sy, w * sx, h * sy) for x, y, w, h in boxes]


def write_jpeg_folder(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.jpg", quality=JPEG_QUALITY)
    return folder


def write_clip(out: Path, frames: list[np.ndarray], boxes: list[tuple]) -> Path:
    """JPEG folder, .mp4 beside it and the ground truth file; returns the ground truth path."""
    write_jpeg_folder(out, frames)
    height, width = frames[0].shape[:2]
    video = cv2.VideoWriter(str(out.with_suffix(".mp4")), cv2.VideoWriter_fourcc(*"mp4v"), CLIP_FPS, (width, height))
    try:
        for frame in frames:
            video.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        video.release()
    truth = out.parent / f"{out.name}_groundtruth.txt"
    truth.write_text("".join(f"{x},{y},{w},{h}\n" for x, y, w, h in boxes))
    return truth
