"""The box of a mask, computed one way for the tracker's choice of mask and for its result.

SAMURAI's Kalman filter reads candidate masks as xyxy boxes (`motion_selection.mask_box`); a
result carries its frame mask's box as x, y, w, h (`box_from_mask`), the convention every
result file and message writes. Both come from the same inclusive pixel bounds.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import cv2
import numpy as np

BoxXYWH = tuple[int, int, int, int]
"""x, y, w, h in source-frame pixels, as SAMURAI's own inference writes a mask's box."""

MISSING_BOX: BoxXYWH = (0, 0, 0, 0)
"""A result file's box for a result without one (an empty mask): SAMURAI's own inference
writes it so, and benchmark toolkits score it as a miss."""


def pixel_bounds(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x_min, y_min, x_max, y_max), inclusive, of the true pixels of an (H, W) bool mask; None when none is."""
    # OpenCV's bounding rectangle of the non-zero pixels: one pass, a third of
    # the time of row and column reductions over a 512 x 512 mask.
    x, y, width, height = cv2.boundingRect(np.ascontiguousarray(mask).view(np.uint8))
    if width == 0:
        return None
    return x, y, x + width - 1, y + height - 1


def box_from_mask(mask: np.ndarray) -> BoxXYWH | None:
    """(x_min, y_min, x_max - x_min, y_max - y_min) of the true pixels of an (H, W) bool mask; None when empty.

    The official SAMURAI demo's convention (no +1, so one pixel gives w = h = 0),
    kept so results compare with its output.
    """
    if mask.ndim != 2 or mask.dtype != np.bool_:
        raise ValueError(
            f"mask must be a 2-D bool array, got {mask.shape} {mask.dtype}; threshold logits first (logits > 0)"
        )
    bounds = pixel_bounds(mask)
    if bounds is None:
        return None
    x_min, y_min, x_max, y_max = bounds
    return x_min, y_min, x_max - x_min, y_max - y_min


def box_or_missing(box: BoxXYWH | None) -> BoxXYWH:
    """The box a result file writes: the box, or `MISSING_BOX` for none."""
    return MISSING_BOX if box is None else box


@dataclass(frozen=True)
class Box:
    """An axis-aligned box: top-left corner (x, y), width w and height h, in pixels."""

    x: float
    y: float
    w: float
    h: float

    def xyxy(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max), the corner form SAM 2's prompt encoder takes."""
        return (self.x, self.y, self.x + self.w, self.y + self.h)

    def __str__(self) -> str:
        return ",".join(f"{value:g}" for value in astuple(self))
