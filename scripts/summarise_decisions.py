"""Summarise a decision log (`app/run.py --log-decisions FILE.jsonl`): each object's states and object scores.

    python scripts/summarise_decisions.py out/decisions.jsonl

Prints, per object, the frame ranges where it was tracked or lost and its
object-score logit per frame (SAM 2 counts the object present above 0). A log
appended to by several runs (a restarted service) is summarised run by run,
each under its start (the lines' `run`).
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import groupby
from pathlib import Path


def summarise(records: list[dict]) -> list[str]:
    lines = []
    for obj_id in sorted({r["object"] for r in records}):
        own = [r for r in records if r["object"] == obj_id]
        spans = []
        for state, group in groupby(own, key=lambda r: r["state"]):
            frames = [r["frame"] for r in group]
            spans.append(f"{state} {frames[0]}-{frames[-1]}" if len(frames) > 1 else f"{state} {frames[0]}")
        lines.append(f"object {obj_id}: " + ", ".join(spans))
        scores = " ".join(f"{r['object_score']:.1f}" for r in own)
        lines.append(f"  object score per frame: {scores}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", type=Path)
    args = parser.parse_args(argv)
    if not args.log.is_file():
        print(f"decision log {args.log} not found; run app/run.py with --log-decisions {args.log}", file=sys.stderr)
        return 2
    try:
        records = [json.loads(line) for line in args.log.read_text().splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        print(f"{args.log} is not a decision log (line {exc.lineno} is not JSON)", file=sys.stderr)
        return 2
    runs: dict[str | None, list[dict]] = {}
    for record in records:
        runs.setdefault(record.get("run"), []).append(record)
    for run, own in runs.items():
        if len(runs) > 1:
            print(f"run {run}:")
        print("\n".join(summarise(own)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
