"""Metrics: hand-computed edge cases, and an independent per-frame re-implementation on random boxes.

The reference functions below restate the rules of SAMURAI's analysis code
(pytracking) and of the got10k toolkit frame by frame with scalar arithmetic,
so a vectorisation slip in app.benchmarks.metrics shows as a mismatch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.benchmarks.datasets import PROTOCOL_GENERIC, PROTOCOL_LASOT, PROTOCOL_UAV
from app.benchmarks.metrics import (
    MetricError,
    box_iou,
    curve_scores,
    got10k_curve,
    got10k_ious,
    got10k_scores,
    mean_curves,
    sequence_curves,
)
from app.benchmarks.runner import write_result
from app.samurai.boxes import box_from_mask

SQUARE = [10.0, 10.0, 20.0, 20.0]
ALL_BUT_LAST = 20 / 21  # success at every threshold except t = 1 (overlap > 1 never holds)
# The got10k toolkit's success plot: IoU thresholds 0, 0.01, ..., 1 (101 of them, np.linspace(0, 1, 101)); the
# rate at t is the share of frames whose IoU is above t.
GOT10K_CURVE_STEPS = 100


def _scores(pred, truth, protocol=PROTOCOL_GENERIC, visible=None):
    return curve_scores(sequence_curves(np.array(pred, float), np.array(truth, float), protocol, visible))


def test_zero_size_predictions_take_the_previous_box_and_frame_0_is_the_truth():
    truth = [SQUARE] * 4
    pred = [[0, 0, 5, 5], SQUARE, [0, 0, 0, 0], [50, 50, 20, 0]]
    scores = _scores(pred, truth)
    assert scores["success_auc"] == pytest.approx(ALL_BUT_LAST)
    assert scores["precision"] == 1.0 and scores["norm_precision"] == 1.0


def test_empty_mask_is_written_as_zero_box_and_scored_as_the_previous_box(tmp_path):
    empty = box_from_mask(np.zeros((6, 8), dtype=bool))
    assert empty is None
    write_result(tmp_path, "seq", [(10, 10, 20, 20), (10, 10, 20, 20), empty], [0.1, 0.1, 0.1])
    assert (tmp_path / "seq.txt").read_text().splitlines()[-1] == "0,0,0,0"
    assert len((tmp_path / "seq_time.txt").read_text().splitlines()) == 3
    assert _scores([SQUARE, SQUARE, [0, 0, 0, 0]], [SQUARE] * 3)["op75"] == 1.0


def test_invalid_ground_truth_fails_but_stays_in_the_denominator():
    truth = [SQUARE, [10, 10, 0, 20], SQUARE]
    scores = _scores([SQUARE] * 3, truth)
    assert scores["success_auc"] == pytest.approx(ALL_BUT_LAST * 2 / 3)
    assert scores["precision"] == pytest.approx(2 / 3)
    # The original code gives invalid frames a normalised error of -1, which is within every threshold.
    assert scores["norm_precision"] == 1.0


def test_lasot_invisible_frames_fail_every_measure_lasot_ext_keeps_the_quirk():
    visible = np.array([True, True, False])
    lasot = _scores([SQUARE] * 3, [SQUARE] * 3, PROTOCOL_LASOT, visible)
    assert lasot["success_auc"] == pytest.approx(ALL_BUT_LAST * 2 / 3)
    assert lasot["precision"] == pytest.approx(2 / 3) and lasot["norm_precision"] == pytest.approx(2 / 3)
    extension = _scores([SQUARE] * 3, [SQUARE] * 3, PROTOCOL_GENERIC, visible)
    assert extension["precision"] == pytest.approx(2 / 3) and extension["norm_precision"] == 1.0


def test_uav_absent_frames_are_nan_and_count_within_centre_thresholds():
    truth = [SQUARE, [math.nan] * 4, SQUARE]
    scores = _scores([SQUARE, [0, 0, 0, 0], SQUARE], truth, PROTOCOL_UAV)
    assert scores["success_auc"] == pytest.approx(ALL_BUT_LAST * 2 / 3)
    assert scores["precision"] == 1.0 and scores["norm_precision"] == 1.0
    with pytest.raises(MetricError, match="ground truth holds NaN"):
        _scores([SQUARE] * 3, truth)


def test_length_mismatch():
    truth = [SQUARE] * 3
    shorter = _scores([SQUARE] * 2, truth)  # padded with 0,0,0,0: the last frame fails
    assert shorter["success_auc"] == pytest.approx(ALL_BUT_LAST * 2 / 3)
    assert shorter["precision"] == pytest.approx(2 / 3)
    assert _scores([SQUARE] * 5, truth)["success_auc"] == pytest.approx(ALL_BUT_LAST)
    with pytest.raises(MetricError, match="2 frames, the ground truth 3"):
        _scores([SQUARE] * 2, truth, PROTOCOL_LASOT, np.ones(3, bool))


def test_bad_predictions_are_errors():
    with pytest.raises(MetricError, match="NaN or a negative"):
        _scores([SQUARE, [1, 1, -2, 3]], [SQUARE] * 2)
    with pytest.raises(MetricError, match="NaN or a negative"):
        _scores([SQUARE, [math.nan, 1, 2, 3]], [SQUARE] * 2)


def test_success_is_strictly_above_the_threshold():
    truth = [[0, 0, 10, 20]] * 2
    pred = np.array([[0, 0, 10, 20], [0, 0, 10, 10]], float)
    curves = sequence_curves(pred, np.array(truth, float), PROTOCOL_GENERIC)
    assert curves.success[9] == 1.0  # 0.45
    assert curves.success[10] == 0.5  # 0.5: IoU exactly 0.5 is not a success
    assert curve_scores(curves)["op50"] == 0.5 and curves.mean_overlap == pytest.approx(0.75)


def test_got10k_drops_frame_0_and_uncovered_frames_and_pools():
    box = [0.0, 0.0, 10.0, 10.0]
    first = got10k_ious(np.array([[50, 50, 1, 1], box, [5, 0, 10, 10]], float), np.array([box] * 3),
                        np.array([8, 8, 0]), None)
    assert first == pytest.approx([1.0])
    second = got10k_ious(np.array([box, [5, 0, 10, 10], [5, 0, 10, 10], box], float), np.array([box] * 4),
                         np.array([1, 1, 1, 1]), None)
    assert second == pytest.approx([1 / 3, 1 / 3, 1.0])
    pooled = got10k_scores(np.concatenate([first, second]))
    assert pooled["ao"] == pytest.approx((1 + 1 / 3 + 1 / 3 + 1) / 4)  # not the mean of per-sequence AOs
    assert pooled["sr50"] == 0.5 and pooled["sr75"] == 0.5
    with pytest.raises(MetricError, match="3 frames, the ground truth 4"):
        got10k_ious(np.array([box] * 3), np.array([box] * 4), np.ones(4), None)


def test_got10k_clips_boxes_to_the_image_like_the_toolkit():
    truth = np.array([[0, 0, 20, 10], [15, 0, 5, 10], [0, 0, 20, 10]], float)
    pred = np.array([[0, 0, 20, 10], [15, 0, 10, 10], [-10, 0, 20, 10]], float)
    # Frame 1 is cut at the right edge; frame 2's x is moved to 0 keeping its width, as the toolkit does.
    assert got10k_ious(pred, truth, np.ones(3), (20, 20)) == pytest.approx([1.0, 1.0])
    assert got10k_ious(pred, truth, np.ones(3), None) == pytest.approx([0.5, 1 / 3])


def test_box_iou_of_empty_boxes_is_zero():
    assert box_iou(np.zeros((1, 4)), np.zeros((1, 4)))[0] == 0.0
    assert box_iou(np.array([[0, 0, 10, 10.0]]), np.array([[5, 0, 10, 10.0]]))[0] == pytest.approx(1 / 3)


# ---- independent re-implementation, frame by frame ----

def _reference_sequence(pred, truth, protocol, visible):
    n = len(truth)
    pred = [list(map(float, row)) for row in pred]
    if any(math.isnan(v) for row in pred for v in row) or any(row[2] < 0 or row[3] < 0 for row in pred):
        raise MetricError("bad")
    for i in range(1, min(len(pred), n)):
        if (pred[i][2] == 0 or pred[i][3] == 0) and not any(math.isnan(v) for v in truth[i]):
            pred[i] = list(pred[i - 1])
    pred = pred[:n] + [[0.0, 0.0, 0.0, 0.0] for _ in range(n - len(pred))]
    pred[0] = list(truth[0])
    success, precision, norm = [0] * 21, [0] * 51, [0] * 51
    for i in range(n):
        px, py, pw, ph = pred[i]
        gx, gy, gw, gh = truth[i]
        seen = visible is None or bool(visible[i])
        if gw > 0 and gh > 0 and seen:
            inter = max(0.0, min(px + pw, gx + gw) - max(px, gx)) * max(0.0, min(py + ph, gy + gh) - max(py, gy))
            overlap = inter / (pw * ph + gw * gh - inter)
            dx, dy = (px + pw / 2) - (gx + gw / 2), (py + ph / 2) - (gy + gh / 2)
            error, norm_error = math.hypot(dx, dy), math.hypot(dx / gw, dy / gh)
        else:
            overlap, norm_error = -1.0, -1.0
            error = -1.0 if protocol == PROTOCOL_UAV else math.inf
        if protocol == PROTOCOL_LASOT and not seen:
            error = norm_error = math.inf
        for k in range(21):
            success[k] += overlap > k * 0.05
        for k in range(51):
            precision[k] += error <= k
            norm[k] += norm_error <= k / 100
    return [s / n for s in success], [p / n for p in precision], [q / n for q in norm]


def _reference_dataset(sequences, protocol):
    curves = [_reference_sequence(p, t, protocol, v) for p, t, v in sequences]
    success = [sum(c[0][k] for c in curves) / len(curves) for k in range(21)]
    precision = sum(c[1][20] for c in curves) / len(curves)
    norm = sum(c[2][20] for c in curves) / len(curves)
    return {"success_auc": sum(success) / 21, "precision": precision, "norm_precision": norm,
            "op50": success[10], "op75": success[15]}


def _random_sequence(rng, protocol, frames):
    truth = np.column_stack([rng.uniform(0, 300, (frames, 2)), rng.uniform(4, 90, (frames, 2))])
    truth[rng.random(frames) < 0.1, 2] = 0  # zero-size ground truth
    if protocol == PROTOCOL_UAV:
        truth[rng.random(frames) < 0.1] = np.nan
    truth[0] = [50, 60, 30, 40]
    # Predictions near the truth (most overlaps spread over (0, 1)), some far, some empty.
    pred = np.nan_to_num(truth, nan=20.0) + rng.normal(0, 12, (frames, 4))
    pred[:, 2:] = np.abs(pred[:, 2:])
    pred[rng.random(frames) < 0.1, 2:] = 0
    length = frames if protocol == PROTOCOL_LASOT else frames + int(rng.integers(-5, 5))
    pred = pred[:length] if length <= frames else np.vstack([pred, np.abs(rng.normal(50, 10, (length - frames, 4)))])
    visible = rng.random(frames) > 0.15 if protocol != PROTOCOL_UAV else None
    return pred, truth, visible


@pytest.mark.parametrize("protocol", [PROTOCOL_LASOT, PROTOCOL_GENERIC, PROTOCOL_UAV])
def test_one_pass_matches_the_reference_on_random_boxes(protocol):
    rng = np.random.default_rng(7)
    sequences = [_random_sequence(rng, protocol, int(rng.integers(20, 120))) for _ in range(12)]
    ours = curve_scores(mean_curves([sequence_curves(p, t, protocol, v) for p, t, v in sequences]))
    reference = _reference_dataset(sequences, protocol)
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
    assert 0.2 < ours["success_auc"] < 0.8  # the random boxes exercise the middle of the curve


def _reference_got10k(pred, truth, cover, resolution):
    width, height = resolution
    ious = []
    for i in range(1, len(truth)):
        if cover[i] <= 0:
            continue
        boxes = []
        for x, y, w, h in (pred[i], truth[i]):
            x, y = min(max(x, 0), width), min(max(y, 0), height)
            boxes.append((x, y, min(max(w, 0), width - x), min(max(h, 0), height - y)))
        (ax, ay, aw, ah), (bx, by, bw, bh) = boxes
        inter = max(0.0, min(ax + aw, bx + bw) - max(ax, bx)) * max(0.0, min(ay + ah, by + bh) - max(ay, by))
        union = aw * ah + bw * bh - inter
        ious.append(min(max(inter / (union + np.finfo(float).eps), 0.0), 1.0))
    return ious


def test_got10k_matches_the_reference_on_random_boxes():
    rng = np.random.default_rng(11)
    resolution = (320, 240)
    pooled_ours, pooled_reference = [], []
    for _ in range(10):
        frames = int(rng.integers(10, 80))
        truth = np.column_stack([rng.uniform(-20, 300, (frames, 2)), rng.uniform(5, 100, (frames, 2))])
        pred = truth + rng.normal(0, 15, (frames, 4))
        cover = rng.integers(0, 9, frames)
        pooled_ours.append(got10k_ious(pred, truth, cover, resolution))
        pooled_reference += _reference_got10k(pred, truth, cover, resolution)
    ours = got10k_scores(np.concatenate(pooled_ours))
    reference = np.array(pooled_reference)
    assert ours["ao"] == pytest.approx(reference.mean(), abs=1e-12)
    assert ours["sr50"] == pytest.approx(np.mean(reference > 0.5), abs=1e-12)
    assert ours["sr75"] == pytest.approx(np.mean(reference > 0.75), abs=1e-12)


def test_got10k_curve_is_the_toolkits_success_plot():
    """Known IoUs, on and beside the thresholds, against the toolkit's definition restated with scalars."""
    ious = [0.0, 0.004, 0.25, 0.5, 0.5001, 0.7499, 0.75, 0.999, 1.0]
    reference = [sum(iou > step / GOT10K_CURVE_STEPS for iou in ious) / len(ious)
                 for step in range(GOT10K_CURVE_STEPS + 1)]
    curve = got10k_curve(np.array(ious))
    assert len(curve) == GOT10K_CURVE_STEPS + 1
    assert curve.tolist() == pytest.approx(reference, abs=1e-12)
    # By hand: above 0 all but the zero; above 0.01 the 0.004 goes; above 0.5 five (0.5 itself is not above it).
    assert (curve[0], curve[1], curve[50], curve[75], curve[100]) == pytest.approx((8 / 9, 7 / 9, 5 / 9, 2 / 9, 0.0))
