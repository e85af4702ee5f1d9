"""The prompt encoder and mask decoder: the prompt it reads (`DecoderPrompt`: points, labels, a mask prompt),
boxes and clicks turned into model-input points, and the presence gate of the mode."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app.samurai.config import TrackerConfig

if TYPE_CHECKING:  # the algorithm reads a bundle; opening one (and its runtimes) is the caller's business
    from acl_models.bundle import ModelBundle

# Point labels of the SAM prompt encoder.
BOX_TOP_LEFT, BOX_BOTTOM_RIGHT, PADDING_POINT = 2, 3, -1
# SAM 2.1's multimask_max_pt_num: a prompt of at most this many points gets three candidate masks.
MULTIMASK_MAX_POINTS = 1

# SAM 2's rule: an object-score logit above this means the object is in the frame
# (SAMURAI's configs lower it: SamuraiParams.min_obj_score_logits).
SAM2_PRESENT_LOGIT = 0.0


def presence_gate(config: TrackerConfig) -> np.ndarray:
    """(1,) float32 object-score logit above which the object is present, in the mode's rule."""
    gate = config.samurai.min_obj_score_logits if config.mode == "samurai" else SAM2_PRESENT_LOGIT
    return np.array([gate], dtype=np.float32)


@dataclass(frozen=True)
class DecoderPrompt:
    """What the prompt encoder reads: points in model-input pixels with their labels, and a mask prompt.

    Tracking feeds one padding point and no mask; a box is two corner points; a correction adds the
    user's clicks and the object's previous low-res logits as the mask prompt, as the official
    predictor's `add_new_points_or_box` does.
    """

    coords: np.ndarray  # (N, 2) float32, model-input pixels
    labels: np.ndarray  # (N,) int32: 1 positive, 0 negative, 2/3 box corners, -1 padding
    mask_logits: np.ndarray | None = None  # (4h, 4w) float32 low-res logits, or no mask prompt

    @property
    def multimask(self) -> bool:
        """The official `_use_multimask`: three candidates for at most one point, the single mask for more."""
        return int(np.count_nonzero(self.labels != PADDING_POINT)) <= MULTIMASK_MAX_POINTS


TRACKING_PROMPT = DecoderPrompt(np.zeros((1, 2), np.float32), np.array([PADDING_POINT], np.int32))
_NO_MASK, _MASK = np.zeros(1, np.float32), np.ones(1, np.float32)


@functools.lru_cache(maxsize=4)
def _empty_mask_input(shape: tuple[int, ...]) -> np.ndarray:
    """The mask-prompt input where the prompt has none (read-only, shared by every frame)."""
    zeros = np.zeros((1, 1, *shape), np.float32)
    zeros.flags.writeable = False
    return zeros


def decode(bundle: ModelBundle, pix_feat, features, prompt: DecoderPrompt,
           min_obj_score: np.ndarray) -> dict[str, np.ndarray]:
    high_res0 = features["high_res_feat0"]
    if prompt.mask_logits is None:
        mask_input, mask_valid = _empty_mask_input(high_res0.shape[-2:]), _NO_MASK
    else:
        mask_input, mask_valid = prompt.mask_logits[None, None].astype(np.float32), _MASK
    return bundle.runners["mask_decoder"].run(
        {
            "pix_feat": pix_feat,
            "high_res_feat0": high_res0,
            "high_res_feat1": features["high_res_feat1"],
            "point_coords": prompt.coords[None].astype(np.float32),
            "point_labels": prompt.labels[None].astype(np.int32),
            "mask_input": mask_input,
            "mask_valid": mask_valid,
            "min_obj_score": min_obj_score,
        }
    )


def box_prompt(box_xyxy: tuple[float, float, float, float], width: int, height: int, image_size: int) -> DecoderPrompt:
    """A box (source pixels, x1, y1, x2, y2) as the decoder's two corner points."""
    return DecoderPrompt(to_model_pixels(np.asarray(box_xyxy, dtype=np.float32).reshape(2, 2), width, height,
                                         image_size), np.array([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT], np.int32))


def to_model_pixels(points: np.ndarray, width: int, height: int, image_size: int) -> np.ndarray:
    """(N, 2) source pixels -> model-input pixels: normalised by the frame size, then scaled, in float32
    as the official predictor does."""
    return np.asarray(points, np.float32) / np.array([width, height], dtype=np.float32) * np.float32(image_size)
