"""One backend/precision pair on the generated clip: FPS, stages, overhead, memory; then 1..N objects per frame."""

from __future__ import annotations

import statistics

from app.benchmarks.speed.timing import peak_rss_mb
from app.benchmarks.speed.tracking import RSS_REFERENCE_FRAME, BenchSettings, bench_tracker

# Shared stages: they run once per frame whatever the number of objects.
SHARED_STAGES = ("preprocess", "image_encoder")
MULTI_OBJECT_SLACK = 1.05


def report_single(settings: BenchSettings, frames, box, backend: str, precision: str) -> dict:
    """Print one pair's figures; returns the run (its timed runners stay open for `report_objects`)."""
    ours = bench_tracker(settings.model_dir, frames, box, settings.mode, settings.frames, backend, precision)
    print(f"tracker ({settings.mode}, {backend} {precision}): {ours['fps']:.2f} FPS over {settings.frames} frames")
    print("  mean ms per stage: " + ", ".join(f"{k} {v:.1f}" for k, v in ours["stage_ms"].items()))
    print(f"  non-model overhead: {ours['overhead_pct']:.1f} % of frame time")
    print(f"  peak RSS {peak_rss_mb():.0f} MB, "
          f"growth after frame {min(RSS_REFERENCE_FRAME, settings.frames // 2)}: {ours['rss_growth_mb']:.1f} MB, "
          f"tracker state {ours['state_bytes'] / 2**20:.2f} MB")
    return ours


def report_objects(settings: BenchSettings, objects: list[int], frames, box, runners) -> None:
    """Frame time for each object count, on the same runners, against encoder + N x rest + 5 %.

    The counts take turns for `repeats` rounds and each figure is the median
    over the rounds, so that a load change on a shared machine hits every count alike.
    """
    counts = sorted({1, *objects})
    rounds = [
        {n: bench_tracker(settings.model_dir, frames, box, settings.mode, settings.frames, objects=n, runners=runners)
         for n in counts}
        for _ in range(settings.repeats)
    ]
    frame_ms = {n: statistics.median(r[n]["frame_ms"] for r in rounds) for n in counts}
    encoder = statistics.median(sum(r[1]["stage_ms"].get(k, 0.0) for k in SHARED_STAGES) for r in rounds)
    rest = frame_ms[1] - encoder
    print(f"objects (same runners, {settings.frames} frames per run, median of {settings.repeats} interleaved rounds): "
          f"encoder {encoder:.1f} ms/frame, one object's rest {rest:.1f} ms")
    for n in objects:
        target = (encoder + n * rest) * MULTI_OBJECT_SLACK
        image_encoder_runs = max(r[n]["image_encoder_calls"] for r in rounds) / settings.frames
        verdict = "meets" if frame_ms[n] <= target else "MISSES"
        print(f"  N={n}: {frame_ms[n]:.1f} ms/frame ({1000.0 / frame_ms[n]:.2f} FPS), image encoder {image_encoder_runs:.0f}x "
              f"per frame; target encoder + N x rest + 5 % = {target:.1f} ms: {verdict}")
        stages = {k: statistics.median(r[n]["stage_ms"].get(k, 0.0) for r in rounds) for k in rounds[0][n]["stage_ms"]}
        print("    ms per frame, all objects: " + ", ".join(f"{k} {v:.1f}" for k, v in stages.items()))
