"""Generate a small clip: a textured object moving over a textured background.

    python scripts/make_clip.py --out demo/clip [--frames 60]

Writes JPEG frames into OUT/, OUT.mp4, and OUT_groundtruth.txt (x,y,w,h per
frame, first line usable as --bbox-file). The clip is `app/media/textured_clip.py`'s.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loguru import logger

from app.media.textured_clip import make_frames, write_clip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo/clip"))
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args(argv)
    frames, boxes = make_frames(args.frames)
    truth = write_clip(args.out, frames, boxes)
    logger.info("wrote {} frames to {}/ and {}, ground truth {}", len(frames), args.out, args.out.with_suffix(".mp4"), truth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
