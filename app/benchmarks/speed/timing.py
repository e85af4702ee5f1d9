"""Runners that add up the time spent in them, and the process figures the benchmark reports beside them."""

from __future__ import annotations

import resource
import time

import numpy as np

from acl_models.base import ModelRunner, Pending, WrappedRunner

# The CPU side is timed in CPU time of the process, not wall time: on a shared
# machine other processes' turns on the core would otherwise count as ours.
CPU_CLOCK = time.process_time


def rss_mb() -> float:
    """The resident set of this process now, in MiB."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """The largest resident set this process had, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TimedRunner(WrappedRunner):
    """Accumulates the wall time and the number of calls of the runner it wraps (`seconds`, `calls`)."""

    def __init__(self, runner: ModelRunner):
        super().__init__(runner)
        self.seconds, self.calls = 0.0, 0

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        start = time.perf_counter()
        try:
            return self.runner.run(inputs)
        finally:
            self.seconds += time.perf_counter() - start

    def submit(self, inputs: dict[str, np.ndarray]) -> Pending:
        """Counts the time the caller spends submitting and waiting, not the run beside it."""
        self.calls += 1
        start = time.perf_counter()
        try:
            return _TimedPending(self, self.runner.submit(inputs))
        finally:
            self.seconds += time.perf_counter() - start


class _TimedPending(Pending):
    def __init__(self, owner: TimedRunner, pending: Pending):
        self._owner, self._pending = owner, pending

    def _collect(self) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        try:
            return self._pending.wait()
        finally:
            self._owner.seconds += time.perf_counter() - start
