"""SAMURAI's motion-aware mask selection and memory-bank rule.

When the mask decoder returns several candidate masks, SAM 2 keeps the one
with the highest predicted IoU. SAMURAI adds a Kalman filter on the mask box:
while the track is young it only feeds the filter, and once the filter has
seen ``stable_frames_threshold`` confident frames in a row it also votes,
favouring the candidate whose box agrees with the predicted motion. A frame
whose chosen mask is unconfident resets the count and the filter restarts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from loguru import logger

from app.samurai import kalman_filter
from app.samurai.boxes import pixel_bounds

BOX_SIZE = 4
"""Entries of an xyxy box."""


@dataclass(frozen=True)
class SamuraiParams:
    """SAMURAI hyper-parameters; the defaults are the official t, s and b+ configs.

    Comparisons follow the official code: ``> stable_ious_threshold`` to keep
    updating a young filter, ``< stable_ious_threshold`` to drop a stable one,
    and strict ``>`` for all three memory-bank thresholds.
    """

    stable_frames_threshold: int = 15
    """Consecutive confident frames before the filter takes part in the choice."""
    stable_ious_threshold: float = 0.3
    """Predicted IoU that separates a confident mask from an unconfident one."""
    kf_score_weight: float = 0.25
    """Weight of the filter's IoU against the predicted IoU (0.15 in the l config)."""
    memory_bank_iou_threshold: float = 0.5
    """A frame enters the memory bank only if its predicted IoU exceeds this."""
    memory_bank_obj_score_threshold: float = 0.0
    """... and its object-score logit exceeds this ..."""
    memory_bank_kf_score_threshold: float = 0.0
    """... and its filter IoU, where it has one, exceeds this."""
    min_obj_score_logits: float = -1.0
    """The object counts as present above this score logit (plain SAM 2 uses 0): its masks are kept
    and its object pointer is the decoder's, not the no-object pointer."""

    def __post_init__(self) -> None:
        threshold = self.stable_frames_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, (int, np.integer)):
            raise ValueError(
                f"stable_frames_threshold must be an integer >= 1, got {threshold!r}"
            )
        if threshold < 1:
            raise ValueError(f"stable_frames_threshold must be >= 1, got {threshold}")
        for name in (
            "stable_ious_threshold",
            "kf_score_weight",
            "memory_bank_iou_threshold",
            "memory_bank_kf_score_threshold",
        ):
            value = getattr(self, name)
            # `not 0 <= value <= 1` also rejects NaN.
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        for name in ("memory_bank_obj_score_threshold", "min_obj_score_logits"):
            logit = getattr(self, name)
            if not math.isfinite(logit):
                raise ValueError(f"{name} must be a finite logit, got {logit}")


@dataclass(frozen=True)
class MotionState:
    """Per-object Kalman state; ``select`` returns the next one and leaves its argument as it was.

    Attributes:
        mean: (8,) filter mean ``[cx, cy, a, h, vcx, vcy, va, vh]``, or None before
            the first selection.
        cov: (8, 8) filter covariance, or None before the first selection.
        stable_frames: confident frames in a row; 0 makes the next selection
            restart the filter.
    """

    mean: np.ndarray | None = None
    cov: np.ndarray | None = None
    stable_frames: int = 0


@dataclass(frozen=True)
class Selection:
    """The chosen candidate mask.

    Attributes:
        index: index of the chosen mask among the candidates.
        kf_score: the filter's IoU with the chosen mask's box, set only when the
            filter took part in the choice (stable branch); the memory-bank rule
            treats None as "no motion evidence against this frame".
    """

    index: int
    kf_score: float | None


def mask_box(mask: np.ndarray) -> np.ndarray:
    """Tight box of the pixels whose logit is > 0.

    Args:
        mask: (H, W) mask logits.

    Returns:
        (4,) float64 ``[x_min, y_min, x_max, y_max]`` in inclusive pixel
        indices, or (0, 0, 0, 0) for an empty mask, as SAMURAI does.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    bounds = pixel_bounds(mask > 0)
    if bounds is None:
        return np.zeros(BOX_SIZE)
    return np.array(bounds, dtype=np.float64)


def select(
    state: MotionState, ious: np.ndarray, boxes: np.ndarray, params: SamuraiParams
) -> tuple[Selection, MotionState]:
    """Choose one of the decoder's candidate masks; the motion state after this frame.

    Call this only for multimask decoder outputs; a single-mask output is taken
    as is and leaves the filter untouched.

    Args:
        state: the object's motion state before this frame; it is not changed.
        ious: (M,) predicted IoUs of the candidates (M = 3 for SAM 2). Keep the
            decoder's dtype: thresholds are compared in it, like the official
            float32 tensors, so a float32 0.3 is not above 0.3.
        boxes: (M, 4) xyxy boxes of the candidate masks (see ``mask_box``).
        params: SAMURAI hyper-parameters.

    Returns:
        the chosen index and, in the stable branch only, its filter IoU; and the
        motion state after this frame (new arrays: ``kalman_filter`` is pure).
    """
    ious = np.asarray(ious)
    # Keep float32 decoder scores in float32 (integers become float64).
    ious = ious.astype(np.result_type(ious.dtype, np.float32), copy=False)
    boxes = np.asarray(boxes, dtype=np.float64)
    if ious.ndim != 1 or ious.size == 0:
        raise ValueError(f"ious must have shape (M,) with M >= 1, got {ious.shape}")
    if boxes.shape != (ious.size, BOX_SIZE):
        raise ValueError(
            f"boxes must have shape ({ious.size}, {BOX_SIZE}) to match ious, got {boxes.shape}"
        )

    # The threshold in the scores' dtype, as torch compares a float32 tensor with
    # a Python float; numpy 1.x would compare a float32 scalar in float64.
    stable_iou = ious.dtype.type(params.stable_ious_threshold)

    if state.mean is None or state.cov is None or state.stable_frames == 0:
        # No trustworthy motion yet: SAM 2's own choice seeds a fresh filter.
        index = int(np.argmax(ious))
        mean, cov = kalman_filter.initiate(kalman_filter.xyxy_to_xyah(boxes[index]))
        return Selection(index=index, kf_score=None), MotionState(mean, cov, state.stable_frames + 1)

    mean, cov = kalman_filter.predict(state.mean, state.cov)

    stable_frames = state.stable_frames
    if stable_frames < params.stable_frames_threshold:
        # Young filter: it learns from confident frames but does not vote yet.
        index = int(np.argmax(ious))
        if ious[index] > stable_iou:
            mean, cov = kalman_filter.update(mean, cov, kalman_filter.xyxy_to_xyah(boxes[index]))
            stable_frames += 1
        else:
            logger.debug(
                "motion lost while warming up: predicted IoU {:.3f} <= {}",
                float(ious[index]),
                params.stable_ious_threshold,
            )
            stable_frames = 0
        return Selection(index=index, kf_score=None), MotionState(mean, cov, stable_frames)

    # Stable filter: blend motion agreement with the decoder's confidence.
    # The official code scores in the decoder's float32, so cast the filter IoUs
    # to the same dtype to break near-ties the same way.
    kf_ious = kalman_filter.iou_with_boxes(mean, boxes).astype(ious.dtype)
    weight = params.kf_score_weight
    scores = weight * kf_ious + (1 - weight) * ious
    index = int(np.argmax(scores))
    if ious[index] < stable_iou:
        logger.debug(
            "motion lost: predicted IoU {:.3f} < {}; the filter restarts next frame",
            float(ious[index]),
            params.stable_ious_threshold,
        )
        stable_frames = 0
    else:
        mean, cov = kalman_filter.update(mean, cov, kalman_filter.xyxy_to_xyah(boxes[index]))
    return Selection(index=index, kf_score=float(kf_ious[index])), MotionState(mean, cov, stable_frames)


def is_memory_candidate(
    best_iou: float, object_score: float, kf_score: float | None, params: SamuraiParams
) -> bool:
    """Whether an earlier frame is reliable enough for SAMURAI's memory bank.

    Args:
        best_iou: predicted IoU of the mask chosen on that frame (not the
            weighted score, and not necessarily the highest predicted IoU).
        object_score: that frame's object-score logit.
        kf_score: that frame's ``Selection.kf_score``; None passes.
        params: SAMURAI hyper-parameters.

    Returns:
        True when all three scores are strictly above their thresholds.
    """
    return (
        float(best_iou) > params.memory_bank_iou_threshold
        and float(object_score) > params.memory_bank_obj_score_threshold
        and (kf_score is None or float(kf_score) > params.memory_bank_kf_score_threshold)
    )
