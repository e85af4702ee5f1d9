"""Tracking metrics on hand-made boxes."""

from __future__ import annotations

import numpy as np
import pytest

from app.evaluation import box_iou, evaluate


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
        ((0, 0, 10, 10), (5, 0, 10, 10), 50 / 150),
        ((0, 0, 10, 10), (20, 20, 5, 5), 0.0),
        ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),  # empty prediction and empty truth: no division by zero
    ],
)
def test_box_iou(a, b, expected):
    assert box_iou(np.array([a], float), np.array([b], float))[0] == pytest.approx(expected)


def test_perfect_and_shifted_tracks():
    truth = np.array([[10, 10, 20, 20]] * 4, float)
    perfect = evaluate(truth.copy(), truth)
    assert perfect.mean_iou == 1.0 and perfect.precision == 1.0 and perfect.normalised_precision == 1.0
    # success is IoU > t, so t = 1.0 is never met: AUC of a perfect track is 20/21
    assert perfect.success_auc == pytest.approx(20 / 21)
    shifted = evaluate(truth + [30, 0, 0, 0], truth)
    assert shifted.mean_iou == 0.0 and shifted.precision == 0.0 and shifted.success_auc == 0.0


def test_absent_frames_are_left_out():
    truth = np.array([[10, 10, 20, 20], [0, 0, 0, 0], [10, 10, 20, 20]], float)
    predicted = np.array([[10, 10, 20, 20], [50, 50, 5, 5], [40, 40, 20, 20]], float)
    scores = evaluate(predicted, truth, absent=np.array([False, False, True]))
    assert scores.frames == 1 and scores.mean_iou == 1.0
    with pytest.raises(ValueError):
        evaluate(predicted, truth, absent=np.array([True, True, True]))
