"""One drawing of the results for the video, the page and the window: one object in the SAM 2 notebooks'
colours, several in their palette colours."""

from __future__ import annotations

import numpy as np

from app.media.drawing import BOX_COLOR_RGB, MASK_ALPHA, MASK_COLOR_RGB, annotate
from app.media.outputs import davis_palette
from app.samurai.results import FrameResult

WIDTH, HEIGHT = 64, 48


def _result(mask: np.ndarray, present: bool = True) -> FrameResult:
    return FrameResult(0, mask, mask.astype(np.float32), 0, 0.9, 2.0 if present else -5.0, None, present=present)


def test_annotate_tints_mask_and_draws_box() -> None:
    image = np.full((HEIGHT, WIDTH, 3), 100, dtype=np.uint8)
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[5, 5] = mask[13, 15] = mask[9, 8] = True  # its box: 5, 5, 10, 8
    out = annotate(image, {1: _result(mask)})
    assert np.all(image == 100), "input must not be modified"
    np.testing.assert_array_equal(out[HEIGHT - 1, WIDTH - 1], image[HEIGHT - 1, WIDTH - 1])
    tinted = out[9, 8].astype(int)
    assert np.all(np.sign(tinted - 100) == np.sign(np.asarray(MASK_COLOR_RGB) - 100))
    np.testing.assert_array_equal(out[5, 10], BOX_COLOR_RGB)
    np.testing.assert_array_equal(out[13, 15], BOX_COLOR_RGB)
    np.testing.assert_array_equal(out[9, 10], image[9, 10])


def test_annotate_without_results_is_a_copy() -> None:
    image = np.full((HEIGHT, WIDTH, 3), 7, dtype=np.uint8)
    out = annotate(image, {})
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_annotate_objects_colours_and_skips_lost_boxes() -> None:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    first, lost = np.zeros((HEIGHT, WIDTH), bool), np.zeros((HEIGHT, WIDTH), bool)
    first[5:10, 5:10] = True
    out = annotate(image, {1: _result(first), 2: _result(lost, present=False)})
    assert tuple(out[7, 7]) == tuple(np.round(MASK_ALPHA * davis_palette()[1]).astype(np.uint8))
    assert tuple(out[5, 5]) == tuple(davis_palette()[1])  # its box, in its colour
    assert not out[HEIGHT - 1, WIDTH - 1].any()  # nothing drawn for the lost object
    assert not out[0, 0].any()


def test_one_lost_object_is_framed_at_the_corner_as_track_txt_writes_it() -> None:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    out = annotate(image, {1: _result(np.zeros((HEIGHT, WIDTH), bool), present=False)})
    np.testing.assert_array_equal(out[0, 0], BOX_COLOR_RGB)
    assert not out[HEIGHT - 1, WIDTH - 1].any()
