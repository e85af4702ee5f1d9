"""The one place where a prompt reaches the tracker: on the loop thread, after its frame was tracked.

Every door (the prompt file, POST /api/prompts, MQTT, the page, the window)
hands commands to the loop; the loop gives each to `PromptDispatcher.apply`
after stepping the newest frame and before writing it, as the official video
predictor applies a prompt between `propagate_in_video` calls. The frame a
prompt names is found in the loop's `FrameHistory` (the decoded source frame);
one that is not held any more is refused with a message that says how far back
prompts go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from app.live.commands import Command, command_json, follow_ids
from app.live.frame_history import FrameHistory, frame_refusal
from app.media.outputs import mask_png
from app.media.prompt import PromptError
from app.media.sources import Frame
from app.samurai.multi_tracker import MultiObjectTracker
from app.samurai.results import FrameResult

PROMPT = "prompt"


class MaskNames(Protocol):
    """Where a mask prompt's mask is kept: its file name relative to the output folder (app/live/prompt_masks.py)."""

    def name(self, frame: int, obj_id: int) -> str: ...


@dataclass(frozen=True)
class AppliedPrompt:
    """What the result stream's `prompt` record and summary.json say of an applied prompt.

    `content`: the command's fields as applied (box, points, labels, reset, undo, remove; a mask as the name of its
    PNG in the output folder, null when it was not kept), so that a record is a `--prompts` line that replays it.
    `mask_png`: the mask to write there (app/live/prompt_masks.py), never in a record.
    """

    frame: int
    obj_id: int
    kind: str
    content: dict = field(default_factory=dict, compare=False)
    mask_png: bytes | None = field(default=None, repr=False, compare=False)

    def record(self) -> dict:
        return {"type": PROMPT, "frame": self.frame, "id": self.obj_id, "kind": self.kind, **self.content}


@dataclass(frozen=True)
class Outcome:
    """An applied prompt, the frame it applied to and the object's result there (None for a removal)."""

    applied: AppliedPrompt
    frame: Frame
    result: FrameResult | None


class PromptDispatcher:
    """Applies commands to the tracker on the frames the history holds."""

    def __init__(self, history: FrameHistory, masks: MaskNames | None = None):
        self.history = history
        self.masks = masks  # where a mask prompt's mask is kept (the run's output folder); None: not kept

    def apply(self, tracker: MultiObjectTracker, command: Command, newest: Frame) -> Outcome:
        """Apply `command` (its frame, or `newest` when it names none); a refusal is a one-line `PromptError`."""
        prompt = command.prompt
        index = newest.index if command.frame is None else command.frame
        frame = self.history.get(index)
        if frame is None:
            raise PromptError(frame_refusal(index, self.history.held(), self.history.length)
                              or f"frame {index} was skipped while the tracker was busy; prompt a frame that is shown")
        follow_ids(prompt, set(tracker.objects))
        try:
            result = tracker.apply(prompt, index, frame.image)
        except ValueError as exc:  # what the tracker alone knows, in one line
            raise PromptError(str(exc)) from None
        content, png = command_json(prompt), None
        if prompt.mask is not None:
            content["mask"] = None if self.masks is None else self.masks.name(index, prompt.obj_id)
            png = None if self.masks is None else mask_png(prompt.mask)
        return Outcome(AppliedPrompt(index, prompt.obj_id, command.kind, content, png), frame, result)
