"""Frames from the source with their model input (`Feed`), read ahead on a worker thread: a file or folder
loses no frame (a full queue makes the reader wait); a live source keeps only the newest prepared frame and
prepares frames only shortly before the models want one, counting the others as dropped."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from app.media.sources import Frame, FrameSource

# Prepared frames waiting for the models (files): enough to hide a slow decode.
FILE_PREFETCH = 2
# How often blocked threads look whether the loop is stopping.
POLL_S = 0.1
# How long closing waits for the feed worker, which may be blocked inside the source.
FEED_JOIN_S = 1.0


@dataclass
class Prepared:
    """A frame and, when tracking, its image-encoder input (None: `step` prepares it)."""

    frame: Frame
    model_input: np.ndarray | None
    prepare_ms: float = 0.0


_END = object()
# Weight of the newest sample in the running means that pace a live feed.
EMA_WEIGHT = 0.2
# A live feed starts preparing this share of a cycle early, so that a step shorter than the
# mean does not wait for a frame; frames that arrive meanwhile replace the prepared one.
EARLY_SHARE = 0.2


def _ema(mean: float, sample: float) -> float:
    return sample if mean == 0.0 else (1 - EMA_WEIGHT) * mean + EMA_WEIGHT * sample


class Feed:
    """Frames from the source with their model input, read on a worker thread when `threaded`."""

    def __init__(self, source: FrameSource, prepare: Callable[[Frame], Prepared], threaded: bool):
        self.source = source
        self.prepare = prepare
        self.threaded = threaded
        self.dropped = 0
        self._frames: Iterator[Frame] = iter(source)
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=1 if source.is_live else FILE_PREFETCH)
        # Live pacing (see _due): when the consumer last took a frame, and running means of its
        # cycle and of one preparation, in seconds.
        self._taken_at = self._last_captured = time.monotonic()
        self._cycle_s = self._prepare_s = 0.0
        if threaded:
            self._thread = threading.Thread(target=self._run, name="frame-feed", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            for frame in self._frames:
                if self.source.is_live and not self._due(frame):
                    self.dropped += 1
                    continue
                started = time.monotonic()
                item = self.prepare(frame)
                self._prepare_s = _ema(self._prepare_s, time.monotonic() - started)
                if self.source.is_live:
                    self._replace(item)
                elif not self._put(item):
                    return
                if self._stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._error = exc
        self._put(_END)

    def _due(self, frame: Frame) -> bool:
        """Whether to prepare this live frame. Preparing every frame of a fast source would take CPU
        from the models, so while nothing is waiting, frames are prepared only from shortly before
        the next take is due (one preparation plus one source frame before it, by the measured
        cycle). A prepared frame still waiting is replaced by a newer one, so a late take gets a
        fresh frame; skipped frames count as dropped.
        """
        period = max(frame.captured - self._last_captured, 0.0)
        self._last_captured = frame.captured
        if not self._queue.empty() or self._cycle_s == 0.0:
            return True  # a fresher frame for the one waiting, or no cycle measured yet
        due = self._taken_at + (1 - EARLY_SHARE) * self._cycle_s - self._prepare_s - period
        return frame.captured >= due

    def _replace(self, item: Prepared) -> None:
        """Keep only the newest prepared frame (only this thread puts, so the put cannot block)."""
        try:
            self._queue.get_nowait()
            self.dropped += 1
        except queue.Empty:
            pass
        self._queue.put_nowait(item)

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(self, stopped: Callable[[], bool]) -> Prepared | None:
        """The next prepared frame; None at the end of the source or once `stopped()` (checked while waiting)."""
        if not self.threaded:
            frame = next(self._frames, None)
            return None if frame is None else self.prepare(frame)
        while True:
            try:
                item = self._queue.get(timeout=POLL_S)
                break
            except queue.Empty:
                if stopped():  # e.g. Stop pressed while a stream is reconnecting
                    return None
        now = time.monotonic()
        self._cycle_s = _ema(self._cycle_s, now - self._taken_at)
        self._taken_at = now
        if item is _END:
            self._queue.put_nowait(_END)  # later calls see the end too
            if self._error is not None:
                raise self._error
            return None
        return item

    def close(self) -> None:
        """Stop the worker; prepared frames never tracked count as dropped for a live source."""
        self._stop.set()
        if self.threaded:
            # A worker waiting on a live source that is reconnecting ends when the source is closed.
            self._thread.join(FEED_JOIN_S)
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _END and self.source.is_live:
                    self.dropped += 1
