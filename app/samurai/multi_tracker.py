"""Several objects on one video: one image-encoder pass per frame, then each object's own step.

SAM 2 tracks objects independently on a shared image encoding, and so does
this tracker: it owns one `ObjectState` per object id (memory bank, Kalman
state, prompt frame) and runs the stateless `step_object` on each, fed the
frame that `FrameEncoder` encoded once. An object's results are therefore
exactly those of a single-object run with the same box from the same frame.

Prompts (`apply`) follow the official video predictor's interactive calls on a
frame already tracked: for the last `config.prompt_history` frames the tracker
keeps each object's state before and after the frame, its logits and the clicks
given there, so a click refines the object from that frame's own state. Each
object also keeps, per held frame, a short stack of what it was before each
prompt there, so that an undo restores it exactly.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import replace
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from app.samurai.config import TrackerConfig
from app.samurai.decoder import DecoderPrompt, box_prompt, to_model_pixels
from app.samurai.frame_encoder import EncodedFrame, FrameEncoder
from app.samurai.mask_prompt import mask_object
from app.samurai.motion_selection import MotionState
from app.samurai.prompts import Prompt
from app.samurai.results import FrameResult
from app.samurai.state import ObjectState
from app.samurai.step import new_object_state, prompt_object, step_object

if TYPE_CHECKING:  # as in tracker.py: the caller opens the bundle
    from acl_models.bundle import ModelBundle

BoxXYXY = tuple[float, float, float, float]
# The official predictor clamps the previous logits it feeds back as a mask prompt ("rare numerical issues").
MASK_PROMPT_CLAMP = 32.0
_NO_POINTS = (np.zeros((0, 2), np.float32), np.zeros(0, np.int32))
# The prompts per object per held frame that an undo can take back, newest last (a page's few clicks).
UNDO_DEPTH = 16


@dataclass(frozen=True)
class HeldObject:
    """One object on one held frame: what a prompt on that frame refines from.

    `tracked` is the official predictor's "frame already tracked for this object": a prompt then
    refines (memory attention from `before`, the previous logits as mask prompt). An object that a
    prompt started on this frame is not tracked there until the next frame: a further prompt
    re-conditions it from scratch, with its accumulated clicks.
    """

    before: ObjectState  # its state before this frame (a fresh one where it started here)
    after: ObjectState  # its state after this frame, corrections included
    result: FrameResult  # its latest result on this frame
    tracked: bool
    coords: np.ndarray = field(default_factory=lambda: _NO_POINTS[0])  # clicks and box corners given here,
    labels: np.ndarray = field(default_factory=lambda: _NO_POINTS[1])  # in model-input pixels

    @property
    def logits(self) -> np.ndarray:
        """(4h, 4w) low-res logits of its latest result on this frame, holes filled."""
        return self.result.low_res_logits


@dataclass(frozen=True)
class _Undo:
    """An object as it was just before one prompt on one held frame: what undoing that prompt restores."""

    record: HeldObject  # its record on the prompt's frame
    state: ObjectState  # its state after the newest frame
    later: dict[int, HeldObject]  # its records on the held frames after the prompt's frame
    later_undo: dict[tuple[int, int], list[_Undo]]  # and its undo stacks there
    pending: BoxXYXY | None  # a box `add` had queued for its next step
    newest: int  # the newest tracked frame then: if frames were tracked since, it goes on from the prompt's frame


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
        # The newest frames, oldest first: (frame index, each object's record on it).
        self._held: deque[tuple[int, dict[int, HeldObject]]] = deque(maxlen=config.prompt_history)
        self._undo: dict[tuple[int, int], list[_Undo]] = {}  # by (frame, object id), oldest first

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
        record = HeldObject(self._fresh, self.objects[obj_id], result, False,
                            *self._box_points(box_xyxy, frame))
        self._hold(frame_idx, obj_id, record)
        return result

    def _box_points(self, box_xyxy: BoxXYXY | None, frame: EncodedFrame) -> tuple[np.ndarray, np.ndarray]:
        """A start box as the frame's points (a later click there adds to them, as the official predictor's do)."""
        if box_xyxy is None:
            return _NO_POINTS
        corners = box_prompt(box_xyxy, frame.width, frame.height, self.bundle.manifest.image_size)
        return corners.coords, corners.labels

    def remove(self, obj_id: int) -> None:
        """Stop tracking `obj_id`; unknown ids raise KeyError."""
        del self.objects[obj_id]
        self._prompts.pop(obj_id, None)
        for _, held in self._held:
            held.pop(obj_id, None)
        self._drop_undo(lambda frame_idx, other: other == obj_id)

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
        held = {}
        for obj_id, state in self.objects.items():
            prompt = self._prompts.pop(obj_id, None)
            result, self.objects[obj_id] = step_object(self.bundle, self.config, state, frame, prompt, self.clock)
            before = state if prompt is None else self._fresh
            held[obj_id] = HeldObject(before, self.objects[obj_id], result, True,
                                      *self._box_points(prompt, frame))
            for stage, ms in result.timings.items():
                timings[stage] = timings.get(stage, 0.0) + ms
            results[obj_id] = result
        self._held.append((frame_idx, held))
        oldest = self._held[0][0]
        self._drop_undo(lambda held_idx, _: held_idx < oldest)
        return MultiFrameResult(frame_idx, results, timings)

    def held_frames(self) -> range:
        """The frames a prompt may refer to: the newest tracked ones, at most `config.prompt_history`."""
        if not self._held:
            return range(0)
        return range(self._held[0][0], self._held[-1][0] + 1)

    def apply(self, prompt: Prompt, frame_idx: int, image: np.ndarray) -> FrameResult | None:
        """Apply `prompt` on frame `frame_idx` after that frame was tracked and before the next `step`.

        `frame_idx` is the newest tracked frame or an earlier one the tracker still holds
        (`held_frames()`); `image` is that frame's decoded source image. Returns the object's
        corrected result on that frame, None for `remove`. After a prompt on an older frame the
        object goes on from its corrected state there; the frames since are not tracked again.
        """
        obj_id = prompt.obj_id
        if prompt.remove:
            if obj_id not in self.objects:
                known = ", ".join(str(i) for i in self.objects) or "none"
                raise ValueError(f"object {obj_id} is not tracked (tracked: {known}); remove one of those")
            self.remove(obj_id)
            return None
        held = self._held_for(frame_idx, obj_id)
        if prompt.undo:
            return self._take_back(obj_id, frame_idx, held)
        undo = self._snapshot(obj_id, frame_idx, held)
        result = self._correct(prompt, frame_idx, image, held)
        if undo is not None:
            stack = self._undo.setdefault((frame_idx, obj_id), [])
            stack.append(undo)
            del stack[:-UNDO_DEPTH]
        return result

    def _correct(self, prompt: Prompt, frame_idx: int, image: np.ndarray,
                 held: dict[int, HeldObject]) -> FrameResult:
        """A box, clicks or a mask on a held frame (`apply` less removal and undo)."""
        obj_id = prompt.obj_id
        if prompt.reset:
            if prompt.box is None:
                raise ValueError(f"a reset prompt for object {obj_id} needs a box")
            result = self.start_on(obj_id, frame_idx, image, prompt.box.xyxy())
            self._forget_after(obj_id, frame_idx)
            return result
        record = held.get(obj_id)
        if record is None and obj_id in self.objects:
            raise ValueError(f"object {obj_id} was not tracked on frame {frame_idx}; prompt it on a frame since "
                             f"it started (held: {self._held_text()})")
        frame = self.encoder.encode(frame_idx, image)
        if prompt.mask is not None:
            return self._apply_mask(obj_id, frame, prompt.mask, held, record)
        size = self.bundle.manifest.image_size
        clicks = to_model_pixels(np.asarray(prompt.points, np.float32).reshape(-1, 2), frame.width, frame.height, size)
        labels = np.asarray(prompt.labels, np.int32).reshape(-1)
        if prompt.box is not None:  # a box replaces the frame's earlier clicks (`clear_old_points`)
            corners = box_prompt(prompt.box.xyxy(), frame.width, frame.height, size)
            coords, labels = np.concatenate([corners.coords, clicks]), np.concatenate([corners.labels, labels])
        elif record is not None:  # clicks on one frame accumulate (`clear_old_points=False`)
            coords, labels = np.concatenate([record.coords, clicks]), np.concatenate([record.labels, labels])
        else:
            coords = clicks
        before, motion = self._refined_from(record, frame_idx)
        mask_logits = None if record is None else np.clip(record.logits, -MASK_PROMPT_CLAMP, MASK_PROMPT_CLAMP)
        most = int(self.bundle.manifest.hyper.get("max_prompt_points", len(labels)))
        if len(labels) > most:
            raise ValueError(f"{len(labels)} points on frame {frame_idx} for object {obj_id} (a box counts 2); the "
                             f"models take at most {most}: give a box, or fewer clicks")
        decoder_prompt = DecoderPrompt(coords, labels, mask_logits)
        result, after = prompt_object(self.bundle, self.config, before, motion, frame, decoder_prompt, self.clock)
        return self._keep(obj_id, frame, result, after, held, record, coords, labels)

    def _apply_mask(self, obj_id: int, frame: EncodedFrame, mask: np.ndarray, held: dict[int, HeldObject],
                    record: HeldObject | None) -> FrameResult:
        """`add_new_mask`: the mask replaces the frame's result and its clicks (`mask_inputs` clears `point_inputs`)."""
        before, motion = self._refined_from(record, frame.frame_idx)
        result, after = mask_object(self.bundle, self.config, before, motion, frame, mask, self.clock)
        return self._keep(obj_id, frame, result, after, held, record, *_NO_POINTS)

    def _refined_from(self, record: HeldObject | None, frame_idx: int) -> tuple[ObjectState, MotionState]:
        """The state a prompt on a held frame starts from, and the Kalman state it reads.

        A new object, or one a prompt started on this frame, starts afresh (an initial conditioning
        frame); a tracked one from its state before the frame, or on its own prompt frame from the
        memory that frame made. The Kalman state is the object's after this frame, this frame's earlier
        prompts included (the SAMURAI code keeps one, updated by every call): on the newest frame that is
        the latest; on an older one, the state after it, not the newer frames' (the object goes on from
        this frame, as if they had not been tracked).
        """
        if record is None:
            return self._fresh, self._fresh.motion
        if not record.tracked:
            return self._fresh, record.after.motion
        if record.after.prompt_frame == frame_idx:
            return record.after, record.after.motion
        return record.before, record.after.motion

    def _keep(self, obj_id: int, frame: EncodedFrame, result: FrameResult, after: ObjectState,
              held: dict[int, HeldObject], record: HeldObject | None, coords: np.ndarray,
              labels: np.ndarray) -> FrameResult:
        """Make `after` the object's state, and the frame's record of it; the object goes on from here."""
        result.timings = {**frame.timings, **result.timings}
        tracked = record is not None and record.tracked
        before = record.before if tracked else self._fresh
        held[obj_id] = HeldObject(before, after, result, tracked, coords, labels)
        self.objects[obj_id] = after
        self._prompts.pop(obj_id, None)
        self._forget_after(obj_id, frame.frame_idx)
        return result

    def _held_for(self, frame_idx: int, obj_id: int) -> dict[int, HeldObject]:
        """The records of a held frame; a new object may also start on a frame never stepped (the caller skips
        `step` while no object is tracked), newer than every held one or not (`_records_on`)."""
        if obj_id not in self.objects and (records := self._records_on(frame_idx)) is not None:
            return records
        return self._held_on(frame_idx)

    def _snapshot(self, obj_id: int, frame_idx: int, held: dict[int, HeldObject]) -> _Undo | None:
        """What `obj_id` is before a prompt on `frame_idx`; None for an object the prompt starts there."""
        record = held.get(obj_id)
        if record is None:
            return None
        later = {held_idx: frame[obj_id] for held_idx, frame in self._held
                 if held_idx > frame_idx and obj_id in frame}
        later_undo = {key: list(stack) for key, stack in self._undo.items() if key[1] == obj_id and key[0] > frame_idx}
        return _Undo(record, self.objects[obj_id], later, later_undo, self._prompts.get(obj_id), self._held[-1][0])

    def _take_back(self, obj_id: int, frame_idx: int, held: dict[int, HeldObject]) -> FrameResult:
        """Undo the last prompt on `frame_idx` for `obj_id`: the object is again what it was before it.

        With no frame tracked since that prompt the object is restored whole (its state, its records
        on later frames); otherwise it goes on from its restored state on `frame_idx`, as after any
        prompt on an older frame.
        """
        stack = self._undo.get((frame_idx, obj_id))
        if not stack:
            raise ValueError(f"nothing to undo for object {obj_id} on frame {frame_idx}: no prompt given to it there "
                             "is held (an object a prompt started there is taken back with remove)")
        undo = stack.pop()
        held[obj_id] = undo.record
        self._prompts.pop(obj_id, None)
        self._forget_after(obj_id, frame_idx)
        if undo.newest == self._held[-1][0]:
            self.objects[obj_id] = undo.state
            for held_idx, frame in self._held:
                if held_idx in undo.later:
                    frame[obj_id] = undo.later[held_idx]
            self._undo.update(undo.later_undo)
            if undo.pending is not None:
                self._prompts[obj_id] = undo.pending
        else:
            self.objects[obj_id] = undo.record.after
        return replace(undo.record.result, timings={})

    def _drop_undo(self, gone: Callable[[int, int], bool]) -> None:
        """Forget the undo stacks of the (frame, object id) pairs for which `gone` is true."""
        for key in [key for key in self._undo if gone(*key)]:
            del self._undo[key]

    def _held_on(self, frame_idx: int) -> dict[int, HeldObject]:
        for held_idx, held in self._held:
            if held_idx == frame_idx:
                return held
        raise ValueError(f"frame {frame_idx} is not held: prompts may refer to frames {self._held_text()} "
                         f"(prompt_history {self.config.prompt_history} in the config)")

    def _held_text(self) -> str:
        frames = self.held_frames()
        return f"{frames.start} to {frames.stop - 1}" if frames else "none yet"

    def _hold(self, frame_idx: int, obj_id: int, record: HeldObject) -> None:
        """Keep `record` for `obj_id` on frame `frame_idx` if that frame is held or newer than all held ones."""
        records = self._records_on(frame_idx)
        if records is not None:
            records[obj_id] = record

    def _records_on(self, frame_idx: int) -> dict[int, HeldObject] | None:
        """The records of `frame_idx`: a held frame's; new ones for a frame never stepped within the last
        `prompt_history` frames (the caller steps no frame while no object is tracked, and the official
        predictor starts a new object on any frame), held in frame order; None for an older frame."""
        for held_idx, held in self._held:
            if held_idx == frame_idx:
                return held
        if self._held and frame_idx <= self._held[-1][0] - self.config.prompt_history:
            return None
        records: dict[int, HeldObject] = {}
        frames = sorted([*self._held, (frame_idx, records)], key=lambda held: held[0])
        self._held = deque(frames[-self.config.prompt_history:], maxlen=self.config.prompt_history)
        return records

    def _forget_after(self, obj_id: int, frame_idx: int) -> None:
        """Drop `obj_id`'s records on frames after `frame_idx`: its track now goes on from that frame."""
        for held_idx, held in self._held:
            if held_idx > frame_idx:
                held.pop(obj_id, None)
        self._drop_undo(lambda held_idx, other: other == obj_id and held_idx > frame_idx)

    def state_nbytes(self) -> int:
        return sum(state.nbytes() for state in self.objects.values())
