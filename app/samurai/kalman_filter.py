"""Constant-velocity Kalman filter on boxes, as SAMURAI uses it for motion cues.

This is the DeepSORT/ByteTrack formulation: the state is
``(cx, cy, a, h, vcx, vcy, va, vh)`` with box centre ``(cx, cy)``, aspect ratio
``a = w / h`` and height ``h``; the measurement is the first four entries. The
process and measurement noise scale with the box height, so a large box may
move more pixels per frame than a small one.

Every function is pure: it takes the filter's ``(mean, cov)`` and returns new
arrays, so an object's state (`app.samurai.state.ObjectState`) owns it and a test can inspect it.
"""

from __future__ import annotations

import numpy as np

NDIM = 4
"""Size of the measurement (cx, cy, a, h); the state holds these plus velocities."""

STD_WEIGHT_POSITION = 1.0 / 20.0
"""Position noise as a fraction of the box height."""

STD_WEIGHT_VELOCITY = 1.0 / 160.0
"""Velocity noise as a fraction of the box height."""

INITIATE_POSITION_SCALE = 2.0
"""A new track is less certain than a tracked one: position std is doubled."""

INITIATE_VELOCITY_SCALE = 10.0
"""An unobserved velocity starts ten times more uncertain than process noise."""

ASPECT_STD = 1e-2
"""Process std of the aspect ratio; it is dimensionless, so not height-scaled."""

ASPECT_VELOCITY_STD = 1e-5
"""Process std of the aspect-ratio velocity: the shape is assumed nearly fixed."""

ASPECT_MEASUREMENT_STD = 1e-1
"""Measurement std of the aspect ratio; mask boxes jitter more than the model."""


def _constant_velocity_matrices() -> tuple[np.ndarray, np.ndarray]:
    """Build the motion matrix F (8, 8) and the observation matrix H (4, 8), read-only."""
    motion = np.eye(2 * NDIM)
    # One frame per step: position += velocity.
    motion[:NDIM, NDIM:] = np.eye(NDIM)
    observation = np.eye(NDIM, 2 * NDIM)
    motion.setflags(write=False)
    observation.setflags(write=False)
    return motion, observation


_MOTION_MAT, _UPDATE_MAT = _constant_velocity_matrices()


def xyxy_to_xyah(box: np.ndarray) -> np.ndarray:
    """Convert a box (4,) ``[x1, y1, x2, y2]`` to a measurement (4,) ``[cx, cy, a, h]`` float64.

    Widths and heights are plain differences (no +1 for inclusive pixels), as in
    SAMURAI. A zero height is replaced by 1 so an empty box (0, 0, 0, 0), or a
    mask one pixel row tall, never divides by zero.
    """
    x1, y1, x2, y2 = np.asarray(box, dtype=np.float64).reshape(NDIM)
    width = x2 - x1
    height = y2 - y1
    if height == 0:
        height = 1.0
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, width / height, height])


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """Convert ``[cx, cy, a, h]`` (4,) (or a state (8,), whose first 4 are used) to xyxy (4,) float64."""
    cx, cy, aspect, height = np.asarray(xyah, dtype=np.float64)[:NDIM]
    half_width = aspect * height / 2
    return np.array([cx - half_width, cy - height / 2, cx + half_width, cy + height / 2])


def initiate(measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start a track from one measurement.

    Args:
        measurement: (4,) ``[cx, cy, a, h]``.

    Returns:
        mean (8,) float64 with zero velocities, and a diagonal covariance (8, 8).
    """
    position = np.asarray(measurement, dtype=np.float64).reshape(NDIM)
    height = position[3]
    mean = np.concatenate([position, np.zeros(NDIM)])
    pos_std = INITIATE_POSITION_SCALE * STD_WEIGHT_POSITION * height
    vel_std = INITIATE_VELOCITY_SCALE * STD_WEIGHT_VELOCITY * height
    std = np.array(
        [pos_std, pos_std, ASPECT_STD, pos_std, vel_std, vel_std, ASPECT_VELOCITY_STD, vel_std]
    )
    return mean, np.diag(np.square(std))


def _process_noise(mean: np.ndarray) -> np.ndarray:
    """Process noise Q (8, 8) scaled by the height of ``mean`` (8,)."""
    height = mean[3]
    pos_std = STD_WEIGHT_POSITION * height
    vel_std = STD_WEIGHT_VELOCITY * height
    std = np.array(
        [pos_std, pos_std, ASPECT_STD, pos_std, vel_std, vel_std, ASPECT_VELOCITY_STD, vel_std]
    )
    return np.diag(np.square(std))


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Advance the state one frame.

    Args:
        mean: (8,) state at the previous frame.
        cov: (8, 8) its covariance.

    Returns:
        the predicted mean (8,) and covariance (8, 8). The noise is scaled by
        the height *before* the step, as in the reference filter.
    """
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    new_mean = _MOTION_MAT @ mean
    new_cov = _MOTION_MAT @ cov @ _MOTION_MAT.T + _process_noise(mean)
    return new_mean, new_cov


def project(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map the state to measurement space.

    Args:
        mean: (8,) state.
        cov: (8, 8) its covariance.

    Returns:
        the projected mean (4,) and the innovation covariance (4, 4), which
        includes the height-scaled measurement noise.
    """
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    pos_std = STD_WEIGHT_POSITION * mean[3]
    std = np.array([pos_std, pos_std, ASPECT_MEASUREMENT_STD, pos_std])
    projected_cov = _UPDATE_MAT @ cov @ _UPDATE_MAT.T + np.diag(np.square(std))
    return _UPDATE_MAT @ mean, projected_cov


def update(
    mean: np.ndarray, cov: np.ndarray, measurement: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Correct the state with one measurement.

    Args:
        mean: (8,) predicted state.
        cov: (8, 8) its covariance.
        measurement: (4,) ``[cx, cy, a, h]``.

    Returns:
        the corrected mean (8,) and covariance (8, 8).

    Raises:
        numpy.linalg.LinAlgError: the innovation covariance is not positive
            definite (the reference filter's Cholesky factorisation fails there too).
    """
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    projected_mean, projected_cov = project(mean, cov)
    # K = P H^T S^-1, solved through S = L L^T rather than inverting S.
    lower = np.linalg.cholesky(projected_cov)
    cross_cov = cov @ _UPDATE_MAT.T
    kalman_gain = np.linalg.solve(lower.T, np.linalg.solve(lower, cross_cov.T)).T
    innovation = np.asarray(measurement, dtype=np.float64).reshape(NDIM) - projected_mean
    new_mean = mean + kalman_gain @ innovation
    new_cov = cov - kalman_gain @ projected_cov @ kalman_gain.T
    return new_mean, new_cov


def iou_with_boxes(mean: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """IoU between the filter's box and each candidate box, as SAMURAI scores them.

    Args:
        mean: (8,) or (4,) state; its ``[cx, cy, a, h]`` gives the filter's box.
        boxes_xyxy: (N, 4) candidate boxes ``[x1, y1, x2, y2]``.

    Returns:
        (N,) float64 IoUs. Areas are plain differences (no +1). The empty-mask
        box (0, 0, 0, 0) has no area, so it scores 0 like any zero-area box
        (SAMURAI special-cases it, to the same effect); a zero union scores 0
        instead of dividing by zero.
    """
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, NDIM)
    x1, y1, x2, y2 = xyah_to_xyxy(mean)
    inter_w = np.maximum(0.0, np.minimum(x2, boxes[:, 2]) - np.maximum(x1, boxes[:, 0]))
    inter_h = np.maximum(0.0, np.minimum(y2, boxes[:, 3]) - np.maximum(y1, boxes[:, 1]))
    intersection = inter_w * inter_h
    candidate_area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = (x2 - x1) * (y2 - y1) + candidate_area - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union != 0)
