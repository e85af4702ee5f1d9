"""The published tracking metrics, computed the way the published numbers were.

One-pass evaluation (LaSOT, LaSOT-ext, OTB, NFS, UAV123, TrackingNet) follows
the analysis code shipped with SAMURAI (derived from pytracking):

- boxes are x, y, w, h with the +1 pixel convention: the bottom-right pixel is
  x + w - 1, the centre x + (w - 1) / 2, the intersection size br - tl + 1
  (clamped at 0), the areas w * h;
- a prediction with a NaN or a negative size is an error; a zero width or
  height is replaced by the previous frame's box; frame 0 is set to the
  ground truth; a prediction longer than the ground truth is cut, a shorter one
  padded with zero boxes (an error on LaSOT);
- a frame is valid when the ground truth has positive width and height (and,
  with `visible`, the target is visible). Invalid frames get overlap -1 and
  centre error +inf, so they fail success and precision, and stay in the
  denominator, which is every frame of the sequence. Their normalised centre
  error is -1, which counts as within every threshold, except on LaSOT, where
  invisible frames get +inf there too; UAV123 gives invalid frames centre
  error -1 as well (both as the original code does);
- success at t is overlap > t for t = 0, 0.05, ..., 1; precision is centre
  error <= t px for t = 0..50, normalised precision the error in units of the
  ground-truth size <= t / 100; each curve is averaged over sequences; AUC is
  the mean of the success curve, precision and normalised precision the
  curves at 20 px and 0.20, OP50 / OP75 the success curve at 0.5 / 0.75.

GOT-10k follows its official toolkit: no +1; both boxes clipped to the image
(x, y into [0, size], then w, h into [0, size - x]); frame 0 left out; only
frames whose `cover` label is > 0; IoUs of all sequences pooled; AO is their
mean, SR the share above 0.5 / 0.75.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.benchmarks.datasets import PROTOCOL_LASOT, PROTOCOL_UAV

OVERLAP_STEP = 0.05
OVERLAP_THRESHOLDS = np.arange(21) * OVERLAP_STEP
CENTRE_THRESHOLDS_PX = np.arange(51, dtype=np.float64)
NORM_CENTRE_THRESHOLDS = np.arange(51, dtype=np.float64) / 100.0
PRECISION_INDEX = 20  # 20 px and 0.20 on the two centre-threshold axes
OP50_INDEX, OP75_INDEX = 10, 15  # 0.5 and 0.75 on the overlap axis
GOT10K_THRESHOLDS = np.linspace(0.0, 1.0, 101)
SR_LOW, SR_HIGH = 0.5, 0.75
INVALID = -1.0


class MetricError(ValueError):
    """Results that cannot be scored (NaN, negative size, wrong length); the message says which."""


@dataclass(frozen=True)
class SequenceCurves:
    """One sequence's per-threshold success rates, and its mean overlap over valid frames (None if none)."""

    success: np.ndarray  # (21,)
    precision: np.ndarray  # (51,)
    norm_precision: np.ndarray  # (51,)
    mean_overlap: float | None


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (N, 4) x, y, w, h boxes as continuous rectangles (no +1); 0 where the union is empty."""
    inter, union = _plain_intersection(a, b), _plain_union(a, b)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Box IoU of two runs' x, y, w, h rows, with two identical boxes (empty ones included) counting as full
    agreement: both runs made the same decision."""
    return np.where(np.all(a == b, axis=1), 1.0, box_iou(a, b))


def overlap_pixels(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """IoU with the +1 pixel convention for the intersection and w * h areas."""
    top_left = np.maximum(pred[:, :2], truth[:, :2])
    bottom_right = np.minimum(pred[:, :2] + pred[:, 2:] - 1.0, truth[:, :2] + truth[:, 2:] - 1.0)
    intersection = np.clip(bottom_right - top_left + 1.0, 0, None).prod(axis=1)
    union = pred[:, 2:].prod(axis=1) + truth[:, 2:].prod(axis=1) - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersection / union


def centre_error(pred: np.ndarray, truth: np.ndarray, normalised: bool = False) -> np.ndarray:
    pred_centre = pred[:, :2] + 0.5 * (pred[:, 2:] - 1.0)
    truth_centre = truth[:, :2] + 0.5 * (truth[:, 2:] - 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if normalised:
            pred_centre = pred_centre / truth[:, 2:]
            truth_centre = truth_centre / truth[:, 2:]
        return np.sqrt(((pred_centre - truth_centre) ** 2).sum(axis=1))


def prepare_prediction(pred: np.ndarray, truth: np.ndarray, protocol: str) -> np.ndarray:
    """The prediction as scored: zero sizes carried over, length matched, frame 0 the ground truth."""
    pred = np.array(pred, dtype=np.float64).reshape(-1, 4)
    if np.isnan(pred).any() or (pred[:, 2:] < 0).any():
        raise MetricError("results hold a NaN or a negative width/height")
    if np.isnan(truth).any() and protocol != PROTOCOL_UAV:
        raise MetricError("ground truth holds NaN values")
    for i in range(1, min(len(pred), len(truth))):
        if (pred[i, 2:] == 0).any() and not np.isnan(truth[i]).any():
            pred[i] = pred[i - 1]
    if len(pred) > len(truth):
        pred = pred[: len(truth)]
    elif len(pred) < len(truth):
        if protocol == PROTOCOL_LASOT:
            raise MetricError(f"results have {len(pred)} frames, the ground truth {len(truth)}")
        pred = np.concatenate([pred, np.zeros((len(truth) - len(pred), 4))])
    pred[0] = truth[0]
    return pred


def frame_errors(
    pred: np.ndarray, truth: np.ndarray, protocol: str, visible: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(overlap, centre error, normalised centre error, valid) per frame, invalid frames marked."""
    truth = np.asarray(truth, dtype=np.float64)
    pred = prepare_prediction(pred, truth, protocol)
    with np.errstate(invalid="ignore"):
        valid = (truth[:, 2] > 0) & (truth[:, 3] > 0)
    if visible is not None:
        valid &= np.asarray(visible, dtype=bool)
    overlap = overlap_pixels(pred, truth)
    centre = centre_error(pred, truth)
    norm_centre = centre_error(pred, truth, normalised=True)
    centre[~valid] = INVALID if protocol == PROTOCOL_UAV else np.inf
    norm_centre[~valid] = INVALID
    overlap[~valid] = INVALID
    if protocol == PROTOCOL_LASOT and visible is not None:
        hidden = ~np.asarray(visible, dtype=bool)
        centre[hidden] = np.inf
        norm_centre[hidden] = np.inf
    if np.isnan(overlap).any():
        raise MetricError("an overlap is NaN (a zero-size box on a valid frame)")
    return overlap, centre, norm_centre, valid


def sequence_curves(
    pred: np.ndarray, truth: np.ndarray, protocol: str, visible: np.ndarray | None = None
) -> SequenceCurves:
    overlap, centre, norm_centre, valid = frame_errors(pred, truth, protocol, visible)
    frames = len(truth)
    return SequenceCurves(
        success=(overlap[:, None] > OVERLAP_THRESHOLDS[None, :]).sum(axis=0) / frames,
        precision=(centre[:, None] <= CENTRE_THRESHOLDS_PX[None, :]).sum(axis=0) / frames,
        norm_precision=(norm_centre[:, None] <= NORM_CENTRE_THRESHOLDS[None, :]).sum(axis=0) / frames,
        mean_overlap=float(overlap[valid].mean()) if valid.any() else None,
    )


def curve_scores(curves: SequenceCurves) -> dict[str, float]:
    """success_auc, precision, norm_precision, op50, op75 of (averaged) curves, as fractions."""
    return {
        "success_auc": float(np.mean(curves.success)),
        "precision": float(curves.precision[PRECISION_INDEX]),
        "norm_precision": float(curves.norm_precision[PRECISION_INDEX]),
        "op50": float(curves.success[OP50_INDEX]),
        "op75": float(curves.success[OP75_INDEX]),
    }


def mean_curves(curves: list[SequenceCurves]) -> SequenceCurves:
    """Curves averaged over sequences (each sequence weighs the same)."""
    if not curves:
        raise MetricError("no sequence to average")
    overlaps = [c.mean_overlap for c in curves if c.mean_overlap is not None]
    return SequenceCurves(
        success=np.mean([c.success for c in curves], axis=0),
        precision=np.mean([c.precision for c in curves], axis=0),
        norm_precision=np.mean([c.norm_precision for c in curves], axis=0),
        mean_overlap=float(np.mean(overlaps)) if overlaps else None,
    )


def _clip_to_image(boxes: np.ndarray, resolution: tuple[int, int]) -> np.ndarray:
    width, height = resolution
    boxes = boxes.copy()
    boxes[:, 0] = np.clip(boxes[:, 0], 0, width)
    boxes[:, 1] = np.clip(boxes[:, 1], 0, height)
    boxes[:, 2] = np.clip(boxes[:, 2], 0, width - boxes[:, 0])
    boxes[:, 3] = np.clip(boxes[:, 3], 0, height - boxes[:, 1])
    return boxes


def got10k_ious(
    pred: np.ndarray, truth: np.ndarray, cover: np.ndarray, resolution: tuple[int, int] | None
) -> np.ndarray:
    """IoUs of the frames the got10k toolkit scores: frame 0 dropped, covered frames only."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 4)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape:
        raise MetricError(f"results have {len(pred)} frames, the ground truth {len(truth)}")
    if len(cover) != len(truth):
        raise MetricError(f"cover.label has {len(cover)} labels, the ground truth {len(truth)} frames")
    pred, truth = pred[1:], truth[1:]
    if resolution is not None:
        pred, truth = _clip_to_image(pred, resolution), _clip_to_image(truth, resolution)
    ious = np.clip(_plain_intersection(pred, truth) / (_plain_union(pred, truth) + np.finfo(float).eps), 0.0, 1.0)
    return ious[np.asarray(cover)[1:] > 0]


def _plain_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    return np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)


def _plain_union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - _plain_intersection(a, b)


def got10k_scores(ious: np.ndarray) -> dict[str, float]:
    """ao, sr50, sr75 of pooled IoUs, as fractions."""
    if len(ious) == 0:
        raise MetricError("no frame with a visible target to score")
    return {"ao": float(np.mean(ious)), "sr50": float(np.mean(ious > SR_LOW)), "sr75": float(np.mean(ious > SR_HIGH))}


def got10k_curve(ious: np.ndarray) -> np.ndarray:
    """Success rate at 101 IoU thresholds 0, 0.01, ..., 1 (the toolkit's success plot)."""
    return np.mean(ious[:, None] > GOT10K_THRESHOLDS[None, :], axis=0)
