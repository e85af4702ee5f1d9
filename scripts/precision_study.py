"""Which NPU precision keeps the tracker's decisions? ONNX Runtime imitations of each mode, end to end.

    python scripts/precision_study.py --model-dir om_model [--clip demo|textured] [--frames 40]

Prints, per clip, each mode's table, the cheapest mode that keeps every decision and its cost per graph. What is
measured and what "keeps the decisions" means: `convert/precision_study.py`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from loguru import logger

from app.samurai.config import TrackerConfig
from convert.precision import ATC_PRECISION
from convert.precision_study import CLIPS, cheapest_keeping, clip_frames, format_cost, format_table, study


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("om_model"))
    parser.add_argument("--clip", choices=CLIPS, action="append", help="default: both")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--mode", choices=["samurai", "sam2"], default="samurai")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads per sub-model")
    args = parser.parse_args(argv)
    all_reports = []
    for clip in args.clip or CLIPS:
        frames, box = clip_frames(clip, args.frames)
        reports = study(args.model_dir, frames, box, threads=args.threads, config=TrackerConfig(mode=args.mode))
        print(format_table(clip, reports))
        all_reports += reports
    cheapest = cheapest_keeping(all_reports)
    print(f"cheapest mode that keeps every decision: {cheapest} (convert/atc_all.sh --precision {ATC_PRECISION[cheapest]})")
    print(format_cost(args.model_dir))
    return 0


if __name__ == "__main__":
    logger.remove()
    sys.exit(main())
