"""What the user asks of a running tracking loop (prompts, stop) and what it reports back.

The web page, MQTT, the window or the command line talk to the loop only
through a `TrackController`: they submit commands (app/live/commands.py) and a
stop, and read the status the loop publishes after every frame. `submit` checks
a command against the frame's size and what the loop last published (the frames
it holds, the objects it tracks), so a door answers a bad one at once; the loop
applies the rest between two frames (app/live/dispatch.py). Objects are keyed by
an id; a command without an id is for `DEFAULT_OBJECT`, object 1 (the first of
the command line's boxes).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from collections.abc import Callable

from app.live.commands import Command, check_points, fit, follow_ids, prompt_points
from app.live.frame_history import frame_refusal
from app.media.prompt import PromptError
from app.samurai.boxes import Box
from app.samurai.prompts import Prompt

DEFAULT_OBJECT = 1
# Besides the tracker's own states (app.samurai.tracker TRACKING, LOST): no box yet, and the run is over.
WAITING, ENDED = "waiting", "ended"


# What a door hears of a command the loop refused after the door accepted it (the frame fell out meanwhile).
Refused = Callable[[str], None]


@dataclass(frozen=True)
class Queued:
    command: Command
    on_refused: Refused | None = None


@dataclass
class ObjectStatus:
    state: str = WAITING
    box: tuple[int, int, int, int] | None = None
    object_score: float | None = None


@dataclass
class LoopStatus:
    """What the loop last published; `objects` is keyed by object id."""

    frame: int = -1
    fps: float = 0.0
    latency_ms: float = 0.0
    step_ms: float = 0.0
    live: bool = False
    dropped: int = 0
    ended: bool = False
    objects: dict[int, ObjectStatus] = field(default_factory=dict)
    held: range = range(0)  # the frames a prompt may name (app/live/frame_history.py)
    history: int = 0  # how many frames the loop holds at most


class TrackController:
    """Thread-safe mailbox between the loop and whoever controls it."""

    def __init__(self, frame_size: tuple[int, int], max_points: int | None = None):
        self.frame_size = frame_size
        self.max_points = max_points  # points one command may give an object (the manifest's max_prompt_points)
        self._lock = threading.Lock()
        self._queue: list[Queued] = []
        self._prompted = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._status = LoopStatus()
        self.published_at: float | None = None  # monotonic time of the loop's last publish (the health check)

    # -- requests (any thread) ----------------------------------------------------------

    def submit(self, commands: list[Command], on_refused: Refused | None = None) -> list[Command]:
        """Queue commands for the loop, all or none, as checked (a box clipped to the frame).

        A command that cannot apply raises `PromptError` with a one-line message: out of the frame, on a frame
        not held (in the future or past the history), removing an object that is not tracked.
        """
        width, height = self.frame_size
        with self._prompted:
            status = self._status
            known = {k for k, v in status.objects.items() if v.state != WAITING}
            known |= {q.command.prompt.obj_id for q in self._queue if q.command.prompt is not None}
            checked = []
            for number, command in enumerate(commands, start=1):
                try:
                    checked.append(self._check(fit(command, width, height), status, known, self.max_points))
                except PromptError as exc:
                    raise (PromptError(f"command {number}: {exc}") if len(commands) > 1 else exc) from None
            self._queue += [Queued(command, on_refused) for command in checked if command.prompt is not None]
            self._prompted.notify_all()
        if any(command.prompt is None for command in checked):
            self.stop()
        return checked

    @staticmethod
    def _check(command: Command, status: LoopStatus, known: set[int], max_points: int | None) -> Command:
        """The command if its frame is held, the object it removes known (`known` follows the batch) and its points
        within what the models take (clicks added to earlier ones on the frame are the loop's to refuse)."""
        prompt = command.prompt
        if prompt is None:
            return command
        check_points(prompt_points(prompt), max_points)
        if command.frame is not None and status.history:
            refusal = frame_refusal(command.frame, status.held, status.history)
            if refusal is not None:
                raise PromptError(refusal)
        follow_ids(prompt, known)
        return command

    def track(self, box: Box, object_id: int = DEFAULT_OBJECT, frame: int | None = None) -> Box:
        """Start (or start over) `object_id` from a box; the box as checked (clipped to the frame)."""
        (command,) = self.submit([Command(Prompt(object_id, box=box, reset=True), frame)])
        return command.prompt.box

    def drop(self, object_id: int) -> bool:
        """Stop tracking an object from the next frame on; False when no such object is tracked or queued."""
        try:
            self.submit([Command(Prompt(object_id, remove=True))])
        except PromptError:
            return False
        return True

    def stop(self) -> None:
        self._stop.set()
        with self._prompted:
            self._prompted.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait_stopped(self, timeout_s: float | None = None) -> bool:
        return self._stop.wait(timeout_s)

    # -- the loop's side ----------------------------------------------------------------

    def take_commands(self) -> list[Queued]:
        with self._lock:
            queued, self._queue = self._queue, []
        return queued

    def wait_for_prompt(self, timeout_s: float) -> bool:
        """Block until a command or a stop arrives, or `timeout_s` passes; True when a command is pending."""
        with self._prompted:
            self._prompted.wait_for(lambda: self._queue or self._stop.is_set(), timeout_s)
            return bool(self._queue)

    def publish(self, status: LoopStatus) -> None:
        with self._lock:
            self._status = status
            self.published_at = time.monotonic()

    def status(self, object_id: int = DEFAULT_OBJECT) -> dict:
        """The JSON status: state, box and object_score of one object (the default one), frame, fps,
        latency_ms (capture → result), step_ms (the tracker's time per frame), live (a camera or stream: latency is
        what a consumer sees; a file is read ahead, so its latency measures the queue), dropped, and `objects`: every tracked object's id → {state, box, object_score}."""
        with self._lock:
            loop = self._status
        obj = loop.objects.get(object_id, ObjectStatus())
        return {
            **self._object_json(obj, loop.ended),
            "frame": loop.frame,
            "fps": round(loop.fps, 2),
            "latency_ms": round(loop.latency_ms, 1),
            "step_ms": round(loop.step_ms, 1),
            "live": loop.live,
            "dropped": loop.dropped,
            "objects": {str(k): self._object_json(v, loop.ended) for k, v in loop.objects.items() if v.state != WAITING},
        }

    @staticmethod
    def _object_json(obj: ObjectStatus, ended: bool) -> dict:
        return {
            "state": ENDED if ended else obj.state,
            "box": list(obj.box) if obj.box is not None else None,
            "object_score": obj.object_score,
        }
