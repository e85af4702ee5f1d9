"""Generate a small clip: a textured object moving over a textured background.

    python scripts/make_clip.py --out demo/clip [--frames 60]

Writes JPEG frames into OUT/, OUT.mp4, and OUT_groundtruth.txt (x,y,w,h per
frame, first line usable as --bbox-file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from loguru import logger
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo/clip"))
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args(argv)
    frames, boxes = make_frames(args.frames)
    write_jpeg_folder(args.out, frames)
    height, width = frames[0].shape[:2]
    video = cv2.VideoWriter(str(args.out.with_suffix(".mp4")), cv2.VideoWriter_fourcc(*"mp4v"), CLIP_FPS, (width, height))
    for frame in frames:
        video.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    video.release()
    truth = args.out.parent / f"{args.out.name}_groundtruth.txt"
    truth.write_text("".join(f"{x},{y},{w},{h}\n" for x, y, w, h in boxes))
    logger.info("wrote {} frames to {}/ and {}, ground truth {}", len(frames), args.out, args.out.with_suffix(".mp4"), truth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
