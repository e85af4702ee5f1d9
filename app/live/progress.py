"""How far a run has come: tqdm's bar on a terminal, a plain log line every few seconds anywhere else.

A bar redraws itself with a carriage return several times a second. A terminal
overwrites each redraw; a file, a CI log or the journal keeps every one, as a
single line thousands of characters long. So the bar is only drawn when standard
error is a terminal; otherwise one loguru line every `LOG_EVERY_S` seconds says
the same: frames done (of how many, when known), FPS, the per-frame figure and
the dropped frames.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

from loguru import logger
from tqdm import tqdm

from app.live.latency import LatencyStats
from app.live.stats import LoopStats

# A log line at most this often: a ten-minute clip logs sixty, a day-long stream one a few seconds apart.
LOG_EVERY_S = 10.0


def per_frame_figure(stats: LoopStats, live: bool) -> tuple[str, LatencyStats]:
    """Latency (capture → result) on a live source; the tracker's step time on a file.

    A file is read ahead and waits behind back-pressure, so its capture → result
    time measures the queue, not the tracker; a live source drops frames instead
    of queueing them, so its latency is what a consumer of the results sees.
    """
    return ("latency", stats.latency) if live else ("step", stats.step)


class Progress(Protocol):
    """Either report: the loop calls it the same way."""

    def update(self, stats: LoopStats) -> None:
        """After each tracked frame."""


@dataclass
class ProgressBar:
    """tqdm's bar, for a person watching a terminal."""

    bar: tqdm
    live: bool
    high_percentile: float

    def update(self, stats: LoopStats) -> None:
        name, figure = per_frame_figure(stats, self.live)
        self.bar.update(1)
        self.bar.set_postfix(
            {"fps": f"{stats.fps:.2f}", name: f"{figure.recent_ms():.0f}ms",
             "p95": f"{figure.percentile(self.high_percentile):.0f}ms", "dropped": stats.dropped}
        )


@dataclass
class ProgressLog:
    """One log line every `every_s` seconds, for a file or the journal."""

    total: int | None
    live: bool
    high_percentile: float
    every_s: float = LOG_EVERY_S
    due: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self.due = time.monotonic() + self.every_s

    def update(self, stats: LoopStats) -> None:
        now = time.monotonic()
        if now < self.due:
            return
        self.due = now + self.every_s
        name, figure = per_frame_figure(stats, self.live)
        done = f"{stats.frames}/{self.total}" if self.total else str(stats.frames)
        logger.info("progress: {} frames, {:.2f} FPS, {} {:.0f} ms (p{:.0f} {:.0f} ms), {} dropped", done, stats.fps,
                    name, figure.recent_ms(), self.high_percentile, figure.percentile(self.high_percentile),
                    stats.dropped)


@contextmanager
def progress_report(total: int | None, live: bool, high_percentile: float) -> Iterator[Progress]:
    """The bar when standard error (where the log goes too) is a terminal, else the log lines."""
    if not sys.stderr.isatty():
        yield ProgressLog(total, live, high_percentile)
        return
    with tqdm(total=total, unit="frame", file=sys.stderr) as bar:
        yield ProgressBar(bar, live, high_percentile)
