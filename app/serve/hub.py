"""The pictures the web page shows: the newest frame with the mask and box drawn, as JPEG.

The loop's output thread publishes; each page connection waits for the next
picture in its own asyncio loop. Only the newest picture is kept for streaming
(a slow browser skips pictures, it never queues them); a prompt names the
picture's frame index and applies to that decoded frame, which the loop holds
(app/live/frame_history.py). Needs no web framework.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np

from app.live.tracked import Tracked
from app.media.drawing import annotate

JPEG_QUALITY = 85
# Waiting for a box, a live source is shown at most this often: enough to aim, light on the CPU.
PREVIEW_MAX_FPS = 15.0


@dataclass(frozen=True)
class Picture:
    version: int
    frame_index: int
    jpeg: bytes


class FrameHub:
    """Latest annotated picture for any number of page connections; it is also a loop output."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Picture | None = None
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._last_preview = 0.0
        self.closed = False

    def __call__(self, item: Tracked) -> None:
        if not item.record:
            return  # an older frame a restart was drawn on: the page has moved past it
        if not item.results:
            now = time.monotonic()
            if now - self._last_preview < 1.0 / PREVIEW_MAX_FPS:
                return
            self._last_preview = now
            self.publish(item.frame.index, item.frame.image)
        else:
            self.publish(item.frame.index, annotate(item.frame.image, item.results))

    def publish(self, frame_index: int, rgb: np.ndarray) -> None:
        """Make `rgb` the newest picture."""
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            return
        with self._lock:
            version = self._latest.version + 1 if self._latest else 1
            self._latest = Picture(version, frame_index, jpeg.tobytes())
            waiters = list(self._waiters)
        self._wake(waiters)

    def close(self) -> None:
        """Ends every stream (the server is shutting down)."""
        with self._lock:
            self.closed = True
            waiters = list(self._waiters)
        self._wake(waiters)

    @staticmethod
    def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]) -> None:
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that connection's loop has closed
                pass

    def latest(self) -> Picture | None:
        with self._lock:
            return self._latest

    async def next_picture(self, after_version: int) -> Picture | None:
        """The first picture newer than `after_version`; None once the hub is closed."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiters.add(waiter)
        try:
            while True:
                with self._lock:
                    latest, closed = self._latest, self.closed
                if closed:
                    return None
                if latest is not None and latest.version > after_version:
                    return latest
                await event.wait()
                event.clear()
        finally:
            with self._lock:
                self._waiters.discard(waiter)
