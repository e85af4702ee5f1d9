"""Write a seeded random-weight SAM 2.1 checkpoint in the official format (`convert/random_checkpoint.py`).

    python scripts/make_random_checkpoint.py [--model-size t] [--seed 0] [--out checkpoints/random_sam2.1_hiera_tiny.pt]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from loguru import logger

from convert.checkpoint import CHECKPOINT_NAMES, MODEL_SIZES
from convert.random_checkpoint import random_state_dict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-size", choices=list(MODEL_SIZES), default="t")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="default: checkpoints/random_<official name>")
    args = parser.parse_args(argv)
    out = args.out or Path("checkpoints") / f"random_{CHECKPOINT_NAMES[args.model_size]}"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": random_state_dict(args.model_size, args.seed)}, out)
    logger.info("wrote random-weight hiera-{} checkpoint (seed {}) to {}", args.model_size, args.seed, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
