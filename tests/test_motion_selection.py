"""Hand-computed cases for the Kalman filter and SAMURAI's motion-aware selection."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from app.samurai import kalman_filter as kf
from app.samurai.motion_selection import (
    MotionState,
    SamuraiParams,
    Selection,
    is_memory_candidate,
    mask_box,
    select,
)

# Box used throughout: x 10..30, y 20..60 -> centre (20, 40), a = 20 / 40, h = 40.
BOX = np.array([10.0, 20.0, 30.0, 60.0])
BOX_XYAH = np.array([20.0, 40.0, 0.5, 40.0])
FAR = np.array([200.0, 200.0, 220.0, 240.0])
EMPTY = np.zeros(4)
# initiate() at h = 40: position std 2 * 40 / 20 = 4, velocity std 10 * 40 / 160 = 2.5.
INITIATE_DIAG_H40 = np.array([16.0, 16.0, 1e-4, 16.0, 6.25, 6.25, 1e-10, 6.25])


def _read_only(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=np.float64)
    array.setflags(write=False)
    return array


# ---------------------------------------------------------------- box helpers


@pytest.mark.parametrize(
    ("box", "expected"),
    [
        (BOX, BOX_XYAH),
        # Empty mask box: height 0 counts as 1, so no division by zero.
        (EMPTY, [0.0, 0.0, 0.0, 1.0]),
        # A mask one pixel row tall: height 0 -> 1, aspect = width.
        ([5.0, 7.0, 9.0, 7.0], [7.0, 7.0, 4.0, 1.0]),
        # No +1 for inclusive pixel indices.
        ([0.0, 0.0, 3.0, 1.0], [1.5, 0.5, 3.0, 1.0]),
    ],
)
def test_xyxy_to_xyah(box: list[float], expected: list[float]) -> None:
    with np.errstate(all="raise"):
        result = kf.xyxy_to_xyah(np.asarray(box))
    np.testing.assert_allclose(result, expected)


def test_xyah_to_xyxy_inverts_xyxy_to_xyah() -> None:
    np.testing.assert_allclose(kf.xyah_to_xyxy(BOX_XYAH), BOX)
    state = np.concatenate([BOX_XYAH, [1.0, 2.0, 3.0, 4.0]])
    np.testing.assert_allclose(kf.xyah_to_xyxy(state), BOX)


@pytest.mark.parametrize(
    ("mean_xyah", "boxes", "expected"),
    [
        (BOX_XYAH, np.zeros((0, 4)), []),
        (BOX_XYAH, [BOX], [1.0]),
        # Empty-mask box scores 0 even though it is not disjoint by formula.
        (BOX_XYAH, [EMPTY], [0.0]),
        (BOX_XYAH, [FAR], [0.0]),
        # Half overlap: 10 * 40 / (800 + 800 - 400).
        (BOX_XYAH, [[20.0, 20.0, 40.0, 60.0]], [1.0 / 3.0]),
        # Plain differences: inter 19 * 39 = 741, union 800 -> 0.92625 (1.0 with +1).
        (BOX_XYAH, [[10.0, 20.0, 29.0, 59.0]], [741.0 / 800.0]),
        # A one-pixel mask at the origin gives the empty box too: scored 0.
        ([0.0, 0.0, 1.0, 4.0], [EMPTY], [0.0]),
        # A zero-area candidate inside the filter box: intersection 0.
        (BOX_XYAH, [[15.0, 30.0, 15.0, 50.0]], [0.0]),
        # Zero union (both zero-area): 0, not NaN.
        ([5.0, 5.0, 0.0, 0.0], [[5.0, 5.0, 5.0, 5.0]], [0.0]),
        (BOX_XYAH, [BOX, EMPTY, [20.0, 20.0, 40.0, 60.0]], [1.0, 0.0, 1.0 / 3.0]),
    ],
)
def test_iou_with_boxes(mean_xyah: list[float], boxes: list, expected: list[float]) -> None:
    mean = np.concatenate([np.asarray(mean_xyah, dtype=np.float64), np.zeros(4)])
    with np.errstate(all="raise"):
        result = kf.iou_with_boxes(mean, np.asarray(boxes, dtype=np.float64))
    assert result.shape == (len(expected),)
    np.testing.assert_allclose(result, expected)


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        (np.zeros((0, 0)), [0.0, 0.0, 0.0, 0.0]),
        (np.zeros((4, 5)), [0.0, 0.0, 0.0, 0.0]),
        (np.full((4, 5), -3.0), [0.0, 0.0, 0.0, 0.0]),
        # A logit of exactly 0 is background (strict > 0): only (row 2, col 3) counts.
        (
            np.array(
                [
                    [0.0, -1, -1, -1, -1],
                    [-1, 0.0, -1, -1, -1],
                    [-1, -1, -1, 0.5, -1],
                    [-1, -1, -1, -1, 0.0],
                ]
            ),
            [3.0, 2.0, 3.0, 2.0],
        ),
        # One pixel at row 2, column 3 -> [x, y, x, y] = [3, 2, 3, 2].
        (np.where(np.arange(20).reshape(4, 5) == 13, 1.0, -1.0), [3.0, 2.0, 3.0, 2.0]),
        # Rows 1..2, columns 0..3 (ragged shape, two blobs).
        (
            np.array(
                [
                    [-1, -1, -1, -1, -1],
                    [0.5, -1, -1, 2.0, -1],
                    [-1, 1.0, -1, -1, -1],
                    [-1, -1, -1, -1, -1],
                ]
            ),
            [0.0, 1.0, 3.0, 2.0],
        ),
    ],
)
def test_mask_box(mask: np.ndarray, expected: list[float]) -> None:
    result = mask_box(mask)
    assert result.dtype == np.float64
    np.testing.assert_array_equal(result, expected)


def test_mask_box_equals_row_and_column_scan() -> None:
    rng = np.random.default_rng(0)
    for shape, density in [((512, 512), 1e-4), ((128, 96), 0.05), ((7, 300), 0.01), ((64, 64), 0.0)]:
        mask = np.where(rng.random(shape) < density, rng.random(shape), -rng.random(shape)).astype(np.float32)
        rows, cols = np.flatnonzero((mask > 0).any(axis=1)), np.flatnonzero((mask > 0).any(axis=0))
        expected = [cols[0], rows[0], cols[-1], rows[-1]] if rows.size else [0, 0, 0, 0]
        np.testing.assert_array_equal(mask_box(mask), expected)
        np.testing.assert_array_equal(mask_box(mask.T), [expected[1], expected[0], expected[3], expected[2]])


def test_mask_box_rejects_non_2d() -> None:
    with pytest.raises(ValueError, match=r"\(1, 4, 5\)"):
        mask_box(np.zeros((1, 4, 5)))


# ---------------------------------------------------------------- Kalman filter


def test_initiate() -> None:
    mean, cov = kf.initiate(_read_only(BOX_XYAH))
    np.testing.assert_allclose(mean, [20.0, 40.0, 0.5, 40.0, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(cov, np.diag(INITIATE_DIAG_H40), rtol=1e-12, atol=0)


def test_predict_moves_by_velocity_and_scales_noise_by_previous_height() -> None:
    mean = _read_only([10.0, 20.0, 0.5, 40.0, 1.0, 2.0, 0.0, -1.0])
    cov = _read_only(np.diag(INITIATE_DIAG_H40))
    new_mean, new_cov = kf.predict(mean, cov)
    np.testing.assert_allclose(new_mean, [11.0, 22.0, 0.5, 39.0, 1.0, 2.0, 0.0, -1.0])
    # Position: 16 + 6.25 (velocity) + (40 / 20)^2 = 26.25; it would be 26.0525
    # if the noise used the predicted height 39.
    # Velocity: 6.25 + (40 / 160)^2 = 6.3125. Aspect: 1e-4 + 1e-10 + 1e-4.
    expected = np.diag([26.25, 26.25, 2e-4 + 1e-10, 26.25, 6.3125, 6.3125, 2e-10, 6.3125])
    for i in range(4):
        expected[i, i + 4] = expected[i + 4, i] = INITIATE_DIAG_H40[i + 4]
    np.testing.assert_allclose(new_cov, expected, rtol=1e-12, atol=0)


def test_project() -> None:
    mean = _read_only([10.0, 20.0, 0.5, 40.0, 1.0, 2.0, 0.0, -1.0])
    projected_mean, projected_cov = kf.project(mean, _read_only(np.zeros((8, 8))))
    np.testing.assert_allclose(projected_mean, [10.0, 20.0, 0.5, 40.0])
    # Measurement std: 40 / 20 = 2 for positions, 0.1 for the aspect ratio.
    np.testing.assert_allclose(projected_cov, np.diag([4.0, 4.0, 0.01, 4.0]))


def test_update_after_initiate() -> None:
    mean, cov = kf.initiate(BOX_XYAH)
    # x: gain 16 / (16 + 4) = 0.8 on an innovation of 4; a: gain 1e-4 / 0.0101
    # on an innovation of 1.01 -> +0.01. Velocities are uncorrelated: unchanged.
    measurement = np.array([24.0, 40.0, 0.5 + 1.01, 40.0])
    new_mean, new_cov = kf.update(_read_only(mean), _read_only(cov), measurement)
    np.testing.assert_allclose(new_mean, [23.2, 40.0, 0.51, 40.0, 0.0, 0.0, 0.0, 0.0])
    # 16 - 0.8 * 20 * 0.8 = 3.2; aspect 1e-4 - 1e-4^2 / 0.0101.
    np.testing.assert_allclose(np.diag(new_cov)[:4], [3.2, 3.2, 1e-4 - 1e-8 / 0.0101, 3.2])
    np.testing.assert_allclose(np.diag(new_cov)[4:], INITIATE_DIAG_H40[4:])


def test_update_after_predict_corrects_velocity() -> None:
    mean, cov = kf.predict(*kf.initiate(BOX_XYAH))
    # S = 26.25 + 4 = 30.25; innovation +0.4 S in x and -0.2 S in y:
    # x += 0.4 * 26.25, vx = 0.4 * 6.25; y -= 0.2 * 26.25, vy = -0.2 * 6.25.
    measurement = np.array([20.0 + 0.4 * 30.25, 40.0 - 0.2 * 30.25, 0.5, 40.0])
    new_mean, _ = kf.update(mean, cov, measurement)
    np.testing.assert_allclose(
        new_mean, [30.5, 34.75, 0.5, 40.0, 2.5, -1.25, 0.0, 0.0], rtol=1e-12, atol=1e-12
    )


# ---------------------------------------------------------------- selection

PARAMS = SamuraiParams()


def _state(stable_frames: int, box: np.ndarray = BOX, velocity: list[float] | None = None) -> MotionState:
    mean, cov = kf.initiate(kf.xyxy_to_xyah(box))
    if velocity is not None:
        mean[4:] = velocity
    return MotionState(mean=mean, cov=cov, stable_frames=stable_frames)


@pytest.mark.parametrize(
    ("state", "ious", "expected_index"),
    [
        (MotionState(), [0.1, 0.9, 0.5], 1),
        # No threshold on the first frame: even a poor mask seeds the filter.
        (MotionState(), [0.1, 0.05, 0.02], 0),
        # stable_frames == 0 with a stale filter elsewhere: re-initiate.
        (_state(0, box=FAR, velocity=[5.0, 5.0, 0.0, 0.0]), [0.2, 0.3, 0.7], 2),
    ],
)
def test_select_initiates_without_a_stable_filter(
    state: MotionState, ious: list[float], expected_index: int
) -> None:
    boxes = np.array([BOX, BOX + 5.0, BOX + 10.0])
    selection, state = select(state, np.asarray(ious, dtype=np.float32), boxes, PARAMS)
    assert selection == Selection(index=expected_index, kf_score=None)
    assert state.stable_frames == 1
    expected_mean, expected_cov = kf.initiate(kf.xyxy_to_xyah(boxes[expected_index]))
    np.testing.assert_array_equal(state.mean, expected_mean)
    np.testing.assert_array_equal(state.cov, expected_cov)


@pytest.mark.parametrize(
    ("stable_frames", "ious", "dtype", "expected_index", "updated"),
    [
        (1, [0.9, 0.2, 0.1], np.float32, 0, True),
        # The last warm-up frame still only feeds the filter.
        (14, [0.2, 0.1, 0.9], np.float32, 2, True),
        (5, [0.31, 0.1, 0.2], np.float32, 0, True),
        # Strict "> 0.3": exactly 0.3 loses the track, in float32 as in float64.
        (5, [0.3, 0.1, 0.2], np.float32, 0, False),
        (5, [0.3, 0.1, 0.2], np.float64, 0, False),
        (5, [0.1, 0.05, 0.2], np.float32, 2, False),
        # Motion does not vote yet: the far box with the best IoU wins.
        (5, [0.5, 0.9, 0.4], np.float32, 1, True),
    ],
)
def test_select_warm_up(
    stable_frames: int, ious: list[float], dtype: type, expected_index: int, updated: bool
) -> None:
    state = _state(stable_frames)
    boxes = np.array([BOX, FAR, BOX + 1.0])
    predicted = kf.predict(state.mean, state.cov)
    selection, state = select(state, np.asarray(ious, dtype=dtype), boxes, PARAMS)
    assert selection == Selection(index=expected_index, kf_score=None)
    if updated:
        expected = kf.update(*predicted, kf.xyxy_to_xyah(boxes[expected_index]))
        assert state.stable_frames == stable_frames + 1
    else:
        expected = predicted
        assert state.stable_frames == 0
    np.testing.assert_allclose(state.mean, expected[0])
    np.testing.assert_allclose(state.cov, expected[1])


def test_select_reinitiates_after_instability() -> None:
    state = _state(5, velocity=[3.0, 0.0, 0.0, 0.0])
    boxes = np.array([BOX, BOX, BOX])
    _, state = select(state, np.array([0.2, 0.1, 0.15], dtype=np.float32), boxes, PARAMS)
    assert state.stable_frames == 0

    new_boxes = np.array([FAR, BOX + 40.0, BOX])
    selection, state = select(state, np.array([0.4, 0.6, 0.1], dtype=np.float32), new_boxes, PARAMS)
    assert selection == Selection(index=1, kf_score=None)
    assert state.stable_frames == 1
    expected_mean, expected_cov = kf.initiate(kf.xyxy_to_xyah(new_boxes[1]))
    # The old velocity is forgotten.
    np.testing.assert_array_equal(state.mean, expected_mean)
    np.testing.assert_array_equal(state.cov, expected_cov)


# The filter moves 20 px right per frame, so it predicts x 30..50.
MOVED = BOX + np.array([20.0, 0.0, 20.0, 0.0])


@pytest.mark.parametrize(
    ("kf_score_weight", "expected_index", "expected_kf_score"),
    [
        # 0.25 * 0 + 0.75 * 0.8 = 0.6 < 0.25 * 1 + 0.75 * 0.7 = 0.775:
        # the lower-IoU mask that follows the motion wins.
        (0.25, 1, 1.0),
        (0.15, 1, 1.0),
        # Without the motion term the highest predicted IoU wins.
        (0.0, 0, 0.0),
    ],
)
def test_select_stable_weights_motion(
    kf_score_weight: float, expected_index: int, expected_kf_score: float
) -> None:
    params = SamuraiParams(kf_score_weight=kf_score_weight)
    state = _state(15, velocity=[20.0, 0.0, 0.0, 0.0])
    boxes = np.array([BOX, MOVED, FAR])
    predicted = kf.predict(state.mean, state.cov)
    selection, state = select(state, np.array([0.8, 0.7, 0.1], dtype=np.float32), boxes, params)
    assert selection.index == expected_index
    assert selection.kf_score == pytest.approx(expected_kf_score)
    # Stable frames are not counted further once stable.
    assert state.stable_frames == 15
    expected = kf.update(*predicted, kf.xyxy_to_xyah(boxes[expected_index]))
    np.testing.assert_allclose(state.mean, expected[0])
    np.testing.assert_allclose(state.cov, expected[1])


@pytest.mark.parametrize(
    ("stable_frames", "ious", "boxes", "expected_index", "expected_kf_score", "updated"),
    [
        # Strict "< 0.3" to drop a stable track: exactly 0.3 keeps it.
        (15, [0.3, 0.1, 0.05], [BOX, FAR, EMPTY], 0, 1.0, True),
        (15, [0.29, 0.1, 0.05], [BOX, FAR, EMPTY], 0, 1.0, False),
        # The kf_score is reported even when the track is dropped.
        (20, [0.2, 0.1, 0.05], [[20.0, 20.0, 40.0, 60.0], FAR, EMPTY], 0, 1.0 / 3.0, False),
        # Above the threshold too; the reported score is the chosen mask's.
        (40, [0.9, 0.5, 0.4], [[20.0, 20.0, 40.0, 60.0], FAR, EMPTY], 0, 1.0 / 3.0, True),
        # An empty mask scores 0 against the filter, yet wins on IoU:
        # 0.75 * 0.95 = 0.7125 > 0.25 * 1 + 0.75 * 0.6 = 0.7.
        (15, [0.6, 0.95, 0.2], [BOX, EMPTY, FAR], 1, 0.0, True),
        # ... but not when its IoU lead is smaller: 0.675 < 0.7.
        (15, [0.6, 0.9, 0.2], [BOX, EMPTY, FAR], 0, 1.0, True),
    ],
)
def test_select_stable_thresholds(
    stable_frames: int,
    ious: list[float],
    boxes: list,
    expected_index: int,
    expected_kf_score: float,
    updated: bool,
) -> None:
    state = _state(stable_frames)
    boxes_array = np.asarray(boxes, dtype=np.float64)
    predicted = kf.predict(state.mean, state.cov)
    selection, state = select(state, np.asarray(ious, dtype=np.float32), boxes_array, PARAMS)
    assert selection.index == expected_index
    assert selection.kf_score == pytest.approx(expected_kf_score)
    if updated:
        expected = kf.update(*predicted, kf.xyxy_to_xyah(boxes_array[expected_index]))
        assert state.stable_frames == stable_frames
    else:
        expected = predicted
        assert state.stable_frames == 0
    np.testing.assert_allclose(state.mean, expected[0])
    np.testing.assert_allclose(state.cov, expected[1])


@pytest.mark.parametrize(
    ("state", "ious"),
    [
        (MotionState(), [0.1, 0.9, 0.5]),  # a new filter
        (_state(5), [0.9, 0.2, 0.1]),  # warm-up, updated
        (_state(5), [0.1, 0.05, 0.2]),  # warm-up, lost
        (_state(15, velocity=[20.0, 0.0, 0.0, 0.0]), [0.8, 0.7, 0.1]),  # stable, updated
        (_state(15), [0.1, 0.05, 0.2]),  # stable, lost
    ],
)
def test_select_returns_a_new_state_and_leaves_its_argument(state: MotionState, ious: list[float]) -> None:
    """An earlier frame's motion state stays what it was (a snapshot of the object may be kept)."""
    mean = None if state.mean is None else state.mean.copy()
    cov = None if state.cov is None else state.cov.copy()
    stable_frames = state.stable_frames
    _, after = select(state, np.asarray(ious, dtype=np.float32), np.array([BOX, MOVED, FAR]), PARAMS)
    assert after is not state
    assert state.stable_frames == stable_frames
    for kept, now, new in ((mean, state.mean, after.mean), (cov, state.cov, after.cov)):
        if kept is None:
            assert now is None
        else:
            np.testing.assert_array_equal(now, kept)
            assert not np.shares_memory(new, now)  # the next frame's arrays are its own


@pytest.mark.parametrize(
    ("ious", "boxes"),
    [
        (np.zeros(0), np.zeros((0, 4))),
        (np.zeros((1, 3)), np.zeros((3, 4))),
        (np.zeros(3), np.zeros((2, 4))),
        (np.zeros(3), np.zeros((3, 5))),
    ],
)
def test_select_rejects_bad_shapes(ious: np.ndarray, boxes: np.ndarray) -> None:
    state = MotionState()
    with pytest.raises(ValueError, match="shape"):
        select(state, ious, boxes, PARAMS)
    assert state == MotionState()


# ---------------------------------------------------------------- memory rule


@pytest.mark.parametrize(
    ("best_iou", "object_score", "kf_score", "expected"),
    [
        (0.9, 1.0, None, True),
        # Strict "> 0.5".
        (0.5, 1.0, None, False),
        (np.float32(0.5), 1.0, None, False),
        (0.5001, 1.0, None, True),
        # Strict "> 0" on the object-score logit.
        (0.9, 0.0, None, False),
        (0.9, 0.01, None, True),
        (0.9, -2.0, None, False),
        # Strict "> 0" on the filter IoU; None passes.
        (0.9, 1.0, 0.0, False),
        (0.9, 1.0, 0.01, True),
        (0.4, 1.0, 0.9, False),
    ],
)
def test_is_memory_candidate(
    best_iou: float, object_score: float, kf_score: float | None, expected: bool
) -> None:
    assert is_memory_candidate(best_iou, object_score, kf_score, PARAMS) is expected


# ---------------------------------------------------------------- parameters


def test_params_defaults_and_frozen() -> None:
    params = SamuraiParams()
    assert params == SamuraiParams(15, 0.3, 0.25, 0.5, 0.0, 0.0)
    with pytest.raises(FrozenInstanceError):
        params.kf_score_weight = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stable_frames_threshold": 0}, r"stable_frames_threshold must be >= 1, got 0"),
        ({"stable_frames_threshold": 1.5}, r"stable_frames_threshold .* got 1\.5"),
        ({"stable_frames_threshold": True}, r"stable_frames_threshold .* got True"),
        ({"stable_ious_threshold": -0.1}, r"stable_ious_threshold must be in \[0, 1\], got -0\.1"),
        ({"kf_score_weight": 1.5}, r"kf_score_weight must be in \[0, 1\], got 1\.5"),
        ({"kf_score_weight": float("nan")}, r"kf_score_weight .* got nan"),
        ({"memory_bank_iou_threshold": 2.0}, r"memory_bank_iou_threshold .* got 2\.0"),
        ({"memory_bank_kf_score_threshold": -1.0}, r"memory_bank_kf_score_threshold .* got -1\.0"),
        ({"memory_bank_obj_score_threshold": float("inf")}, r"memory_bank_obj_score_threshold .* got inf"),
        ({"min_obj_score_logits": float("nan")}, r"min_obj_score_logits must be a finite logit, got nan"),
    ],
)
def test_params_reject_out_of_range(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SamuraiParams(**kwargs)
