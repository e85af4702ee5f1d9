"""Live sources: a camera, and the base of the network streams (`streams.py`), each read on a thread of its own.

A reader thread keeps only the newest frame (a slow tracker skips frames rather
than falling behind), and a feed that stops is reopened with a growing delay
for as long as its reconnect window allows. While it is away, `down_since` says
since when, for `/healthz` and systemd's watchdog. The files and folders of
`sources.py` need none of this: they are read as the tracker asks.
"""

from __future__ import annotations

import queue
import threading
import time
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from loguru import logger

from app.media.sources import (
    Capture,
    CaptureFactory,
    Frame,
    FrameSource,
    SourceError,
    SourceLostError,
    bgr_to_rgb,
    positive_or_none,
)

# How often a consumer waiting for a live frame checks whether the reader ended.
LIVE_POLL_S = 0.1
# A driver stuck inside read() must not hang shutdown; the reader is a daemon thread.
LIVE_JOIN_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Reconnect:
    """How a live source that stops delivering is reopened: backoff doubling from `first_delay_s`
    up to `max_delay_s`, for at most `window_s` seconds (0: the source ends instead)."""

    window_s: float = 0.0
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0


class LiveSource(FrameSource):
    """A live feed (camera or network stream) that keeps only the newest frame.

    A reader thread grabs frames as fast as the feed delivers them into a queue of
    one; a frame the consumer has not taken when the next arrives is replaced and
    counted in `dropped`, so a slow tracker always works on the present. A feed
    that stops is reopened with backoff for `reconnect.window_s` seconds; indices
    and timestamps (seconds since the source was opened) keep increasing across
    the gap. Subclasses name the feed and word its errors.
    """

    is_live = True
    num_frames = None

    def __init__(self, label: str, open_capture: Callable[[], Capture], reconnect: Reconnect = Reconnect()):
        self.label = label
        self.dropped = 0
        self.reconnects = 0
        # monotonic time the feed stopped delivering, None while it delivers (the health check reads it).
        self.down_since: float | None = None
        self._open_capture = open_capture
        self._reconnect = reconnect
        self._closed = False
        self._error: SourceError | None = None
        self._capture = open_capture()
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(self._open_failed())
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            self._capture.release()
            raise SourceError(self._no_first_frame())
        self._start = time.monotonic()
        first = Frame(0, bgr_to_rgb(bgr), 0.0)
        height, width = first.image.shape[:2]
        self.size = (width, height)
        self.fps = positive_or_none(self._capture.get(cv2.CAP_PROP_FPS))
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=1)
        self._queue.put_nowait(first)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_loop, name=f"{label.replace(' ', '')}-reader", daemon=True)
        self._thread.start()

    # -- wording, per kind of feed ------------------------------------------------------

    @abstractmethod
    def _open_failed(self) -> str: ...

    @abstractmethod
    def _no_first_frame(self) -> str: ...

    @abstractmethod
    def _read_failed(self, exc: cv2.error) -> str: ...

    # -- reader thread ------------------------------------------------------------------

    def _read_loop(self) -> None:
        index = 1
        try:
            while not self._stop.is_set():
                ok, bgr = self._capture.read()
                if not ok or bgr is None:
                    if self._stop.is_set():
                        return
                    bgr = self._reopen(index - 1)
                    if bgr is None:
                        return
                now = time.monotonic()
                frame = Frame(index, bgr_to_rgb(bgr), now - self._start, captured=now)
                index += 1
                # Only this thread puts, so after taking the stale frame the put cannot block.
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
                self._queue.put_nowait(frame)
        except cv2.error as exc:
            self._error = SourceError(self._read_failed(exc))

    def _reopen(self, last_index: int) -> np.ndarray | None:
        """Reopen a feed that stopped, with backoff; its first frame, or None when it stays away.

        A feed is back when it delivers a frame, not when it merely opens: a server that
        accepts the connection but sends nothing is still away, and the window runs on.
        """
        window = self._reconnect.window_s
        if window <= 0:
            logger.warning("{} stopped delivering frames after frame {}", self.label, last_index)
            return None
        logger.warning(
            "{} stopped delivering frames after frame {}; reconnecting for up to {:g} s", self.label, last_index, window
        )
        lost = self.down_since = time.monotonic()
        self._capture.release()
        delay = self._reconnect.first_delay_s
        while not self._stop.wait(min(delay, max(lost + window - time.monotonic(), 0.0))):
            capture = self._open_capture()
            if self._stop.is_set():
                capture.release()
                return None
            if capture.isOpened():
                ok, bgr = capture.read()
                if ok and bgr is not None:
                    self._capture = capture
                    self.down_since = None
                    self.reconnects += 1
                    logger.info("{} is back after {:.1f} s", self.label, time.monotonic() - lost)
                    return bgr
            capture.release()
            if time.monotonic() - lost >= window:
                break
            delay = min(2 * delay, self._reconnect.max_delay_s)
        # The capture is released; keep a released object so close() has one to release again harmlessly.
        self._capture = _Released()
        if not self._stop.is_set():
            self._error = SourceLostError(
                f"{self.label} did not come back within {window:g} s after frame {last_index}; "
                "check the camera and the network, or allow longer with --reconnect-s"
            )
        return None

    # -- consumer -----------------------------------------------------------------------

    def __next__(self) -> Frame:
        if self._closed:
            raise StopIteration
        while True:
            try:
                return self._queue.get(timeout=LIVE_POLL_S)
            except queue.Empty:
                if self._thread.is_alive():
                    continue
            # The reader ended; it may have put a last frame after the timeout.
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                if self._error is not None:
                    raise self._error from None
                raise StopIteration from None

    def close(self) -> None:
        """Stop and join the reader, then release the feed; safe to call twice.

        A frame left unread counts as dropped, so frames read = frames taken + `dropped`.
        """
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=LIVE_JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            logger.warning(
                "{} reader did not stop within {} s (blocked in the driver or the network); releasing anyway",
                self.label,
                LIVE_JOIN_TIMEOUT_S,
            )
        try:
            self._queue.get_nowait()
            self.dropped += 1
        except queue.Empty:
            pass
        # Released even when the join timed out: the device must be free for the next open.
        self._capture.release()


class _Released:
    """Stands for a capture that was released and could not be reopened."""

    def release(self) -> None:
        """Nothing is held."""


class CameraSource(LiveSource):
    """A local camera (`cam0`, `/dev/video0`); it ends when the device stops delivering."""

    def __init__(self, device: int, capture_factory: CaptureFactory = cv2.VideoCapture, reconnect: Reconnect = Reconnect()):
        self.device = device
        super().__init__(f"camera {device}", lambda: capture_factory(device), reconnect)

    def _open_failed(self) -> str:
        return (
            f"camera {self.device} (/dev/video{self.device}) does not open; check that it exists "
            "(ls /dev/video*) and that you may read it (group video)"
        )

    def _no_first_frame(self) -> str:
        return (
            f"camera {self.device} opened but returned no frame; check that no other program uses it "
            "and that it is a capture device (v4l2-ctl --list-devices)"
        )

    def _read_failed(self, exc: cv2.error) -> str:
        return f"camera {self.device} failed: {exc}; check the cable and the driver"
