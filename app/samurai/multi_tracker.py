"""Several objects on one video: one image-encoder pass per frame, then each object's own step.

SAM 2 tracks objects independently on a shared image encoding, and so does
this tracker: every object is a `SamuraiTracker` with its own memory bank,
Kalman state and mask selection, fed the frame that `FrameEncoder` encoded
once. An object's results are therefore exactly those of a single-object run
with the same box from the same frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from app.samurai.config import TrackerConfig
from app.samurai.tracker import EncodedFrame, FrameEncoder, FrameResult, SamuraiTracker

if TYPE_CHECKING:  # as in tracker.py: the caller opens the bundle
    from acl_models.bundle import ModelBundle

BoxXYXY = tuple[float, float, float, float]


@dataclass
class MultiFrameResult:
    frame_idx: int
    objects: dict[int, FrameResult]  # by object id, in the order the objects were added
    timings: dict[str, float] = field(default_factory=dict)  # ms: shared stages once, object stages summed


class MultiObjectTracker:
    """Objects keyed by id; `add` and `remove` may be called between any two frames."""

    def __init__(self, bundle: ModelBundle, config: TrackerConfig, num_frames: int | None = None):
        self._make_object = partial(SamuraiTracker, bundle, config, num_frames=num_frames)
        self.encoder = FrameEncoder(bundle, config)
        self.objects: dict[int, SamuraiTracker] = {}
        self._prompts: dict[int, BoxXYXY] = {}

    def add(self, obj_id: int, box_xyxy: BoxXYXY) -> None:
        """Start object `obj_id` from this box on the next frame; an object already tracked restarts from it."""
        if obj_id not in self.objects:
            self.objects[obj_id] = self._make_object()
        self._prompts[obj_id] = tuple(float(v) for v in box_xyxy)

    def start_on(self, obj_id: int, frame_idx: int, image: np.ndarray, box_xyxy: BoxXYXY) -> FrameResult:
        """(Re)start `obj_id` from a box drawn on an earlier frame than the others are at; its result there.

        The object alone steps on that frame (its own image-encoder pass), then
        goes on with the others from the next `step`.
        """
        self.objects[obj_id] = self._make_object()
        self._prompts.pop(obj_id, None)
        return self.objects[obj_id].step(frame_idx, image, box_xyxy)

    def remove(self, obj_id: int) -> None:
        """Stop tracking `obj_id`; unknown ids raise KeyError."""
        del self.objects[obj_id]
        self._prompts.pop(obj_id, None)

    def prepare_input(self, image: np.ndarray) -> np.ndarray:
        """The image encoder's input for a frame; pure, so a caller may run it ahead of `step`."""
        return self.encoder.prepare_input(image)

    def step(self, frame_idx: int, image: np.ndarray, model_input: np.ndarray | None = None) -> MultiFrameResult:
        """Encode the frame once (from `model_input` when prepared ahead) and run every object's step on it."""
        return self.track(self.encoder.encode(frame_idx, image, model_input))

    def track(self, frame: EncodedFrame) -> MultiFrameResult:
        """Every object's step on a frame encoded once (`encoder.encode`, `encoder.submit` or `encoder.frames`)."""
        frame_idx = frame.frame_idx
        timings = dict(frame.timings)
        results = {}
        for obj_id, tracker in self.objects.items():
            result = tracker.track(frame, self._prompts.pop(obj_id, None))
            for stage, ms in result.timings.items():
                timings[stage] = timings.get(stage, 0.0) + ms
            results[obj_id] = result
        return MultiFrameResult(frame_idx, results, timings)

    def state_nbytes(self) -> int:
        return sum(tracker.state_nbytes() for tracker in self.objects.values())
