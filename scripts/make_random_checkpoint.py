"""Write a seeded random-weight SAM 2.1 or EdgeTAM checkpoint in the official format (`convert/random_checkpoint.py`).

    python scripts/make_random_checkpoint.py [--family sam2.1|edgetam] [--model-size t] [--seed 0]
        [--out checkpoints/random_sam2.1_hiera_tiny.pt]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from loguru import logger

from convert.checkpoint import CHECKPOINT_NAMES, MODEL_SIZES
from convert.edgetam.model import CHECKPOINT_NAME as EDGETAM_CHECKPOINT_NAME
from convert.family import EDGETAM, FAMILIES, SAM21
from convert.random_checkpoint import random_edgetam_state_dict, random_state_dict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=FAMILIES, default=SAM21)
    parser.add_argument("--model-size", choices=list(MODEL_SIZES), default="t", help="SAM 2.1 only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="default: checkpoints/random_<official name>")
    args = parser.parse_args(argv)
    edgetam = args.family == EDGETAM
    name = EDGETAM_CHECKPOINT_NAME if edgetam else CHECKPOINT_NAMES[args.model_size]
    out = args.out or Path("checkpoints") / f"random_{name}"
    out.parent.mkdir(parents=True, exist_ok=True)
    state = random_edgetam_state_dict(args.seed) if edgetam else random_state_dict(args.model_size, args.seed)
    torch.save({"model": state}, out)
    logger.info("wrote random-weight {} checkpoint (seed {}) to {}",
                "EdgeTAM" if edgetam else f"hiera-{args.model_size}", args.seed, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
