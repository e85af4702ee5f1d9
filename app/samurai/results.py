"""One object's result on one frame (`FrameResult`) and the two states it can be in."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.samurai.boxes import BoxXYWH, box_from_mask

TRACKING, LOST = "tracking", "lost"


@dataclass
class FrameResult:
    """One object's result on one frame: its mask, its box and state, and what its step decided.

    `box` is computed once, from `mask`, when the result is made: x, y, w, h in source-frame
    pixels (ints, `boxes.box_from_mask`'s convention), None when the mask is empty (the object
    is lost, or no pixel is left). Each writer decides how a result without a box reads
    (0,0,0,0 in track.txt, null in the events).
    """

    frame_idx: int
    mask: np.ndarray  # (H, W) bool, at frame size
    low_res_logits: np.ndarray  # (4h, 4w) float32, holes filled
    mask_index: int  # decoder token that was chosen
    best_iou: float
    object_score: float
    kf_score: float | None
    timings: dict[str, float] = field(default_factory=dict)
    ious: np.ndarray | None = None  # (4,) predicted IoU of every decoder token
    stable_frames: int = 0  # SAMURAI's confident-frame count after this frame
    kf_mean: np.ndarray | None = None  # (8,) Kalman state after this frame, model-input pixels
    memory_frames: list[int] = field(default_factory=list)  # frames whose memory this frame attended to
    present: bool = True  # the object score is above the mode's presence gate
    box: BoxXYWH | None = field(init=False)

    def __post_init__(self) -> None:
        self.box = box_from_mask(self.mask)

    @property
    def state(self) -> str:
        """`lost` when the object score says the object is absent (its mask is then empty)."""
        return TRACKING if self.present else LOST
