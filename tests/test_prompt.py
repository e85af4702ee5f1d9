from __future__ import annotations

import math
import re

import pytest

from app.media.prompt import PromptError, parse_bbox, read_bbox_file, validate_bbox
from app.samurai.boxes import Box

FRAME_W, FRAME_H = 640, 480


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10,20,30,40", Box(10, 20, 30, 40)),
        ("10 20 30 40", Box(10, 20, 30, 40)),
        ("10\t20\t30\t40", Box(10, 20, 30, 40)),
        ("10, 20 ,30 , 40", Box(10, 20, 30, 40)),
        ("10,20 30\t40", Box(10, 20, 30, 40)),
        ("  367,101,41,16\n", Box(367, 101, 41, 16)),
        ("1.5,2.25,3e1,-4", Box(1.5, 2.25, 30, -4)),
        ("0,0,0,0", Box(0, 0, 0, 0)),
    ],
)
def test_parse_bbox_accepts(text: str, expected: Box) -> None:
    assert parse_bbox(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("1,2,3", "3 values"),
        ("1,2,3,4,5", "5 values"),
        ("1,,2,3", "empty value"),
        ("1,2,3,", "empty value"),
        (",1,2,3", "empty value"),
        ("a,b,c,d", "not a number"),
        ("1,2,3,4px", "not a number"),
    ],
)
def test_parse_bbox_rejects(text: str, message: str) -> None:
    with pytest.raises(PromptError, match=message) as info:
        parse_bbox(text)
    assert "--bbox x,y,w,h" in str(info.value)
    assert "\n" not in str(info.value)


def test_box_xyxy_and_str() -> None:
    box = Box(10.0, 20.0, 30.5, 40.0)
    assert box.xyxy() == (10.0, 20.0, 40.5, 60.0)
    assert str(box) == "10,20,30.5,40"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("1,2,3,4\n5,6,7,8\n", Box(1, 2, 3, 4)),
        ("\n\n  \n1 2 3 4\n", Box(1, 2, 3, 4)),
        ("\ufeff1,2,3,4", Box(1, 2, 3, 4)),
        ("1,2,3,4", Box(1, 2, 3, 4)),
    ],
)
def test_read_bbox_file(tmp_path, content: str, expected: Box) -> None:
    path = tmp_path / "groundtruth.txt"
    path.write_text(content, encoding="utf-8")
    assert read_bbox_file(path) == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("", "has no box"), ("\n \n", "has no box"), ("1,2,3\n", "3 values")],
)
def test_read_bbox_file_rejects(tmp_path, content: str | None, message: str) -> None:
    path = tmp_path / "groundtruth.txt"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PromptError, match=message) as info:
        read_bbox_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "box",
    [
        Box(10, 10, 100, 50),
        Box(0, 0, FRAME_W, FRAME_H),
        Box(FRAME_W - 1, FRAME_H - 1, 1, 1),
        Box(0.5, 0.5, 0.25, 0.25),
    ],
)
def test_validate_bbox_keeps_boxes_inside(box: Box, warnings: list[str]) -> None:
    assert validate_bbox(box, FRAME_W, FRAME_H) == box
    assert warnings == []


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (Box(-10, -20, 50, 60), Box(0, 0, 40, 40)),
        (Box(600, 450, 100, 100), Box(600, 450, 40, 30)),
        (Box(-5, 10, FRAME_W + 10, 20), Box(0, 10, FRAME_W, 20)),
        (Box(FRAME_W - 1, 0, 5, 5), Box(FRAME_W - 1, 0, 1, 5)),
    ],
)
def test_validate_bbox_clips_partly_outside(box: Box, expected: Box, warnings: list[str]) -> None:
    assert validate_bbox(box, FRAME_W, FRAME_H) == expected
    assert len(warnings) == 1 and "clipped" in warnings[0]


@pytest.mark.parametrize(
    ("box", "message"),
    [
        (Box(10, 10, 0, 5), "box 10,10,0,5 has zero width; pass --bbox x,y,w,h with w,h > 0"),
        (Box(10, 10, 5, 0), "zero height"),
        (Box(10, 10, -5, 5), "negative width"),
        (Box(10, 10, 5, -5), "negative height"),
        (Box(math.nan, 10, 5, 5), "not a finite number"),
        (Box(10, 10, math.inf, 5), "not a finite number"),
        (Box(FRAME_W, 10, 5, 5), "outside the 640x480"),
        (Box(10, FRAME_H, 5, 5), "outside"),
        (Box(-5, 10, 5, 5), "outside"),
        (Box(10, -5, 5, 5), "outside"),
        (Box(1000, 1000, 5, 5), "outside"),
    ],
)
def test_validate_bbox_rejects(box: Box, message: str) -> None:
    with pytest.raises(PromptError, match=re.escape(message)) as info:
        validate_bbox(box, FRAME_W, FRAME_H)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("width", "height"), [(0, 480), (640, 0), (-1, -1)])
def test_validate_bbox_rejects_empty_frame(width: int, height: int) -> None:
    with pytest.raises(ValueError, match="frame size"):
        validate_bbox(Box(1, 1, 1, 1), width, height)
