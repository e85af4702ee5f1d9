"""`summary.json`: what a run records about itself when it ends, and the line the command line logs from it.

The schema lives beside `LoopStats`, whose figures it reports, so that a new figure of the loop and its place
in the summary are written together. The command line only says what ran (`WhatRan`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from loguru import logger

from app.live.latency import LatencyStats
from app.live.pipeline import TrackingLoop
from app.media.prompt import Box
from app.samurai.results import TRACKING

PERCENTILE_MEDIAN, PERCENTILE_HIGH = 50.0, 95.0


@dataclass
class ObjectSummary:
    """What summary.json says about one object of a multi-object run."""

    frames: int = 0
    lost_frames: int = 0
    state: str = TRACKING


@dataclass(frozen=True)
class WhatRan:
    """The models and settings of a run as the command line chose them (the manifest's figures among them)."""

    backend: str
    onnx_variant: str
    precision: str
    mode: str
    model_size: str
    image_size: int
    checkpoint_sha256: str
    pipelined: bool


def percentiles(figure: LatencyStats) -> dict[str, float]:
    return {"p50": figure.percentile(PERCENTILE_MEDIAN), "p95": figure.percentile(PERCENTILE_HIGH)}


def run_summary(loop: TrackingLoop, source_name: str, ran: WhatRan, started: str) -> dict:
    """What summary.json records: when it started, throughput, latency, drops and what ran (no secret: the
    source's password masked)."""
    stats = loop.stats
    return {
        "started": started,
        "source": source_name,
        "frames": stats.frames,
        "fps": stats.fps,
        "per_frame": "latency" if loop.source.is_live else "step",
        "latency_ms": percentiles(stats.latency) if loop.source.is_live else None,
        "step_ms": percentiles(stats.step),
        "dropped": stats.dropped,
        "pipelined": ran.pipelined,
        "overlap": loop.overlap,
        "stage_ms_mean": {k: v / max(stats.frames, 1) for k, v in stats.stage_ms.items()},
        "backend": ran.backend,
        "onnx_variant": ran.onnx_variant if ran.backend == "onnx" else None,
        "precision": ran.precision if ran.backend == "openvino" else None,
        "mode": ran.mode,
        "model_size": ran.model_size,
        "image_size": ran.image_size,
        "checkpoint_sha256": ran.checkpoint_sha256,
        "state_bytes": loop.state_nbytes(),
        "prompts": [p.record() for p in stats.prompts],  # each a --prompts line (docs/usage.md)
    }


def objects_section(objects: dict[int, ObjectSummary], prompt_boxes: list[Box]) -> dict[str, dict]:
    """summary.json's "objects": each object's first box (None for one added later) and its counts, by id."""
    return {
        str(k): {"prompt_box": str(prompt_boxes[k - 1]) if k <= len(prompt_boxes) else None, **asdict(v)}
        for k, v in sorted(objects.items())
    }


def log_summary(summary: dict, output: Path) -> None:
    """The run's last line: throughput, the time per frame that matters for the source, drops, where the files are."""
    stages = ", ".join(f"{k} {v:.0f} ms" for k, v in summary["stage_ms_mean"].items())
    name = summary["per_frame"]
    figure = summary[f"{name}_ms"]
    logger.info(
        "{} frames at {:.2f} FPS ({}); {} p50 {:.0f} ms, p95 {:.0f} ms; {} dropped; results in {}",
        summary["frames"], summary["fps"], stages, name, figure["p50"], figure["p95"], summary["dropped"], output,
    )
