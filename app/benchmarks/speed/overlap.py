"""Each pair sequential and with the next frame's image encoder overlapping this frame's per-object stages."""

from __future__ import annotations

import os
import statistics

import numpy as np

from app.benchmarks.speed.pairs import OVERLAP_PAIRS, available_pairs, open_pair, parse_pair
from app.benchmarks.speed.timing import TimedRunner
from app.benchmarks.speed.tracking import BenchSettings, bench_tracker

LATENCY_PERCENTILES = (50, 95)


def _same_run(a: dict, b: dict) -> bool:
    """Bit-identical chosen tokens, masks and low-res logits of object 1."""
    return a["tokens"] == b["tokens"] and all(
        np.array_equal(x, y) for key in ("masks", "logits") for x, y in zip(a[key], b[key], strict=True)
    )


def bench_overlap(settings: BenchSettings, pairs: str | None, objects: list[int] | None, frames, box) -> int:
    """Each pair sequential and overlapped, for each object count, alternated over `repeats` rounds (medians)."""
    counts = objects or [1]
    print(f"sequential vs overlapped frames: {settings.frames} frames per run, {settings.mode} mode, median of "
          f"{settings.repeats} alternated rounds; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the start")
    print(f"{'pair':<16}{'objects':>8}{'seq ms/f':>10}{'FPS':>7}{'lat p50':>9}{'p95':>6}"
          f"{'ovl ms/f':>10}{'FPS':>7}{'lat p50':>9}{'p95':>6}{'speed-up':>10}{'latency':>9}  identical")
    for pair in available_pairs(pairs or OVERLAP_PAIRS, settings.model_dir):
        backend, precision, _ = parse_pair(pair)
        opened = {
            overlap: open_pair(settings.model_dir, backend, precision, overlap).wrap(TimedRunner).runners
            for overlap in (False, True)
        }
        runs: dict[tuple[int, bool], list[dict]] = {(n, o): [] for n in counts for o in (False, True)}
        for repeat in range(settings.repeats):
            for overlap in (False, True) if repeat % 2 == 0 else (True, False):
                for n in counts:
                    runs[n, overlap].append(bench_tracker(
                        settings.model_dir, frames, box, settings.mode, settings.frames, objects=n,
                        runners=opened[overlap], keep_masks=True, overlap=overlap,
                    ))
        for n in counts:
            _print_row(pair, n, runs[n, False], runs[n, True])
        for runners in opened.values():
            for runner in runners.values():
                runner.close()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    return 0


def _print_row(pair: str, objects: int, sequential: list[dict], overlapped: list[dict]) -> None:
    figures = []
    for done in (sequential, overlapped):
        frame_ms = statistics.median(r["frame_ms"] for r in done)
        latency = [statistics.median(float(np.percentile(r["latency_ms"], q)) for r in done)
                   for q in LATENCY_PERCENTILES]
        figures.append((frame_ms, latency))
    (seq_ms, seq_lat), (ovl_ms, ovl_lat) = figures
    identical = all(_same_run(a, b) for a, b in zip(sequential, overlapped))
    print(f"{pair:<16}{objects:>8}{seq_ms:>10.0f}{1000 / seq_ms:>7.2f}{seq_lat[0]:>9.0f}{seq_lat[1]:>6.0f}"
          f"{ovl_ms:>10.0f}{1000 / ovl_ms:>7.2f}{ovl_lat[0]:>9.0f}{ovl_lat[1]:>6.0f}"
          f"{seq_ms / ovl_ms:>9.2f}x{100 * (ovl_lat[0] / seq_lat[0] - 1):>+8.0f}%"
          f"  {'yes' if identical else 'NO'}")
