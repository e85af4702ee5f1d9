"""SAMURAI tracking of one object over four sub-model runners, keeping its state between frames.

Per frame, top to bottom as the data flows: preprocess → image encoder (the
shared step of `frame_encoder`, the same for every object) → then per object
(`step`): memory attention (`memory_graphs`, or the no-memory embedding on the
prompt frame) → mask decoder (`decoder`) → mask selection (`mask_choice`:
stability fallback, best IoU, or SAMURAI's Kalman score) → memory encoder →
frame-sized mask (`results.FrameResult`). The runners know nothing about the
video; an object's state lives in its `MemoryBank` and `MotionState`, so
objects that share one encoded frame stay independent (`app.samurai.multi_tracker`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from app.samurai.config import TrackerConfig
from app.samurai.frame_encoder import EncodedFrame, FrameEncoder
from app.samurai.results import FrameResult
from app.samurai.step import new_object_state, step_object

if TYPE_CHECKING:  # the algorithm reads a bundle; opening one (and its runtimes) is the caller's business
    from acl_models.bundle import ModelBundle


class SamuraiTracker:
    """One object, keeping its `ObjectState` between calls of the pure `step_object`.

    `step` encodes the frame itself; `track` takes a frame encoded once for several objects.
    """

    # Times the stages; a benchmark on a busy machine may swap in time.process_time (here and on `encoder`).
    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, bundle: ModelBundle, config: TrackerConfig, num_frames: int | None = None):
        self.bundle = bundle
        self.config = config
        self.encoder = FrameEncoder(bundle, config)
        self.state = new_object_state(bundle, config, num_frames)

    def prepare_input(self, image: np.ndarray) -> np.ndarray:
        """The image encoder's input for a frame; pure, so a caller may run it ahead of `step`."""
        return self.encoder.prepare_input(image)

    def step(
        self,
        frame_idx: int,
        image: np.ndarray,
        box_xyxy: tuple[float, float, float, float] | None = None,
        model_input: np.ndarray | None = None,
    ) -> FrameResult:
        """Track one frame. The first call needs the prompt box (original pixels, x1, y1, x2, y2).

        `model_input` is `prepare_input(image)` when the caller prepared it ahead.
        """
        frame = self.encoder.encode(frame_idx, image, model_input)
        result = self.track(frame, box_xyxy)
        result.timings = {**frame.timings, **result.timings}
        return result

    def track(self, frame: EncodedFrame, box_xyxy: tuple[float, float, float, float] | None = None) -> FrameResult:
        """This object's step on an encoded frame; a box (re)starts the object from it, as on its first frame."""
        result, self.state = step_object(self.bundle, self.config, self.state, frame, box_xyxy, self.clock)
        return result

    def state_nbytes(self) -> int:
        return self.state.nbytes()
