"""The decoded source frames a prompt may refer to: the newest `prompt_history` frames the loop took.

A click on the page, a box over MQTT or a script's prompt names a frame by its
index; the prompt applies to that very frame as decoded (not to a picture made
for the page), as long as it is held here. The loop thread alone adds frames;
the doors only ask whether an index is held (`frame_refusal`), from the range
the loop publishes.
"""

from __future__ import annotations

from collections import deque

from app.media.sources import Frame


def frame_refusal(index: int, held: range, length: int) -> str | None:
    """Why a prompt on frame `index` cannot apply, None when it can; `held` is the range of frames held."""
    if not held:
        return f"frame {index} has not been read yet (no frame has); prompt a frame once it is shown"
    if index > held.stop - 1:
        return f"frame {index} is in the future: the newest frame is {held.stop - 1}; prompt a frame that is shown"
    if index < held.start:
        return (f"frame {index} is no longer held: prompts can go back {length} frames (to frame {held.start}, "
                f"prompt_history in the tracker config); prompt a newer frame")
    return None


class FrameHistory:
    """The last `length` frames taken by the loop, by index (the loop takes frames in increasing order)."""

    def __init__(self, length: int):
        self.length = length
        self._frames: deque[Frame] = deque(maxlen=length)

    def add(self, frame: Frame) -> None:
        self._frames.append(frame)

    def held(self) -> range:
        """The indices a prompt may name: from the oldest frame held to the newest (a live source skips some)."""
        if not self._frames:
            return range(0)
        return range(self._frames[0].index, self._frames[-1].index + 1)

    def get(self, index: int) -> Frame | None:
        for frame in reversed(self._frames):
            if frame.index == index:
                return frame
        return None
