"""Per-frame latency (capture → result ready) and throughput, in constant memory for runs of any length."""

from __future__ import annotations

import time
from collections import deque

import numpy as np

# Whole-run percentiles come from a histogram of 1 ms bins; slower frames fall in the last bin.
BIN_MS = 1.0
MAX_TRACKED_MS = 60_000.0
# Recent frames behind the live figures (status, progress line): about a second at tracker speed.
RECENT_FRAMES = 30
PERCENT = 100.0


class LatencyStats:
    """Whole-run p50/p95 latency, plus median latency and FPS over the last `RECENT_FRAMES` frames."""

    def __init__(self) -> None:
        self._bins = np.zeros(int(MAX_TRACKED_MS / BIN_MS) + 1, dtype=np.int64)
        self._recent_ms: deque[float] = deque(maxlen=RECENT_FRAMES)
        self._recent_done: deque[float] = deque(maxlen=RECENT_FRAMES)
        self.count = 0

    def add(self, latency_ms: float, done: float | None = None) -> None:
        """Record one frame's latency; `done` is the monotonic time its result was ready."""
        self._bins[min(int(max(latency_ms, 0.0) / BIN_MS), len(self._bins) - 1)] += 1
        self._recent_ms.append(latency_ms)
        self._recent_done.append(time.monotonic() if done is None else done)
        self.count += 1

    def percentile(self, q: float) -> float:
        """The q-th percentile (0..100) over the whole run, to the bin's upper edge; 0 before any frame."""
        if self.count == 0:
            return 0.0
        rank = np.searchsorted(np.cumsum(self._bins), q / PERCENT * self.count)
        return float((rank + 1) * BIN_MS)

    def last_ms(self) -> float:
        return self._recent_ms[-1] if self._recent_ms else 0.0

    def recent_ms(self) -> float:
        return float(np.median(self._recent_ms)) if self._recent_ms else 0.0

    def recent_fps(self) -> float:
        if len(self._recent_done) < 2:
            return 0.0
        span = self._recent_done[-1] - self._recent_done[0]
        return (len(self._recent_done) - 1) / span if span > 0 else 0.0
