"""A desktop window as one of the loop's outputs: draw the first box with the mouse, watch the track.

Only for machines with a display and an OpenCV built with a GUI; a headless
board uses the web page (`--serve`) instead. It runs on the loop's output thread,
which is then the only thread that touches the GUI.
"""

from __future__ import annotations

import os

import cv2
from loguru import logger

from app.live.control import TrackController
from app.live.tracked import Tracked
from app.media.drawing import annotate
from app.media.prompt import PromptError
from app.samurai.boxes import Box

WINDOW = "SAMURAI"
QUIT_KEYS = (ord("q"), 27)  # q, Esc
KEY_MASK = 0xFF


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def window_works() -> bool:
    """opencv-python-headless has no GUI: tracking goes on without a window, with a warning."""
    try:
        cv2.namedWindow(WINDOW)
    except cv2.error:
        logger.warning("this OpenCV build cannot open windows (headless); install opencv-python to see the tracking")
        return False
    return True


class DesktopWindow:
    """Shows each result; on the first frame without a box, lets the user draw one (a prompt for the loop)."""

    def __init__(self, controller: TrackController):
        self.controller = controller
        self._asked = False

    def __call__(self, item: Tracked) -> None:
        if not item.results:
            if not self._asked:
                self._asked = True
                self.controller.track(self._draw(item), frame=item.frame.index)
            return
        if not item.record:
            return
        shown = annotate(item.frame.image, item.results)
        cv2.imshow(WINDOW, cv2.cvtColor(shown, cv2.COLOR_RGB2BGR))
        if cv2.waitKey(1) & KEY_MASK in QUIT_KEYS:
            self.controller.stop()

    def _draw(self, item: Tracked) -> Box:
        try:
            x, y, w, h = cv2.selectROI(WINDOW, cv2.cvtColor(item.frame.image, cv2.COLOR_RGB2BGR), showCrosshair=False)
        except cv2.error as exc:
            raise PromptError("this OpenCV build cannot open a window; pass --bbox x,y,w,h") from exc
        return Box(float(x), float(y), float(w), float(h))
