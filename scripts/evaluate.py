"""Score one track.txt against its ground truth: python scripts/evaluate.py out/track.txt groundtruth.txt

The metrics and conventions are those of `scripts/eval.py score` (see
app/benchmarks/metrics.py); for a whole benchmark use that script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loguru import logger

from app.benchmarks.datasets import PROTOCOL_GENERIC, PROTOCOL_LASOT, DatasetError, read_boxes, read_flags
from app.benchmarks.metrics import MetricError, curve_scores, sequence_curves


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("track", type=Path)
    parser.add_argument("groundtruth", type=Path)
    parser.add_argument("--absent", type=Path, help="file of 0/1 flags per frame (e.g. LaSOT full_occlusion.txt)")
    args = parser.parse_args(argv)
    try:
        truth = read_boxes(args.groundtruth)
        visible = None if args.absent is None else read_flags(args.absent) == 0
        if visible is not None and len(visible) != len(truth):
            raise MetricError(f"{args.absent} has {len(visible)} flags for {len(truth)} frames")
        curves = sequence_curves(
            read_boxes(args.track), truth, PROTOCOL_GENERIC if visible is None else PROTOCOL_LASOT, visible
        )
    except (DatasetError, MetricError) as exc:
        logger.error("{}", exc)
        return 2
    scores = curve_scores(curves)
    overlap = "-" if curves.mean_overlap is None else f"{curves.mean_overlap:.3f}"
    print(
        f"{len(truth)} frames: success AUC {scores['success_auc']:.3f}, precision@20px {scores['precision']:.3f}, "
        f"norm. precision@0.2 {scores['norm_precision']:.3f}, OP50 {scores['op50']:.3f}, mean overlap {overlap}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
