"""Results drawn on their frame: the video, the web page's picture and the desktop window show the same.

One object is drawn in the SAM 2 notebooks' colours (show_mask / show_box); several each in
their DAVIS palette colour (the colour of their id in the label masks), with the id at the
box's corner. Of several objects, one without a box (lost) shows its mask only, which is then
empty; one object without a box is framed at the corner, (0, 0, 0, 0) as track.txt writes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

from app.media.outputs import PALETTE_SIZE, davis_palette
from app.samurai.boxes import BoxXYWH, box_or_missing
from app.samurai.results import FrameResult

# Colours and opacity of the SAM 2 notebooks' show_mask / show_box (RGB).
MASK_COLOR_RGB = (30, 144, 255)
MASK_ALPHA = 0.6
BOX_COLOR_RGB = (0, 255, 0)
BOX_THICKNESS = 2
# Several objects: the id beside the box.
LABEL_FONT_SCALE = 0.5
LABEL_THICKNESS = 1
LABEL_MARGIN = 4


def annotate(image: np.ndarray, results: Mapping[int, FrameResult]) -> np.ndarray:
    """A copy of an (H, W, 3) uint8 RGB image with each object's mask tinted and its box drawn, by object id."""
    out = image.copy()
    if len(results) == 1:
        (result,) = results.values()
        _draw(out, result.mask, box_or_missing(result.box), MASK_COLOR_RGB, BOX_COLOR_RGB)
        return out
    palette = davis_palette()
    for obj_id, result in results.items():
        colour = tuple(int(c) for c in palette[obj_id % PALETTE_SIZE])
        _draw(out, result.mask, result.box, colour, colour, str(obj_id))
    return out


def _draw(out: np.ndarray, mask: np.ndarray, box: BoxXYWH | None, mask_rgb: Sequence[int],
          box_rgb: tuple[int, int, int], label: str | None = None) -> None:
    out[mask] = np.round((1 - MASK_ALPHA) * out[mask] + MASK_ALPHA * np.asarray(mask_rgb)).astype(np.uint8)
    if box is None:
        return
    x, y, w, h = box
    cv2.rectangle(out, (x, y), (x + w, y + h), box_rgb, BOX_THICKNESS)
    if label is not None:
        cv2.putText(out, label, (x + LABEL_MARGIN, max(y - LABEL_MARGIN, LABEL_MARGIN * 3)),
                    cv2.FONT_HERSHEY_SIMPLEX, LABEL_FONT_SCALE, box_rgb, LABEL_THICKNESS, cv2.LINE_AA)
