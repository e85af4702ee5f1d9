"""The one JSON shape of the result stream; docs/service.md documents it for users.

Per tracked frame and object, a `track` record:

    {"type": "track", "frame": 12, "time": 0.4, "id": 1, "state": "tracking", "box": [x, y, w, h],
     "object_score": 3.21}

`time` is the source's timestamp of the frame (seconds from its start), `box` is
the result's box, null when it has none: the object is not seen (track.txt's 0,0,0,0). When an object's state
changes, a `state` record with the same fields and an `event` comes first:
`added` (first tracked frame), `lost`, `found`, `dropped` (the user stopped
tracking it; box null) or `ended` (the run is over; box null). Every record
carries `run`, the run's start (summary.json's `started`), so that the runs a
restarted service appends to one file stay apart.

Every prompt applied (a click, a box, a mask, a removal, from any door) is a
`prompt` record before the frame's `track` records:

    {"type": "prompt", "frame": 12, "id": 2, "kind": "points", "points": [[140.0, 96.0]], "labels": [1]}

`kind` is box, points, box+points, mask, remove, reset or undo (app/live/commands.py); the other fields are the
command as applied, a mask named by its PNG under the output folder (app/live/dispatch.py), so that the records are
a prompt file that replays the session.

A sink that fails while the run goes on (a broker's client, a reader that went
away) is closed with one warning and tracking goes on; a result file that cannot
be written (`WriteFailed`) stops the run instead (app/live/pipeline.py).
"""

from __future__ import annotations

from typing import Any, Protocol

from loguru import logger

from app.live.dispatch import PROMPT
from app.live.tracked import Tracked
from app.media.whole_files import WriteFailed
from app.samurai.boxes import BoxXYWH
from app.samurai.results import LOST

TRACK, STATE = "track", "state"
RECORD_TYPES = (TRACK, STATE, PROMPT)
ADDED, LOST_EVENT, FOUND, DROPPED, ENDED = "added", "lost", "found", "dropped", "ended"
TIME_DECIMALS = 3
SCORE_DECIMALS = 3

Record = dict[str, Any]


class Sink(Protocol):
    """Where records go (a file, SSE clients, a broker); `publish` must return at once."""

    def publish(self, records: list[Record]) -> None: ...

    def close(self) -> None: ...


def track_record(frame: int, time_s: float, object_id: int, state: str, box: BoxXYWH | None,
                 object_score: float | None) -> Record:
    return {
        "type": TRACK,
        "frame": frame,
        "time": round(time_s, TIME_DECIMALS),
        "id": object_id,
        "state": state,
        "box": None if box is None else list(box),
        "object_score": None if object_score is None else round(float(object_score), SCORE_DECIMALS),
    }


def state_record(record: Record, event: str) -> Record:
    return {**record, "type": STATE, "event": event}


class EventStream:
    """A loop output: each tracked frame as records, handed to every sink; `end()` says the run ended.

    `run` (the run's start) is added to every record when given.
    """

    def __init__(self, sinks: list[Sink], run: str | None = None):
        self.sinks = list(sinks)
        self.run = run
        self._states: dict[int, str] = {}
        self._frame, self._time = -1, 0.0

    def __call__(self, item: Tracked) -> None:
        records: list[Record] = []
        frame, time_s = item.frame.index, item.frame.timestamp
        for object_id in item.dropped:
            if self._states.pop(object_id, None) is not None:
                records.append(state_record(track_record(frame, time_s, object_id, DROPPED, None, None), DROPPED))
        for applied in item.prompts:
            records.append(applied.record())
        if item.record and item.results:
            self._frame, self._time = frame, time_s
            for object_id, result in sorted(item.results.items()):
                record = track_record(frame, time_s, object_id, result.state, result.box, result.object_score)
                event = self._change(self._states.get(object_id), result.state)
                self._states[object_id] = result.state
                if event is not None:
                    records.append(state_record(record, event))
                records.append(record)
        if records:
            self._send(records)

    @staticmethod
    def _change(before: str | None, now: str) -> str | None:
        if before is None:
            return ADDED
        if now == LOST and before != LOST:
            return LOST_EVENT
        if before == LOST and now != LOST:
            return FOUND
        return None

    def _send(self, records: list[Record]) -> None:
        if self.run is not None:
            records = [{**record, "run": self.run} for record in records]
        for sink in list(self.sinks):
            try:
                sink.publish(records)
            except WriteFailed:
                raise  # a result file: the run stops with its outputs complete
            except Exception as exc:  # noqa: BLE001 - whatever a sink raises, tracking goes on without it
                self._drop(sink, exc)

    def _drop(self, sink: Sink, exc: Exception) -> None:
        self.sinks.remove(sink)
        logger.warning("the result stream's {} failed ({}); it is closed and tracking goes on",
                       type(sink).__name__, exc)
        try:
            sink.close()
        except Exception as close_exc:  # noqa: BLE001 - it failed already; the warning above said so
            logger.debug("closing the failed {}: {}", type(sink).__name__, close_exc)

    def end(self) -> None:
        """The run is over: every object still tracked gets `ended` (the sinks' owners close them)."""
        ended = [state_record(track_record(self._frame, self._time, object_id, ENDED, None, None), ENDED)
                 for object_id in sorted(self._states)]
        self._states.clear()
        if ended:
            self._send(ended)
