"""Write a SYNTHETIC demonstration checkpoint that tracks by colour. It is NOT SAM 2.1.

    python scripts/make_demo_checkpoint.py --out checkpoints/demo_colour_sam2.1_hiera_tiny.pt

How its weights are set, and what it can and cannot track: `convert/demo_checkpoint.py`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from loguru import logger

from convert.demo_checkpoint import DEFAULT_OUT, demo_state_dict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Write a SYNTHETIC demonstration checkpoint, NOT SAM 2.1: the hiera-t architecture with "
            "hand-set weights that segment red-ish vs green-ish pixels and rate each mask by the "
            "colour's area in the frame; its object score falls below 0 when no red is in view. It ignores shape, texture, motion and the prompt box (the "
            "first mask is every red-ish pixel), so it tracks nothing but colour. Pair it with "
            "scripts/make_demo_clip.py."
        )
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": demo_state_dict()}, args.out)
    logger.warning("wrote a SYNTHETIC colour-tracking checkpoint (not SAM 2.1) to {}", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
