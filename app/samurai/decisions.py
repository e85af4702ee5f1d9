"""What the tracker decided on a frame and why, as one record per object (the decision log's line).

The record belongs to the algorithm: it names the state, the chosen mask token, the
scores it was chosen by, SAMURAI's Kalman box and the memory it attended to.
`app.media.outputs.DecisionLog` only writes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.samurai import kalman_filter
from app.samurai.boxes import box_or_missing
from app.samurai.results import FrameResult


def kalman_box(kf_mean: np.ndarray, width: int, height: int, image_size: int) -> list[float]:
    """The Kalman filter's box as x,y,w,h in frame pixels (the filter works in model-input pixels)."""
    x1, y1, x2, y2 = kalman_filter.xyah_to_xyxy(kf_mean)
    sx, sy = width / image_size, height / image_size
    return [x1 * sx, y1 * sy, (x2 - x1) * sx, (y2 - y1) * sy]


def decision_record(obj_id: int, result: FrameResult, image_size: int) -> dict[str, Any]:
    """One decision-log line: the object's state and what its step chose, and from what.

    Its box is the one track.txt writes (0,0,0,0 for a result without one).
    """
    height, width = result.mask.shape
    return {
        "frame": result.frame_idx,
        "object": obj_id,
        "state": result.state,
        "box": list(box_or_missing(result.box)),
        "object_score": result.object_score,
        "ious": result.ious,
        "mask_index": result.mask_index,
        "kf_score": result.kf_score,
        "kalman_box": None if result.kf_mean is None else kalman_box(result.kf_mean, width, height, image_size),
        "stable_frames": result.stable_frames,
        "memory_frames": result.memory_frames,
    }
