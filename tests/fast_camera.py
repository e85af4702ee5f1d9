"""A live camera faster than the tracker, for the tests of the live loop (shared by test_pipeline and test_overlap)."""

from __future__ import annotations

import time

import cv2
import numpy as np

# Frames per second of the camera in the tests: faster than any tracker step.
FAST_CAMERA_FPS = 100.0


class FastCamera:
    """A live feed faster than the tracker that never ends by itself: frame k carries k in its pixels."""

    def __init__(self, fps: float, image: np.ndarray):
        self.fps, self.period, self.image = fps, 1.0 / fps, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        self.reads = 0
        self.read_times: list[float] = []
        self._next = time.monotonic()

    def isOpened(self) -> bool:
        return True

    def read(self):
        self._next += self.period
        time.sleep(max(0.0, self._next - time.monotonic()))
        frame = self.image.copy()
        frame[0, 0] = (self.reads % 256, self.reads // 256, 0)
        self.reads += 1
        self.read_times.append(time.monotonic())
        return True, frame

    def release(self) -> None:
        """Nothing to free."""

    def get(self, prop: int) -> float:
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0
