"""What the loop hands its outputs for one frame (`Tracked`), and what an output is."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.live.control import DEFAULT_OBJECT
from app.live.dispatch import AppliedPrompt
from app.media.sources import Frame
from app.samurai.results import FrameResult


@dataclass
class Tracked:
    """What the outputs get for one frame: each object's result (its mask, box and state), by object id.

    No results: a frame only shown (waiting for a box). `record` is False for a
    frame whose lines are already written (an older frame a prompt was given on).
    `prompts`: the prompts applied on this frame (the result stream's `prompt` records).
    """

    frame: Frame
    results: dict[int, FrameResult] = field(default_factory=dict)
    record: bool = True
    ready: float = field(default_factory=time.monotonic)  # when the result was ready
    timings: dict[str, float] = field(default_factory=dict)  # the frame's stages (ms), shared ones once
    dropped: list[int] = field(default_factory=list)  # objects the user stopped tracking before this frame
    prompts: list[AppliedPrompt] = field(default_factory=list)

    @property
    def result(self) -> FrameResult | None:
        """The result of the only (or the default) object, None when none was tracked."""
        if len(self.results) == 1:
            return next(iter(self.results.values()))
        return self.results.get(DEFAULT_OBJECT)


Output = Callable[[Tracked], None]
