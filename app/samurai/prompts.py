"""A prompt on a tracked frame: the official video predictor's calls, as one value.

`add_new_points_or_box`, `add_new_mask` and `remove_object` of SAM 2's predictor,
and the undo of one of them on a frame, become one `Prompt`, which `MultiObjectTracker.apply` carries out on a frame it
still holds. Checking user input (bounds, lengths, labels, mask size) happens
where the input arrives, once for every door; the tracker trusts what it gets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.samurai.boxes import Box


@dataclass(frozen=True)
class Prompt:
    """One correction or new object on one frame, in source-frame pixels (the official predictor's calls)."""

    obj_id: int
    points: tuple[tuple[float, float], ...] = ()  # (x, y) source pixels
    labels: tuple[int, ...] = ()  # 1 positive, 0 negative, one per point
    box: Box | None = None  # app.samurai.boxes.Box (x, y, w, h), source pixels
    mask: np.ndarray | None = None  # (H, W) bool at the source frame's size
    remove: bool = False  # remove_object: takes effect from the next frame
    reset: bool = False  # with a box: today's restart (memory forgotten)
    undo: bool = False  # take back the last prompt given to the object on this frame
