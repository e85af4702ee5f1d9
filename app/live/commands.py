"""The one command schema of every door (--prompts, POST /api/prompts, MQTT's PREFIX/cmd, the page).

    {"frame": K, "id": N, "box": [x, y, w, h]}                         a box (with "reset": true: start over)
    {"frame": K, "id": N, "points": [[x, y], ...], "labels": [1, 0]}   clicks: 1 positive, 0 negative
    {"frame": K, "id": N, "mask": MASK}                                a mask: a PNG file (--prompts) or base64 PNG
    {"frame": K, "id": N, "remove": true}                              stop tracking N from frame K+1
    {"frame": K, "id": N, "undo": true}                                take back N's last prompt on frame K
    {"action": "stop"}                                                 end the run (the network doors)
    {"action": "drop", "id": N}                                        MQTT's older form of a removal

Box and points may come together; a mask comes alone. Coordinates are pixels of
the source frame. `frame` may be left out on live doors (the newest frame). A
request is one command or a list of them, applied together between two frames.
What a command says by itself is checked here (`parse_command`) and against
the frame's size (`fit`); whether its frame is still held and its id known is
the dispatcher's (app/live/dispatch.py). Every refusal is a `PromptError` with
a one-line message naming the problem and the fix.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from app.media.outputs import MAX_OBJECT_ID
from app.media.prompt import PromptError, check_box, parse_bbox, shown, validate_bbox
from app.samurai.boxes import Box
from app.samurai.prompts import Prompt

TRACK, DROP, STOP = "track", "drop", "stop"  # "track": a prompt (the default); "drop": the same as "remove": true
ACTIONS = (TRACK, DROP, STOP)
FIELDS = ("frame", "id", "box", "points", "labels", "mask", "remove", "reset", "undo", "action")
BODY_HELP = ('send JSON {"frame": K, "id": N, "box": [x, y, w, h]} or "points": [[x, y], ...] with "labels": '
             '[1 or 0, ...], "mask": PNG, "remove": true or "undo": true, in source pixels (docs/service.md)')
# The kinds a `prompt` record names (docs/service.md).
BOX, POINTS, BOX_POINTS, MASK, REMOVE, RESET, UNDO = "box", "points", "box+points", "mask", "remove", "reset", "undo"
UPLOAD_HELP = ("send the mask PNG as the body of POST /api/prompts?frame=K&id=N with Content-Type: image/png "
               "(docs/service.md)")
POSITIVE, NEGATIVE = 1, 0
BASE64_PREFIX = "data:image/png;base64,"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IHDR_TYPE, IHDR_WIDTH, IHDR_HEIGHT = slice(12, 16), slice(16, 20), slice(20, 24)  # bytes of a PNG's header
# The largest mask decoded: an 8K UHD frame's. A PNG's header declares its size, so a small body that would decode
# to gigabytes (a "PNG bomb": a 4 MiB upload of zeros can declare 32768x32768) is refused before it is decoded.
MAX_MASK_PIXELS = 7680 * 4320
# The most commands one request holds: one per object (a box and points come in one command). Each is applied, or
# refused with a warning, on the loop thread: an unbounded list stalls the loop and floods the log.
MAX_COMMANDS = MAX_OBJECT_ID
BOX_CORNERS = 2  # a box enters the mask decoder as two points, its corners
MAX_PROMPT_POINTS = "max_prompt_points"  # the manifest's hyper-parameter: the most points per object and frame


@dataclass(frozen=True)
class Command:
    """A prompt for frame `frame` (None: the newest frame), or a stop (`prompt` None)."""

    prompt: Prompt | None
    frame: int | None = None

    @property
    def kind(self) -> str:
        return prompt_kind(self.prompt) if self.prompt is not None else STOP


def prompt_kind(prompt: Prompt) -> str:
    """What a `prompt` record calls this prompt."""
    if prompt.remove:
        return REMOVE
    if prompt.undo:
        return UNDO
    if prompt.mask is not None:
        return MASK
    if prompt.box is not None:
        if prompt.reset:
            return RESET
        return BOX_POINTS if prompt.points else BOX
    return POINTS


def command_json(prompt: Prompt) -> dict:
    """The fields of a command that gives `prompt`, as JSON values in source pixels (a mask left to the caller)."""
    fields: dict = {}
    if prompt.box is not None:
        fields["box"] = [prompt.box.x, prompt.box.y, prompt.box.w, prompt.box.h]
    if prompt.points:
        fields |= {"points": [list(point) for point in prompt.points], "labels": list(prompt.labels)}
    for flag in ("reset", "remove", "undo"):
        if getattr(prompt, flag):
            fields[flag] = True
    return fields


def prompt_points(prompt: Prompt) -> int:
    """How many points this prompt gives the mask decoder (a box counts its two corners)."""
    return len(prompt.points) + (BOX_CORNERS if prompt.box is not None else 0)


def check_points(count: int, most: int | None) -> None:
    """Refuse more points for one object on one frame than the models take (the manifest's max_prompt_points)."""
    if most is not None and count > most:
        raise PromptError(f"{count} points for one object on one frame (a box counts {BOX_CORNERS}, clicks on a "
                          f"frame add up); the models take at most {most}: give a box, or fewer clicks")


def valid_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_OBJECT_ID


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _object_id(body: dict) -> int:
    object_id = body.get("id", 1)
    if not valid_id(object_id):
        raise PromptError(f"id {object_id!r} is not an object id; use an integer 1..{MAX_OBJECT_ID}")
    return object_id


def _frame(body: dict) -> int | None:
    frame = body.get("frame")
    if frame is not None and (not isinstance(frame, int) or isinstance(frame, bool) or frame < 0):
        raise PromptError(f"frame {shown(str(frame))} is not a frame index (an integer from 0); give one or leave it "
                          "out for the newest frame")
    return frame


def _box(value: object) -> Box:
    """The JSON box as a `Box`; each value must be a JSON number (a string such as "10" is a client's bug)."""
    if not isinstance(value, list):
        raise PromptError(f"box {shown(str(value))} is not a list [x, y, w, h]; {BODY_HELP}")
    box = parse_bbox(",".join(str(v) for v in value))
    wrong = [v for v in value if not _is_number(v)]
    if wrong:
        raise PromptError(f"box value {json.dumps(wrong[0])} is not a JSON number (no quotes); {BODY_HELP}")
    return check_box(box)


def _points(body: dict) -> tuple[tuple[tuple[float, float], ...], tuple[int, ...]]:
    points, labels = body.get("points"), body.get("labels")
    if points is None and labels is None:
        return (), ()
    if points is None or labels is None:
        raise PromptError('points and labels come together: "points": [[x, y], ...] and "labels": [1 or 0, ...], '
                          "one label per point")
    if not isinstance(points, list) or not points or not all(
            isinstance(p, list) and len(p) == 2 and all(_is_number(v) and math.isfinite(v) for v in p)
            for p in points):
        raise PromptError(f"points {shown(json.dumps(points))} is not a list of [x, y] pairs of numbers; "
                          'write "points": [[x, y], ...] in source pixels')
    if not isinstance(labels, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                               and v in (POSITIVE, NEGATIVE) for v in labels):
        raise PromptError(f"labels {shown(json.dumps(labels))} must be 1 (positive) or 0 (negative), one per point")
    if len(labels) != len(points):
        raise PromptError(f"{len(points)} points but {len(labels)} labels; give one label (1 or 0) per point")
    return tuple((float(x), float(y)) for x, y in points), tuple(labels)


def _png_size(data: bytes) -> tuple[int, int] | None:
    """The width and height a PNG declares in its header (its first chunk, IHDR), None when `data` is no PNG."""
    if not data.startswith(PNG_SIGNATURE) or data[IHDR_TYPE] != b"IHDR" or len(data) < IHDR_HEIGHT.stop:
        return None
    return int.from_bytes(data[IHDR_WIDTH], "big"), int.from_bytes(data[IHDR_HEIGHT], "big")


def _decode_png(data: bytes, where: str) -> np.ndarray:
    size = _png_size(data)
    if size is not None and size[0] * size[1] > MAX_MASK_PIXELS:
        raise PromptError(f"the mask {where} is {size[0]}x{size[1]}, larger than any frame ({MAX_MASK_PIXELS} "
                          "pixels at most); give a mask of the frame's size")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE) if size is not None else None
    if image is None:
        raise PromptError(f"the mask {where} is not a PNG image; give a PNG whose non-zero pixels are the object")
    return image > 0


def _mask_from_png(data: bytes, where: str) -> np.ndarray:
    mask = _decode_png(data, where)
    if not mask.any():
        raise PromptError("the mask is empty (no non-zero pixel); mark the object's pixels, or send a box")
    return mask


def read_mask(value: object, folder: Path | None) -> np.ndarray:
    """A mask from a PNG file under `folder` (a prompt file's own folder), or, with `folder` None (the network
    doors), from base64 PNG (with or without a data: URL prefix)."""
    if not isinstance(value, str) or not value:
        raise PromptError('"mask" must be a PNG: a file name in a prompt file, base64 PNG over the network')
    if folder is not None:
        path = folder / value
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PromptError(f"mask file {shown(str(path))} cannot be read ({exc.strerror or exc}); give the path "
                              "of a PNG, relative to the prompt file") from None
        return _mask_from_png(data, shown(str(path)))
    text = value.removeprefix(BASE64_PREFIX)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise PromptError('"mask" is not base64; send the PNG file base64-encoded') from None
    return _mask_from_png(data, "sent")


def _query_int(name: str, text: str | None) -> int:
    """A query parameter of the upload that must be a whole number from 0."""
    if text is None:
        raise PromptError(f"no {name} given; {UPLOAD_HELP}")
    if not (text.isascii() and text.isdigit()):
        raise PromptError(f"{name} {shown(text)} is not an integer from 0; {UPLOAD_HELP}")
    return int(text)


def parse_mask_upload(frame: str | None, object_id: str | None, png: bytes) -> Command:
    """A mask sent as a PNG body (`POST /api/prompts?frame=K&id=N`, `Content-Type: image/png`): the command its
    JSON form gives, checked the same way; the query names the frame and the object, both required."""
    index, body = _query_int("frame", frame), {"id": _query_int("id", object_id)}
    return Command(Prompt(_object_id(body), mask=_mask_from_png(png, "uploaded")), index)


def parse_command(body: object, mask_folder: Path | None = None) -> Command:
    """One command from its JSON value: everything that can be checked without the frame."""
    if not isinstance(body, dict):
        raise PromptError(f"a command is a JSON object; {BODY_HELP}")
    unknown = sorted(str(key) for key in body if key not in FIELDS)
    if unknown:
        raise PromptError(f"unknown field {shown(unknown[0])}; the fields are {', '.join(FIELDS)}")
    action = body.get("action", TRACK)
    if action not in ACTIONS:
        raise PromptError(f"action {shown(str(action))} is not one of {', '.join(ACTIONS)}")
    if action == STOP:
        return Command(None)
    frame, object_id = _frame(body), _object_id(body)
    for flag in ("remove", "reset", "undo"):
        if flag in body and not isinstance(body[flag], bool):
            raise PromptError(f'"{flag}" is {shown(str(body[flag]))}; write true or leave it out')
    if action == DROP or body.get("remove"):
        extra = [key for key in ("box", "points", "labels", "mask", "reset") if key in body]
        if extra:
            raise PromptError(f'"remove" comes alone, without "{extra[0]}"; send the removal and the prompt apart')
        return Command(Prompt(object_id, remove=True), frame)
    if body.get("undo"):
        extra = [key for key in ("box", "points", "labels", "mask", "reset", "remove") if key in body]
        if extra:
            raise PromptError(f'"undo" comes alone, without "{extra[0]}"; send the undo and the prompt apart')
        return Command(Prompt(object_id, undo=True), frame)
    box = _box(body["box"]) if "box" in body else None
    points, labels = _points(body)
    mask = None
    if "mask" in body:
        if box is not None or points:
            raise PromptError('a mask comes alone, without "box" or "points"; send them as two commands')
        mask = read_mask(body["mask"], mask_folder)
    if body.get("reset") and (box is None or points):
        raise PromptError('"reset" starts an object over from a box alone; give "box": [x, y, w, h] without points')
    if box is None and not points and mask is None:
        raise PromptError(f"the command gives no box, points, mask or remove; {BODY_HELP}")
    return Command(Prompt(object_id, points, labels, box, mask, reset=bool(body.get("reset"))), frame)


def follow_ids(prompt: Prompt, known: set[int]) -> None:
    """Follow the ids tracked (`known`) through a prompt: removing one that is not tracked is refused."""
    if not prompt.remove:
        known.add(prompt.obj_id)
        return
    if prompt.obj_id not in known:
        raise PromptError(f"object {prompt.obj_id} is not tracked, so it cannot be removed; the tracked ones are "
                          f"{sorted(known) or 'none'}")
    known.discard(prompt.obj_id)


def parse_commands(payload: bytes | str) -> list[Command]:
    """A network request: one command or a non-empty list of them, as JSON."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise PromptError(f"the command is not JSON; {BODY_HELP}") from None
    bodies = body if isinstance(body, list) else [body]
    if not bodies:
        raise PromptError(f"the list of commands is empty; {BODY_HELP}")
    if len(bodies) > MAX_COMMANDS:
        raise PromptError(f"{len(bodies)} commands in one request, over the limit of {MAX_COMMANDS} (one per "
                          "object); send them in several requests")
    commands = []
    for number, item in enumerate(bodies, start=1):
        try:
            commands.append(parse_command(item))
        except PromptError as exc:
            raise (PromptError(f"command {number}: {exc}") if len(bodies) > 1 else exc) from None
    return commands


def fit(command: Command, width: int, height: int) -> Command:
    """The command checked against the source frame's size: a box clipped to it, points and mask inside it."""
    prompt = command.prompt
    if prompt is None or prompt.remove or prompt.undo:
        return command
    for x, y in prompt.points:
        if not (0 <= x < width and 0 <= y < height):
            raise PromptError(f"point [{x:g}, {y:g}] lies outside the {width}x{height} frame; click inside it "
                              "(x from 0 to the width, y from 0 to the height, in source pixels)")
    if prompt.mask is not None and prompt.mask.shape != (height, width):
        mask_h, mask_w = prompt.mask.shape
        raise PromptError(f"the mask is {mask_w}x{mask_h} but the frame is {width}x{height}; give a mask of the "
                          "frame's size")
    if prompt.box is not None:
        prompt = replace(prompt, box=validate_bbox(prompt.box, width, height))
    return replace(command, prompt=prompt)
