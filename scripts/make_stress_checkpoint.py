"""Write a STRESS checkpoint: random SAM 2.1 or EdgeTAM weights with a trained model's activations where float16 breaks.

    python scripts/make_stress_checkpoint.py [--family sam2.1|edgetam] [--seed 0]
        [--out checkpoints/stress_sam2.1_hiera_tiny.pt | checkpoints/stress_edgetam.pt] [--report-size 256] [--frames 4]

Then exports it at --report-size and prints the per-node statistics (docs/ascend.md). What is changed in the
random weights and why: `convert/stress_checkpoint.py`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from loguru import logger

from convert.export_onnx import export
from convert.family import EDGETAM, FAMILIES, SAM21
from convert.stress_checkpoint import (
    DEFAULT_OUT,
    DEFAULT_REPORT_SIZE,
    EDGETAM_DEFAULT_OUT,
    MODEL_SIZE,
    activation_report,
    edgetam_stress_state_dict,
    stress_state_dict,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=FAMILIES, default=SAM21)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help=f"default {DEFAULT_OUT}, or {EDGETAM_DEFAULT_OUT} for EdgeTAM")
    parser.add_argument(
        "--report-size", type=int, default=DEFAULT_REPORT_SIZE, help="image size of the printed statistics"
    )
    parser.add_argument("--frames", type=int, default=4, help="frames of the textured clip tracked for the statistics")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads")
    args = parser.parse_args(argv)
    edgetam = args.family == EDGETAM
    out = args.out or (EDGETAM_DEFAULT_OUT if edgetam else DEFAULT_OUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = edgetam_stress_state_dict(args.seed) if edgetam else stress_state_dict(args.seed)
    torch.save({"model": state}, out)
    logger.info("wrote stress {} checkpoint (seed {}) to {}", "EdgeTAM" if edgetam else f"hiera-{MODEL_SIZE}",
                args.seed, out)
    logger.remove()
    with tempfile.TemporaryDirectory() as tmp:
        export(out, Path(tmp), image_size=args.report_size)
        print("\n".join(activation_report(Path(tmp), args.frames, args.threads)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
