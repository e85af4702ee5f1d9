"""The JSON requests that drive a run, shared by `POST /api/track` and MQTT's `PREFIX/cmd`.

    {"box": [x, y, w, h], "frame": optional index, "id": optional object id (default 1)}   start or restart
    {"action": "drop", "id": ID}                                                             stop tracking ID
    {"action": "stop"}                                                                       end the run

Over HTTP the action is the route (POST /api/track, DELETE /api/track/ID, POST
/api/stop); over MQTT it is the `action` field (`track` when left out). A
malformed request raises `PromptError` with a one-line message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from app.media.outputs import MAX_OBJECT_ID
from app.media.prompt import PromptError, parse_bbox
from app.samurai.boxes import Box

TRACK, DROP, STOP = "track", "drop", "stop"
ACTIONS = (TRACK, DROP, STOP)
BODY_HELP = 'send JSON {"box": [x, y, w, h]} in source pixels, and "id": an object id 1..255 for several objects'


@dataclass(frozen=True)
class Command:
    action: str
    object_id: int | None = None
    box: Box | None = None
    frame: int | None = None


def valid_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_OBJECT_ID


def _object_id(body: dict) -> int:
    object_id = body.get("id", 1)
    if not valid_id(object_id):
        raise PromptError(f"id {object_id!r} is not an object id; use an integer 1..{MAX_OBJECT_ID}")
    return object_id


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _box(value: object) -> Box:
    """The JSON box as a `Box`, with the command line's messages for a malformed one.

    Each value must be a JSON number: a string such as "10" (or "1,2", which would read as two values) is
    refused, so that a client's bug does not pass for a box.
    """
    if not isinstance(value, list):
        raise PromptError(f"box {value!r} is not a list [x, y, w, h]; {BODY_HELP}")
    box = parse_bbox(",".join(str(v) for v in value))
    # What parse_bbox read as numbers but JSON holds as something else: strings, in practice.
    wrong = [v for v in value if not _is_number(v)]
    if wrong:
        raise PromptError(f"box value {json.dumps(wrong[0])} is not a JSON number (no quotes); {BODY_HELP}")
    return box


def parse_track(body: object) -> Command:
    """A start/restart request; the box is checked against the frame later, by the controller."""
    if not isinstance(body, dict) or "box" not in body:
        raise PromptError(f"no box given; {BODY_HELP}")
    frame = body.get("frame")
    if frame is not None and (not isinstance(frame, int) or isinstance(frame, bool) or frame < 0):
        raise PromptError(f"frame {frame!r} is not a frame index (an integer from 0); give one or leave it out")
    object_id = _object_id(body)
    return Command(TRACK, object_id, _box(body["box"]), frame)


def parse_command(payload: bytes) -> Command:
    """A request with its `action` (MQTT's `PREFIX/cmd`)."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise PromptError(f"the command is not JSON; {BODY_HELP}, or {{\"action\": \"drop\"|\"stop\"}}") from None
    if not isinstance(body, dict):
        raise PromptError(f"the command is not a JSON object; {BODY_HELP}")
    action = body.get("action", TRACK)
    if action not in ACTIONS:
        raise PromptError(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    if action == TRACK:
        return parse_track(body)
    if action == DROP:
        return Command(DROP, _object_id(body))
    return Command(STOP)
