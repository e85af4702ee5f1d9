"""Generate the colour demo clips: a red target with a growing green distractor, or one that leaves and returns.

    python scripts/make_demo_clip.py --out demo/colour_clip [--frames 40]
    python scripts/make_demo_clip.py --leave --out demo/leave_clip [--frames 44]

Writes JPEG frames into OUT/, OUT.mp4, and OUT_groundtruth.txt (x,y,w,h per
frame). What the clips show and why: `app/media/colour_clip.py`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loguru import logger

from app.media.colour_clip import DEFAULT_FRAMES, LEAVE_FRAMES, make_frames, make_leave_frames
from app.media.textured_clip import write_clip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo/colour_clip"), help="default: demo/colour_clip")
    parser.add_argument("--frames", type=int, help="default 40 (44 with --leave); 40+ lets SAMURAI's Kalman filter warm up")
    parser.add_argument("--leave", action="store_true", help="the target leaves the view and returns (no distractor)")
    parser.add_argument("--seed", type=int, default=0, help="background texture")
    args = parser.parse_args(argv)
    if args.leave:
        frames, boxes = make_leave_frames(args.frames or LEAVE_FRAMES, args.seed)
    else:
        frames, boxes = make_frames(args.frames or DEFAULT_FRAMES, args.seed)
    truth = write_clip(args.out, frames, boxes)
    logger.info("wrote {} frames to {}/ and {}, ground truth {}", len(frames), args.out, args.out.with_suffix(".mp4"), truth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
