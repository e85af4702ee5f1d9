"""Frame → image-encoder input, and mask logits → frame-sized masks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

# Hole filling labels background regions; SAM 2's CUDA kernel uses 8-connectivity.
_CONNECTIVITY = 8
# Logit given to filled hole pixels, as in sam2.utils.misc.fill_holes_in_mask_scores.
_HOLE_FILL_LOGIT = 0.1
# Pixel values of a uint8 channel: the size of a normalisation table.
_LEVELS = 256
# PIL's smallest reducing gap: shrink by the largest integer factor that keeps the
# bicubic step at least 1x, i.e. a box-filter reduction does most of the work.
_PIL_REDUCING_GAP = 1.0


def _pil_bicubic(image: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def _pil_bicubic_reduced(image: np.ndarray, size: int) -> np.ndarray:
    resized = Image.fromarray(image).resize((size, size), Image.BICUBIC, reducing_gap=_PIL_REDUCING_GAP)
    return np.asarray(resized)


def _cv2_area(image: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def _cv2_linear(image: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)


# Config name → resize. Only `pil_bicubic` is the official loader's; the others are
# faster and change pixels (scripts/compare_resize.py measures what that does to tracking).
RESIZES: dict[str, Callable[[np.ndarray, int], np.ndarray]] = {
    "pil_bicubic": _pil_bicubic,
    "pil_bicubic_reduced": _pil_bicubic_reduced,
    "cv2_area": _cv2_area,
    "cv2_linear": _cv2_linear,
}


def resize_frame(image: np.ndarray, size: int, resize: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB → (size, size, 3) uint8 with the named resize (a key of RESIZES)."""
    return RESIZES[resize](image, size)


def normalise_reference(resized: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(..., 3) uint8 → float32 (..., 3): the official loader's arithmetic, /255 in float64 before the cast."""
    scaled = (resized / 255.0).astype(np.float32)
    return (scaled - mean) / std


@dataclass(frozen=True)
class Normaliser:
    """uint8 RGB → normalised float32 NCHW by one 256-entry lookup table per channel.

    Each entry is `normalise_reference` of that pixel value, so a lookup gives
    the same bits as the arithmetic at a fraction of its cost: one gather per
    pixel instead of a float64 division, a cast, a subtraction and a division.
    Build it once per tracker.
    """

    tables: np.ndarray  # (3, 1, 256) float32, one row per channel

    @classmethod
    def for_stats(cls, mean: np.ndarray, std: np.ndarray) -> "Normaliser":
        levels = np.arange(_LEVELS, dtype=np.uint8)
        every_level = np.repeat(levels[:, None], len(mean), axis=1)  # (256, 3): value v in every channel
        table = normalise_reference(every_level, np.asarray(mean, np.float32), np.asarray(std, np.float32))
        return cls(np.ascontiguousarray(table.T[:, None, :]))

    def __call__(self, resized: np.ndarray) -> np.ndarray:
        """(S, S, 3) uint8 → (1, 3, S, S) float32."""
        height, width, channels = resized.shape
        out = np.empty((1, channels, height, width), dtype=np.float32)
        for channel, plane in enumerate(cv2.split(resized)):
            cv2.LUT(plane, self.tables[channel], dst=out[0, channel])
        return out


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


def _antialias_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) weights of a bilinear resize with antialiasing (a triangle filter widened by the
    reduction factor, each row normalised), the rule of PyTorch's `interpolate(..., antialias=True)` and PIL."""
    scale = size_in / size_out
    support = scale if scale >= 1.0 else 1.0
    inv = 1.0 / scale if scale >= 1.0 else 1.0
    weights = np.zeros((size_out, size_in), np.float64)
    for i in range(size_out):
        centre = scale * (i + 0.5)
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), size_in)
        taps = np.maximum(0.0, 1.0 - np.abs((np.arange(lo, hi) - centre + 0.5) * inv))
        weights[i, lo:hi] = taps / taps.sum()
    return weights.astype(np.float32)


def resize_antialiased(values: np.ndarray, height: int, width: int) -> np.ndarray:
    """An (H, W) float32 map resized with antialiased bilinear interpolation, as the official predictor
    resizes a mask prompt to the model input and then to the low-res mask size."""
    rows = _antialias_weights(values.shape[0], height)
    cols = _antialias_weights(values.shape[1], width)
    return (rows @ values.astype(np.float32) @ cols.T).astype(np.float32)
