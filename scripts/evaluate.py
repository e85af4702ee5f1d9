"""Score a track.txt against ground truth: python scripts/evaluate.py out/track.txt groundtruth.txt"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loguru import logger

from app.evaluation import evaluate, read_boxes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("track", type=Path)
    parser.add_argument("groundtruth", type=Path)
    parser.add_argument("--absent", type=Path, help="file of 0/1 flags per frame (e.g. LaSOT full_occlusion.txt)")
    args = parser.parse_args(argv)
    for path in (args.track, args.groundtruth):
        if not path.is_file():
            logger.error("{} not found", path)
            return 2
    absent = None
    if args.absent:
        absent = [v.strip() == "1" for v in args.absent.read_text().replace(",", " ").split()]
    try:
        scores = evaluate(read_boxes(args.track), read_boxes(args.groundtruth), absent)
    except ValueError as exc:
        logger.error("{}", exc)
        return 2
    print(scores.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
