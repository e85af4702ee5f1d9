"""The initial box that tells the tracker which object to follow.

Boxes are `x,y,w,h` in pixels of the first frame from its top-left corner, the
LaSOT ground-truth convention that SAMURAI's demo reads, so a benchmark's
`groundtruth_rect.txt` can be passed as it is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import astuple
from pathlib import Path

from loguru import logger

from app.samurai.boxes import Box

BOX_FIELDS = 4
_SEPARATOR = re.compile(r"\s*,\s*|\s+")
BBOX, BBOX_FILE, BOXES_FILE = "--bbox", "--bbox-file", "--boxes-file"
_FIX = f"pass {BBOX} x,y,w,h"
# How much of a malformed value a message quotes: enough to recognise it, never a whole binary line.
SHOWN_CHARS = 60


class PromptError(ValueError):
    """A box that cannot start tracking; the one-line message names the value and the fix."""


def shown(text: str) -> str:
    """`text` quoted for a one-line message, cut after SHOWN_CHARS characters."""
    return repr(text) if len(text) <= SHOWN_CHARS else repr(text[:SHOWN_CHARS]) + "..."


def parse_bbox(text: str) -> Box:
    """Parse `x,y,w,h` separated by commas and/or whitespace; floats allowed."""
    fields = _SEPARATOR.split(text.strip())
    if fields == [""]:
        raise PromptError(f"the box is empty; {_FIX}")
    if "" in fields:
        raise PromptError(f"box {shown(text.strip())} has an empty value; {_FIX}")
    if len(fields) != BOX_FIELDS:
        raise PromptError(f"box {shown(text.strip())} has {len(fields)} values, not {BOX_FIELDS}; {_FIX}")
    try:
        values = [float(field) for field in fields]
    except ValueError:
        raise PromptError(f"box {shown(text.strip())} has a value that is not a number; {_FIX}") from None
    return Box(*values)


def text_lines(path: Path, option: str, fix: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of each non-empty line, read lazily; anything that is not a text file is a
    `PromptError` naming the option, never a decoding traceback."""
    if not path.exists():
        raise PromptError(f"{option} {path} does not exist; check the path")
    if path.is_dir():
        raise PromptError(f"{option} {path} is a folder, not a file; {fix}")
    if not path.is_file():
        raise PromptError(f"{option} {path} is not a regular file; {fix}")
    not_text = PromptError(f"{option} {path} is not a text file (UTF-8, no NUL bytes); {fix}")
    try:
        # utf-8-sig: a box file saved on Windows may start with a byte-order mark.
        with path.open(encoding="utf-8-sig") as file:
            for number, line in enumerate(file, start=1):
                if "\0" in line:
                    raise not_text
                if line.strip():
                    yield number, line
    except UnicodeDecodeError:
        raise not_text from None
    except OSError as exc:
        raise PromptError(f"{option} {path} cannot be read ({exc.strerror or exc}); {fix}") from None


def read_bbox_file(path: Path | str) -> Box:
    """`--bbox-file`: the box on the first non-empty line, e.g. line 1 of a LaSOT `groundtruth.txt`."""
    path = Path(path)
    for _, line in text_lines(path, BBOX_FILE, f"write x,y,w,h on its first line or {_FIX}"):
        try:
            return check_box(parse_bbox(line))
        except PromptError as exc:
            raise PromptError(f"{BBOX_FILE} {path}: {exc}") from None
    raise PromptError(f"{BBOX_FILE} {path} has no box; write x,y,w,h on its first line or {_FIX}")


def read_boxes_file(path: Path | str, max_objects: int) -> list[tuple[int, Box]]:
    """`--boxes-file`: one `x,y,w,h` box per object, one per non-empty line: (line number, box) pairs in file
    order, at most `max_objects` of them (the file is read no further)."""
    path = Path(path)
    fix = "write one x,y,w,h box per line"
    boxes = []
    for number, line in text_lines(path, BOXES_FILE, fix):
        if len(boxes) == max_objects:
            raise PromptError(f"{BOXES_FILE} {path} has more than {max_objects} boxes; "
                              f"at most {max_objects} objects (ids 1..{max_objects}) can be tracked")
        try:
            boxes.append((number, check_box(parse_bbox(line))))
        except PromptError as exc:
            message = str(exc).replace(_FIX, fix)
            raise PromptError(f"{BOXES_FILE} {path} line {number}: {message}") from None
    if not boxes:
        raise PromptError(f"{BOXES_FILE} {path} has no box; {fix}")
    return boxes


def command_line_boxes(bbox: list[str] | None, bbox_file: Path | None, boxes_file: Path | None,
                       max_objects: int) -> list[tuple[str, Box]]:
    """(where the box came from, box) per object, in object-id order, from `--bbox` (repeatable), `--bbox-file`
    or `--boxes-file`; empty when the boxes are to be drawn. Checked as far as a box can be without the frame."""
    given = [name for name, value in ((BBOX, bbox), (BBOX_FILE, bbox_file), (BOXES_FILE, boxes_file)) if value]
    if len(given) > 1:
        raise PromptError(f"give the boxes one way: {BBOX} (repeatable), {BBOX_FILE} or {BOXES_FILE}, not "
                          f"{' and '.join(given)}")
    if bbox:
        if len(bbox) > max_objects:
            raise PromptError(f"{BBOX} is given {len(bbox)} times; at most {max_objects} objects "
                              f"(ids 1..{max_objects}) can be tracked")
        if len(bbox) == 1:
            return [(BBOX, check_box(parse_bbox(bbox[0])))]
        return [(f"{BBOX} #{i}", _labelled(f"{BBOX} #{i}", text)) for i, text in enumerate(bbox, start=1)]
    if bbox_file:
        return [(str(bbox_file), read_bbox_file(bbox_file))]
    if boxes_file:
        return [(f"{boxes_file} line {number}", box) for number, box in read_boxes_file(boxes_file, max_objects)]
    return []


def _labelled(label: str, text: str) -> Box:
    try:
        return check_box(parse_bbox(text))
    except PromptError as exc:
        raise PromptError(f"{label}: {exc}") from None


def check_box(box: Box) -> Box:
    """The checks that need no frame: finite values and a positive size."""
    if not all(math.isfinite(value) for value in astuple(box)):
        raise PromptError(f"box {box} has a value that is not a finite number; {_FIX}")
    for name, value in (("width", box.w), ("height", box.h)):
        if value == 0:
            raise PromptError(f"box {box} has zero {name}; {_FIX} with w,h > 0")
        if value < 0:
            raise PromptError(f"box {box} has negative {name}; {_FIX} with w,h > 0 (w,h are sizes, not corners)")
    return box


def validate_bbox(box: Box, frame_width: int, frame_height: int) -> Box:
    """Reject boxes that cannot be a prompt; clip one partly outside the frame to the frame.

    Clipping keeps the object's visible part, which is what SAM 2 can segment; a
    box with no area or no overlap with the frame has nothing to segment.
    """
    if frame_width <= 0 or frame_height <= 0:
        raise ValueError(f"frame size {frame_width}x{frame_height} must be positive")
    check_box(box)
    x0, y0, x1, y1 = box.xyxy()
    if x0 >= frame_width or y0 >= frame_height or x1 <= 0 or y1 <= 0:
        raise PromptError(
            f"box {box} lies outside the {frame_width}x{frame_height} first frame; "
            f"{_FIX} in pixels from the frame's top-left corner"
        )
    cx0, cy0 = float(max(x0, 0)), float(max(y0, 0))
    cx1, cy1 = float(min(x1, frame_width)), float(min(y1, frame_height))
    clipped = Box(cx0, cy0, cx1 - cx0, cy1 - cy0)
    if clipped != box:
        logger.warning(
            "box {} extends past the {}x{} frame; clipped to {}", box, frame_width, frame_height, clipped
        )
    return clipped
