"""FLOPs per call of each exported graph (convert/flops.py), for docs/ascend.md's floor per frame.

    python scripts/count_flops.py MODEL_DIR [MODEL_DIR ...]

Prints, per export, each graph's GFLOPs by op type, the graphs' sum (one object:
each graph runs once per frame) and any node whose shapes shape inference left unknown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from acl_models.manifest import ModelFolderError, load_manifest
from convert.flops import count_flops

GIGA = 1e9
EXIT_BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dirs", type=Path, nargs="+", metavar="MODEL_DIR")
    args = parser.parse_args(argv)
    for model_dir in args.model_dirs:
        try:
            manifest = load_manifest(model_dir)
        except ModelFolderError as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        print(f"{model_dir}: {manifest.family} {manifest.model_size} at {manifest.image_size} px")
        total = 0
        for name, entry in manifest.models.items():
            flops = count_flops(model_dir / entry["file"])
            total += flops.total
            ops = ", ".join(f"{op} {value / GIGA:.2f}" for op, value in sorted(flops.by_op.items()))
            unknown = f"; shapes unknown: {', '.join(flops.unknown)}" if flops.unknown else ""
            print(f"  {name:<18}{flops.total / GIGA:>9.2f} GFLOPs  ({ops}){unknown}")
        print(f"  {'per frame':<18}{total / GIGA:>9.2f} GFLOPs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
