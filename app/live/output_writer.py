"""Results handed to the outputs in order, on a worker thread when pipelined, behind a bounded queue."""

from __future__ import annotations

import queue
import threading

from app.live.output_guard import OutputGuard
from app.live.tracked import Output, Tracked

# Results waiting to be written: a slow disk stalls the loop instead of filling memory.
OUTPUT_QUEUE = 4
_END = object()


class OutputWriter:
    """Hands results to the outputs, on a worker thread when `threaded`; `close()` writes all that is queued.

    Once an output has failed (`guard`), nothing more is written: the run is stopping.
    """

    def __init__(self, outputs: list[Output], threaded: bool, guard: OutputGuard):
        self.outputs = outputs
        self.threaded = threaded
        self.guard = guard
        self._error: BaseException | None = None
        if threaded:
            self._queue: queue.Queue = queue.Queue(maxsize=OUTPUT_QUEUE)
            self._thread = threading.Thread(target=self._run, name="output-writer", daemon=True)
            self._thread.start()

    def _write(self, item: Tracked) -> None:
        for output in self.outputs:
            if self.guard.failure is not None or not self.guard.attempt(output, item):
                return

    def _run(self) -> None:
        while (item := self._queue.get()) is not _END:
            if self._error is None:
                try:
                    self._write(item)
                except BaseException as exc:  # re-raised by the loop's next put or close
                    self._error = exc

    def put(self, item: Tracked) -> None:
        if not self.threaded:
            self._write(item)
            return
        self.check()
        self._queue.put(item)

    def check(self) -> None:
        """Re-raise what an output raised on the worker thread."""
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        if self.threaded:
            self._queue.put(_END)
            self._thread.join()
            self.check()
