"""The initial box that tells the tracker which object to follow.

Boxes are `x,y,w,h` in pixels of the first frame from its top-left corner, the
LaSOT ground-truth convention that SAMURAI's demo reads, so a benchmark's
`groundtruth_rect.txt` can be passed as it is.
"""

from __future__ import annotations

import math
import re
from dataclasses import astuple, dataclass
from pathlib import Path

from loguru import logger

BOX_FIELDS = 4
_SEPARATOR = re.compile(r"\s*,\s*|\s+")
_FIX = "pass --bbox x,y,w,h"


class PromptError(ValueError):
    """A box that cannot start tracking; the one-line message names the value and the fix."""


@dataclass(frozen=True)
class Box:
    """An axis-aligned box: top-left corner (x, y), width w and height h, in pixels."""

    x: float
    y: float
    w: float
    h: float

    def xyxy(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max), the corner form SAM 2's prompt encoder takes."""
        return (self.x, self.y, self.x + self.w, self.y + self.h)

    def __str__(self) -> str:
        return ",".join(f"{value:g}" for value in astuple(self))


def parse_bbox(text: str) -> Box:
    """Parse `x,y,w,h` separated by commas and/or whitespace; floats allowed."""
    fields = _SEPARATOR.split(text.strip())
    if fields == [""]:
        raise PromptError(f"the box is empty; {_FIX}")
    if "" in fields:
        raise PromptError(f"box {text.strip()!r} has an empty value; {_FIX}")
    if len(fields) != BOX_FIELDS:
        raise PromptError(f"box {text.strip()!r} has {len(fields)} values, not {BOX_FIELDS}; {_FIX}")
    try:
        values = [float(field) for field in fields]
    except ValueError:
        raise PromptError(f"box {text.strip()!r} has a value that is not a number; {_FIX}") from None
    return Box(*values)


def read_bbox_file(path: Path | str) -> Box:
    """Read the box on the first non-empty line, e.g. line 1 of a LaSOT `groundtruth.txt`."""
    path = Path(path)
    if not path.is_file():
        raise PromptError(f"box file {path} does not exist; check the path or {_FIX}")
    # utf-8-sig: a box file saved on Windows may start with a byte-order mark.
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        if line.strip():
            try:
                return parse_bbox(line)
            except PromptError as exc:
                raise PromptError(f"{path}: {exc}") from None
    raise PromptError(f"box file {path} has no box; write x,y,w,h on its first line or {_FIX}")


def read_boxes_file(path: Path | str) -> list[tuple[int, Box]]:
    """One `x,y,w,h` box per object, one per non-empty line: (line number, box) pairs in file order."""
    path = Path(path)
    fix = "write one x,y,w,h box per line"
    if not path.is_file():
        raise PromptError(f"boxes file {path} does not exist; check the path")
    boxes = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            boxes.append((number, parse_bbox(line)))
        except PromptError as exc:
            message = str(exc).replace(_FIX, fix)
            raise PromptError(f"{path} line {number}: {message}") from None
    if not boxes:
        raise PromptError(f"boxes file {path} has no box; {fix}")
    return boxes


def validate_bbox(box: Box, frame_width: int, frame_height: int) -> Box:
    """Reject boxes that cannot be a prompt; clip one partly outside the frame to the frame.

    Clipping keeps the object's visible part, which is what SAM 2 can segment; a
    box with no area or no overlap with the frame has nothing to segment.
    """
    if frame_width <= 0 or frame_height <= 0:
        raise ValueError(f"frame size {frame_width}x{frame_height} must be positive")
    if not all(math.isfinite(value) for value in astuple(box)):
        raise PromptError(f"box {box} has a value that is not a finite number; {_FIX}")
    for name, value in (("width", box.w), ("height", box.h)):
        if value == 0:
            raise PromptError(f"box {box} has zero {name}; {_FIX} with w,h > 0")
        if value < 0:
            raise PromptError(f"box {box} has negative {name}; {_FIX} with w,h > 0 (w,h are sizes, not corners)")
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
