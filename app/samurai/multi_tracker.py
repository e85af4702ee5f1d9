"""Several objects on one video: one image-encoder pass per frame, then each object's own step.

SAM 2 tracks objects independently on a shared image encoding, and so does
this tracker: it owns one `ObjectState` per object id (memory bank, Kalman
state, prompt frame) and runs the stateless `step_object` on each, fed the
frame that `FrameEncoder` encoded once. An object's results are therefore
exactly those of a single-object run with the same box from the same frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from app.samurai.config import TrackerConfig
from app.samurai.prompts import Prompt
from app.samurai.state import ObjectState
from app.samurai.tracker import EncodedFrame, FrameEncoder, FrameResult, new_object_state, step_object

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

    # Times the objects' stages, as `SamuraiTracker.clock` does.
    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, bundle: ModelBundle, config: TrackerConfig, num_frames: int | None = None):
        self.bundle = bundle
        self.config = config
        self.encoder = FrameEncoder(bundle, config)
        self._fresh = new_object_state(bundle, config, num_frames)
        self.objects: dict[int, ObjectState] = {}  # each object's state after its last step
        self._prompts: dict[int, BoxXYXY] = {}  # boxes that (re)start their object on the next frame
        self._newest = -1  # the newest frame stepped

    def add(self, obj_id: int, box_xyxy: BoxXYXY) -> None:
        """Start object `obj_id` from this box on the next frame; an object already tracked restarts from it."""
        if obj_id not in self.objects:
            self.objects[obj_id] = self._fresh
        self._prompts[obj_id] = tuple(float(v) for v in box_xyxy)

    def start_on(self, obj_id: int, frame_idx: int, image: np.ndarray, box_xyxy: BoxXYXY) -> FrameResult:
        """(Re)start `obj_id` from a box drawn on an earlier frame than the others are at; its result there.

        The object alone steps on that frame (its own image-encoder pass), then
        goes on with the others from the next `step`.
        """
        self._prompts.pop(obj_id, None)
        frame = self.encoder.encode(frame_idx, image)
        result, self.objects[obj_id] = step_object(self.bundle, self.config, self._fresh, frame, box_xyxy, self.clock)
        result.timings = {**frame.timings, **result.timings}
        return result

    def apply(self, prompt: Prompt, frame_idx: int, image: np.ndarray) -> FrameResult | None:
        """Apply `prompt` on frame `frame_idx` after that frame was tracked and before the next `step`.

        This stand-in knows only the prompts that start an object over: a box for a new object or with
        `reset`, and removal (from the next frame). Points, masks and refining boxes raise ValueError.
        """
        if prompt.remove:
            if prompt.obj_id not in self.objects:
                raise ValueError(f"object {prompt.obj_id} is not tracked; remove one of {sorted(self.objects)}")
            self.remove(prompt.obj_id)
            return None
        starts_over = prompt.reset or prompt.obj_id not in self.objects
        if prompt.box is None or prompt.points or prompt.mask is not None or not starts_over:
            raise ValueError("this tracker applies only a box that starts an object or resets it (\"reset\": true); "
                             "send one of those")
        return self.start_on(prompt.obj_id, frame_idx, image, prompt.box.xyxy())

    def held_frames(self) -> range:
        """Frames a prompt may still refer to (bounded by config.prompt_history)."""
        return range(max(self._newest - self.config.prompt_history + 1, 0), self._newest + 1)

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
        frame_idx = self._newest = frame.frame_idx
        timings = dict(frame.timings)
        results = {}
        for obj_id, state in self.objects.items():
            prompt = self._prompts.pop(obj_id, None)
            result, self.objects[obj_id] = step_object(self.bundle, self.config, state, frame, prompt, self.clock)
            for stage, ms in result.timings.items():
                timings[stage] = timings.get(stage, 0.0) + ms
            results[obj_id] = result
        return MultiFrameResult(frame_idx, results, timings)

    def state_nbytes(self) -> int:
        return sum(state.nbytes() for state in self.objects.values())
