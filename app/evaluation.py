"""One-pass evaluation of a track against ground-truth boxes, as the standard toolkits compute it.

Success: the fraction of frames whose IoU exceeds each of 21 thresholds
0, 0.05, ..., 1; AUC is their mean. Precision: the fraction of frames whose
centre error is at most 20 px. Normalised precision: the centre error divided
by the ground-truth width/height, at 0.2. GOT-10k AO is the mean IoU, SR the
fraction above 0.5 / 0.75. Frames without a ground-truth box (zero size, or
flagged absent) are left out, as LaSOT's occlusion/out-of-view flags ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_PX = 20.0
NORMALISED_PRECISION = 0.2
SR_THRESHOLDS = (0.5, 0.75)


@dataclass(frozen=True)
class Scores:
    frames: int
    mean_iou: float
    success_auc: float
    precision: float
    normalised_precision: float
    sr50: float
    sr75: float

    def line(self) -> str:
        return (
            f"{self.frames} frames: mean IoU {self.mean_iou:.3f}, success AUC {self.success_auc:.3f}, "
            f"precision@20px {self.precision:.3f}, norm. precision@0.2 {self.normalised_precision:.3f}"
        )


def read_boxes(path: Path) -> np.ndarray:
    """(N, 4) x, y, w, h from a text file with comma- or whitespace-separated lines."""
    rows = [line.replace(",", " ").split() for line in Path(path).read_text().splitlines() if line.strip()]
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of (N, 4) x, y, w, h boxes; 0 where the union is empty."""
    x1 = np.maximum(a[:, 0], b[:, 0])
    y1 = np.maximum(a[:, 1], b[:, 1])
    x2 = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    y2 = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def evaluate(predicted: np.ndarray, truth: np.ndarray, absent: np.ndarray | None = None) -> Scores:
    """Score (N, 4) predicted boxes against (N, 4) ground truth; `absent` marks frames to leave out."""
    n = min(len(predicted), len(truth))
    predicted, truth = predicted[:n], truth[:n]
    valid = (truth[:, 2] > 0) & (truth[:, 3] > 0)
    if absent is not None:
        valid &= ~np.asarray(absent[:n], dtype=bool)
    predicted, truth = predicted[valid], truth[valid]
    if len(truth) == 0:
        raise ValueError("no frame has a ground-truth box to score against")
    iou = box_iou(predicted, truth)
    centre_error = (predicted[:, :2] + predicted[:, 2:] / 2) - (truth[:, :2] + truth[:, 2:] / 2)
    distance = np.linalg.norm(centre_error, axis=1)
    normalised = np.linalg.norm(centre_error / truth[:, 2:], axis=1)
    success = np.array([np.mean(iou > t) for t in SUCCESS_THRESHOLDS])
    return Scores(
        frames=len(truth),
        mean_iou=float(iou.mean()),
        success_auc=float(success.mean()),
        precision=float(np.mean(distance <= PRECISION_PX)),
        normalised_precision=float(np.mean(normalised <= NORMALISED_PRECISION)),
        sr50=float(np.mean(iou > SR_THRESHOLDS[0])),
        sr75=float(np.mean(iou > SR_THRESHOLDS[1])),
    )
