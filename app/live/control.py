"""What the user asks of a running tracking loop (start, restart, stop) and what it reports back.

The web page, a script or the command line talk to the loop only through a
`TrackController`: they post prompts and a stop, and read the status the loop
publishes after every frame. Objects are keyed by an id so that one controller
holds several; a prompt without an id is for `DEFAULT_OBJECT`, object 1 (the
first of the command line's boxes).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from app.media.prompt import validate_bbox
from app.samurai.boxes import Box

DEFAULT_OBJECT = 1
# Besides the tracker's own states (app.samurai.tracker TRACKING, LOST): no box yet, and the run is over.
WAITING, ENDED = "waiting", "ended"


@dataclass(frozen=True)
class Prompt:
    """A box to (re)start tracking object `object_id` on frame `frame_index` (None: the next frame).

    `image` is that frame as the user saw it, when it is no longer the loop's current frame.
    """

    box: Box
    frame_index: int | None = None
    image: np.ndarray | None = None
    object_id: int = DEFAULT_OBJECT


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


class TrackController:
    """Thread-safe mailbox between the loop and whoever controls it."""

    def __init__(self, frame_size: tuple[int, int]):
        self.frame_size = frame_size
        self._lock = threading.Lock()
        self._prompts: dict[int, Prompt] = {}
        self._drops: set[int] = set()
        self._prompted = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._status = LoopStatus()
        self.published_at: float | None = None  # monotonic time of the loop's last publish (the health check)

    # -- requests (any thread) ----------------------------------------------------------

    def track(self, prompt: Prompt) -> Box:
        """Queue a prompt; a box that cannot be one raises `PromptError` with the CLI's message."""
        width, height = self.frame_size
        checked = Prompt(validate_bbox(prompt.box, width, height), prompt.frame_index, prompt.image, prompt.object_id)
        with self._prompted:
            self._prompts[prompt.object_id] = checked
            self._drops.discard(prompt.object_id)
            self._prompted.notify_all()
        return checked.box

    def drop(self, object_id: int) -> bool:
        """Stop tracking an object from the next frame on; False when no such object is tracked or queued."""
        with self._lock:
            shown = self._status.objects.get(object_id)
            known = (shown is not None and shown.state != WAITING) or object_id in self._prompts
            self._prompts.pop(object_id, None)
            if known:
                self._drops.add(object_id)
        return known

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

    def take_prompts(self) -> list[Prompt]:
        with self._lock:
            prompts, self._prompts = list(self._prompts.values()), {}
        return prompts

    def take_drops(self) -> list[int]:
        with self._lock:
            drops, self._drops = sorted(self._drops), set()
        return drops

    def wait_for_prompt(self, timeout_s: float) -> bool:
        """Block until a prompt or a stop arrives, or `timeout_s` passes; True when a prompt is pending."""
        with self._prompted:
            self._prompted.wait_for(lambda: self._prompts or self._stop.is_set(), timeout_s)
            return bool(self._prompts)

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
