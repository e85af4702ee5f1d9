"""Which decoder token becomes the mask: SAM 2's stability fallback for a single mask, the best IoU or
SAMURAI's Kalman-scored choice among the three multimask candidates."""

from __future__ import annotations

import numpy as np

from app.samurai import preprocess
from app.samurai.config import TrackerConfig
from app.samurai.motion_selection import MotionState, mask_box, select

# Mask-decoder token 0 is the single-mask output, tokens 1.. the multimask outputs.
SINGLE_MASK_TOKEN = 0


def single_mask(hyper: dict, masks: np.ndarray, ious: np.ndarray) -> int:
    """SAM 2's dynamic multimask: the single mask unless it is unstable, then the best multimask."""
    delta = hyper["dynamic_multimask_stability_delta"]
    single = masks[SINGLE_MASK_TOKEN]
    union = np.count_nonzero(single > -delta)
    stability = np.count_nonzero(single > delta) / union if union > 0 else 1.0
    if np.float32(stability) >= np.float32(hyper["dynamic_multimask_stability_thresh"]):
        return SINGLE_MASK_TOKEN
    return 1 + int(np.argmax(ious[1:]))


def choose_multimask(
    config: TrackerConfig, size: int, motion: MotionState, masks: np.ndarray, ious: np.ndarray
) -> tuple[int, float | None, MotionState]:
    """The chosen multimask token, its filter score and the motion after it (SAM 2 keeps no motion)."""
    candidates = ious[1:]
    if config.mode == "sam2":
        return 1 + int(np.argmax(candidates)), None, motion
    boxes = np.stack([mask_box(preprocess.resize_logits(m, size, size)) for m in masks[1:]])
    chosen, motion = select(motion, candidates, boxes, config.samurai)
    return 1 + chosen.index, chosen.kf_score, motion
