"""Per-stage milliseconds of one frame's work, on a clock a benchmark may swap."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager


class StageTimer:
    """Adds the time spent inside `stage(name)` to `ms[name]`."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = self.clock()
        yield
        self.ms[name] = self.ms.get(name, 0.0) + 1000.0 * (self.clock() - start)
