"""The tracker's SAMURAI settings and rules against the official ones, written down independently.

Source of every value pinned here: the official SAMURAI code, github.com/yangchris11/samurai at commit
76ba195 ("Fix kf_score refactoring error"):
* `sam2/sam2/configs/samurai/sam2.1_hiera_{t,s,b+}.yaml`: stable_frames_threshold 15,
  stable_ious_threshold 0.3, kf_score_weight 0.25, memory_bank_iou_threshold 0.5,
  memory_bank_obj_score_threshold 0.0, memory_bank_kf_score_threshold 0.0, min_obj_score_logits -1.0
  (the presence gate of `SAM2Base._forward_sam_heads`; SAM 2's own code gates at 0);
  `sam2.1_hiera_l.yaml` the same with kf_score_weight 0.15;
* `sam2/sam2/utils/kalman_filter.py`: position noise 1/20 and velocity noise 1/160 of the box height,
  aspect-ratio process noise 1e-2 and 1e-5, measurement noise 1e-1, a new track with twice the position
  and ten times the velocity std.
The rules (mask choice, memory walk) are compared with `tests/reference_predictor.py`, a transcription that
imports nothing from `app/`, over long random sequences that reach every branch.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from app.samurai import kalman_filter as kf
from app.samurai.config import TrackerConfig, load_config
from app.samurai.memory_bank import MemoryBank, MemoryEntry
from app.samurai.motion_selection import MotionState, SamuraiParams, select
from tests import reference_predictor as ref

# The official configs, per model size (see the module docstring).
OFFICIAL = {
    size: {
        "stable_frames_threshold": 15,
        "stable_ious_threshold": 0.3,
        "kf_score_weight": 0.15 if size == "l" else 0.25,
        "memory_bank_iou_threshold": 0.5,
        "memory_bank_obj_score_threshold": 0.0,
        "memory_bank_kf_score_threshold": 0.0,
        "min_obj_score_logits": -1.0,
    }
    for size in ("t", "s", "b+", "l")
}
# SAM 2.1's memory sizes, which SAMURAI keeps: 7 memory frames, 16 object pointers.
NUM_MASKMEM, MAX_OBJ_PTRS = 7, 16

# Box height 40: position std 40/20 = 2, velocity std 40/160 = 0.25 (variances 4 and 0.0625).
HEIGHT = 40.0
MEASUREMENT = np.array([100.0, 80.0, 0.5, HEIGHT])
INITIATE_VARIANCES = [16.0, 16.0, 1e-4, 16.0, 6.25, 6.25, 1e-10, 6.25]  # 2x position std, 10x velocity std
PROCESS_VARIANCES = [4.0, 4.0, 1e-4, 4.0, 0.0625, 0.0625, 1e-10, 0.0625]
MEASUREMENT_VARIANCES = [4.0, 4.0, 1e-2, 4.0]

SEQUENCE_FRAMES = 400
# Both sides use float64; only the order of operations differs.
KALMAN_RTOL = 1e-9
# The tracker reports the filter IoU in the decoder's float32.
KF_SCORE_ATOL = 1e-6


@pytest.mark.parametrize("size", list(OFFICIAL))
def test_config_file_gives_the_official_values(size):
    config = load_config(None, size)
    assert config.mode == "samurai"
    assert asdict(config.samurai) == OFFICIAL[size]


def test_code_defaults_are_the_official_small_model_values():
    assert asdict(SamuraiParams()) == OFFICIAL["t"]
    assert asdict(TrackerConfig().samurai) == OFFICIAL["t"]


@pytest.mark.parametrize("size", list(OFFICIAL))
def test_reference_uses_the_official_values(size):
    assert asdict(ref.OFFICIAL_PARAMS[size]) == OFFICIAL[size]


@pytest.mark.parametrize(
    ("initiate", "predict", "project"),
    [
        pytest.param(kf.initiate, lambda m, c: kf.predict(m, c), lambda m, c: kf.project(m, c)[1], id="tracker"),
        pytest.param(ref.kf_initiate, ref.kf_predict, None, id="reference"),
    ],
)
def test_kalman_noise_is_the_official_one(initiate, predict, project):
    mean, cov = initiate(MEASUREMENT)
    np.testing.assert_allclose(mean, [*MEASUREMENT, 0, 0, 0, 0], rtol=0, atol=0)
    np.testing.assert_allclose(np.diag(cov), INITIATE_VARIANCES, rtol=1e-12)
    assert np.count_nonzero(cov - np.diag(np.diag(cov))) == 0
    # With zero covariance the prediction's covariance is the process noise alone.
    _, noise = predict(mean, np.zeros((8, 8)))
    np.testing.assert_allclose(np.diag(noise), PROCESS_VARIANCES, rtol=1e-12)
    if project is not None:
        np.testing.assert_allclose(np.diag(project(mean, np.zeros((8, 8)))), MEASUREMENT_VARIANCES, rtol=1e-12)


def test_reference_measurement_noise_is_the_official_one():
    """Zero prior uncertainty in position: the update must weigh prior and measurement by the official noise."""
    mean = np.array([*MEASUREMENT, 0, 0, 0, 0])
    cov = np.diag([4.0, 4.0, 1e-2, 4.0, 1.0, 1.0, 1.0, 1.0])  # equal to the measurement noise at height 40
    new_mean, _ = ref.kf_update(mean, cov, MEASUREMENT + [2.0, -2.0, 0.1, 2.0])
    np.testing.assert_allclose(new_mean[:4], MEASUREMENT + [1.0, -1.0, 0.05, 1.0], rtol=1e-12)


def _moving_boxes(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(frames, 3, 4) integer candidate boxes around a target that moves and jumps, with empty masks."""
    centre = np.array([200.0, 150.0])
    boxes = np.zeros((frames, 3, 4))
    for t in range(frames):
        centre += rng.normal(0, 3, 2) + (rng.random() < 0.03) * rng.normal(0, 80, 2)
        for m in range(3):
            if rng.random() < 0.05:
                continue  # an empty mask: box 0, 0, 0, 0
            half = np.array([20, 30]) * rng.uniform(0.5, 1.5) + m * 10
            jitter = rng.normal(0, 4 + 40 * (m == 2), 2)
            boxes[t, m, :2] = np.round(centre + jitter - half)
            boxes[t, m, 2:] = np.round(centre + jitter + half)
    return np.clip(boxes, 0, 511)


@pytest.mark.parametrize("size", ["t", "l"])
@pytest.mark.parametrize("seed", [0, 1])
def test_mask_choice_follows_the_official_rule(size, seed):
    """Every frame: same chosen mask, filter score, stable count and filter state as the official rule."""
    rng = np.random.default_rng(seed)
    params, official = load_config(None, size).samurai, ref.OFFICIAL_PARAMS[size]
    boxes = _moving_boxes(rng, SEQUENCE_FRAMES)
    # Mostly confident frames; on some every candidate is unconfident, which resets the count.
    ious = rng.uniform(0.0, 1.0, (SEQUENCE_FRAMES, 3)).astype(np.float32)
    unconfident = rng.random(SEQUENCE_FRAMES) < 0.06
    ious[unconfident] = rng.uniform(0.0, 0.32, (unconfident.sum(), 3))
    ious[rng.random(SEQUENCE_FRAMES) < 0.02] = np.float32(0.3)  # exactly at the threshold
    ours, theirs = MotionState(), ref.MotionTrack()
    branches = {"warm-up": 0, "stable": 0, "reset": 0}
    for t in range(SEQUENCE_FRAMES):
        mine, ours = select(ours, ious[t], boxes[t], params)
        candidates = boxes[t].astype(int).tolist()
        index, kf_score = ref.choose_mask(theirs, torch.from_numpy(ious[t][None]), candidates, official)
        assert mine.index == index, f"frame {t}"
        assert (mine.kf_score is None) == (kf_score is None), f"frame {t}"
        if kf_score is not None:
            assert mine.kf_score == pytest.approx(kf_score, abs=KF_SCORE_ATOL), f"frame {t}"
        assert ours.stable_frames == theirs.stable_frames, f"frame {t}"
        np.testing.assert_allclose(ours.mean, theirs.mean, rtol=KALMAN_RTOL, atol=KALMAN_RTOL, err_msg=f"frame {t}")
        np.testing.assert_allclose(ours.cov, theirs.cov, rtol=KALMAN_RTOL, atol=KALMAN_RTOL, err_msg=f"frame {t}")
        branches["stable" if kf_score is not None else "warm-up"] += 1
        branches["reset"] += theirs.stable_frames == 0
    assert min(branches.values()) >= 5, branches  # every branch was exercised


@pytest.mark.parametrize("seed", [0, 1])
def test_memory_frames_follow_the_official_walk(seed):
    """The bank's memory frames equal the official walk over earlier frames' scores, frame after frame."""
    rng = np.random.default_rng(seed)
    params, official = load_config(None, "t").samurai, ref.OFFICIAL_PARAMS["t"]
    bank = MemoryBank(NUM_MASKMEM, MAX_OBJ_PTRS, "samurai", params)
    features, pointer = np.zeros((1, 1, 1, 1), np.uint16), np.zeros(1, np.float32)
    bank = bank.with_prompt(MemoryEntry(0, features, pointer, 1.0, 1.0))
    logs: dict[int, ref.FrameLog] = {0: ref.FrameLog(-1, 1.0, 1.0, None, 0, None)}
    for t in range(1, SEQUENCE_FRAMES):
        expected = [(0, 0)] + [(slot, frame) for slot, frame in
                               ref.memory_slots(t, logs, official, NUM_MASKMEM, MAX_OBJ_PTRS) if frame != 0]
        assert [(slot, e.frame_idx) for slot, e in bank.memory_frames(t)] == expected, f"frame {t}"
        # Scores at, just above and well above each threshold.
        best_iou = float(rng.choice([0.4, 0.5, 0.501, 0.9], p=[0.1, 0.1, 0.3, 0.5]))
        object_score = float(rng.choice([-2.0, 0.0, 0.001, 3.0], p=[0.1, 0.1, 0.3, 0.5]))
        kf_score = None if rng.random() < 0.3 else float(rng.choice([0.0, 0.001, 0.8], p=[0.1, 0.4, 0.5]))
        logs[t] = ref.FrameLog(0, best_iou, object_score, kf_score, 1, None)
        bank = bank.add(MemoryEntry(t, features, pointer, best_iou, object_score, kf_score))
