"""A result's box: computed once from its mask, x,y,w,h in frame pixels, None when the mask is empty."""

from __future__ import annotations

import numpy as np
import pytest

from app.samurai.boxes import box_from_mask, box_or_missing
from app.samurai.motion_selection import mask_box
from app.samurai.results import LOST, TRACKING, FrameResult


def _mask(shape: tuple[int, int], *regions: tuple[slice, slice]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for region in regions:
        mask[region] = True
    return mask


def _result(mask: np.ndarray, present: bool = True) -> FrameResult:
    return FrameResult(3, mask, mask.astype(np.float32), 0, 0.9, 2.0 if present else -5.0, None, present=present)


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        (np.zeros((0, 0), dtype=bool), None),
        (_mask((4, 5)), None),
        (_mask((4, 5), (slice(2, 3), slice(3, 4))), (3, 2, 0, 0)),
        (_mask((6, 8), (slice(1, 4), slice(2, 6))), (2, 1, 3, 2)),
        (_mask((4, 5), (slice(None), slice(None))), (0, 0, 4, 3)),
        (_mask((6, 8), (slice(0, 1), slice(0, 1)), (slice(5, 6), slice(7, 8))), (0, 0, 7, 5)),
    ],
)
def test_box_from_mask(mask: np.ndarray, expected: tuple[int, int, int, int] | None) -> None:
    box = box_from_mask(mask)
    assert box == expected
    assert box is None or all(type(value) is int for value in box)


@pytest.mark.parametrize(
    "mask", [np.ones((4, 5), dtype=np.uint8), np.ones((4, 5), dtype=np.float32), np.ones((1, 4, 5), dtype=bool)]
)
def test_box_from_mask_rejects_non_bool_2d(mask: np.ndarray) -> None:
    with pytest.raises(ValueError, match="2-D bool"):
        box_from_mask(mask)


def test_the_kalman_box_and_the_result_box_are_the_same_bounds() -> None:
    logits = np.full((9, 12), -1.0, np.float32)
    logits[2:5, 3:10] = 1.0
    x1, y1, x2, y2 = mask_box(logits)
    assert box_from_mask(logits > 0) == (x1, y1, x2 - x1, y2 - y1) == (3, 2, 6, 2)


def test_a_result_carries_its_box_and_state() -> None:
    seen = _result(_mask((6, 8), (slice(1, 4), slice(2, 6))))
    assert (seen.box, seen.state) == ((2, 1, 3, 2), TRACKING)
    lost = _result(_mask((6, 8)), present=False)
    assert (lost.box, lost.state) == (None, LOST)


def test_a_result_file_writes_no_box_as_zeros() -> None:
    assert box_or_missing(None) == (0, 0, 0, 0)
    assert box_or_missing((1, 2, 3, 4)) == (1, 2, 3, 4)
