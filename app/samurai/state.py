"""One object's tracking state between frames, kept apart from the models that step it.

As SAM 2's predictor passes an inference state to models that hold none, the step
(`app.samurai.step.step_object`) takes an object's `ObjectState` and returns the
next one; `MultiObjectTracker` owns one per object id. Every part is immutable
(frozen dataclasses, tuples of memory entries, arrays that no step writes), so a
step shares what it keeps with the state before it, and keeping an old state (a
snapshot, to prompt again from an earlier frame) is keeping its reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.samurai.memory_bank import MemoryBank
from app.samurai.motion_selection import MotionState


@dataclass(frozen=True)
class ObjectState:
    """An object's memory bank and pointers, its Kalman state and stable-frame count, and its prompt frame."""

    memory: MemoryBank
    motion: MotionState = field(default_factory=MotionState)
    prompt_frame: int | None = None  # frame index of the box it was (re)started from; None: it needs a box

    def restarted(self) -> ObjectState:
        """The object forgotten: empty memory of the same capacity, no motion; its next step needs a box."""
        return ObjectState(self.memory.emptied())

    def nbytes(self) -> int:
        """Bytes of the memories and pointers it keeps (the run's `state_bytes`)."""
        return self.memory.nbytes()
