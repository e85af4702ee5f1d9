"""Frame → image-encoder input, and mask logits → frame-sized masks."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

# Hole filling labels background regions; SAM 2's CUDA kernel uses 8-connectivity.
_CONNECTIVITY = 8
# Logit given to filled hole pixels, as in sam2.utils.misc.fill_holes_in_mask_scores.
_HOLE_FILL_LOGIT = 0.1


def resize_frame(image: np.ndarray, size: int, resize: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (size, size, 3) uint8; `pil_bicubic` is the official predictor's resize."""
    if resize == "pil_bicubic":
        return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


def normalise(resized: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(S, S, 3) uint8 → (1, 3, S, S) float32; /255 in float64 before the cast, as the official loader does."""
    scaled = (resized / 255.0).astype(np.float32)
    return ((scaled - mean) / std).transpose(2, 0, 1)[None].copy()


def fill_holes(mask_logits: np.ndarray, max_area: int) -> np.ndarray:
    """Set background components (logit <= 0) of at most `max_area` pixels to a small positive logit."""
    background = (mask_logits <= 0).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(background, connectivity=_CONNECTIVITY)
    if count <= 1:
        return mask_logits
    area = stats[:, cv2.CC_STAT_AREA]
    is_hole = (labels > 0) & (area[labels] <= max_area)
    return np.where(is_hole, np.float32(_HOLE_FILL_LOGIT), mask_logits).astype(np.float32)


def resize_logits(mask_logits: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres (torch's align_corners=False)."""
    return cv2.resize(mask_logits, (width, height), interpolation=cv2.INTER_LINEAR)
