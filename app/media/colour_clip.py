"""The generated colour demo clips: a red target with a growing green distractor, or one that leaves and returns.

Made for the synthetic colour checkpoint (`convert/demo_checkpoint.py`),
which segments red-ish and green-ish pixels and rates each mask by how much of
its colour the frame holds. The green square starts small beside the target
and outgrows it a little after the middle of the clip, so plain SAM 2
selection (highest predicted IoU) jumps to it while SAMURAI's Kalman score,
which by then has seen 15 stable frames of the target's motion, keeps the
target. A grey bar crosses the target early on, while both modes still agree.

In the leave-and-return clip the red target drifts right, leaves the frame, stays out for a
while and comes back the way it went; a small static green square stays in
view. The checkpoint's object score is negative while no red is in view, so
the tracker reports the target lost, then found again. The Kalman filter has
seen its 15 stable frames before the target leaves.

The boxes (x,y,w,h per frame) are the whole target, occluded part included, as
LaSOT annotates it; the part inside the frame when the target crosses its edge,
0,0,0,0 while it is out. `scripts/make_demo_clip.py` writes a clip's files
(`app.media.textured_clip.write_clip`).
"""

from __future__ import annotations

import cv2
import numpy as np

WIDTH, HEIGHT = 320, 240
TARGET_SIZE = 40
# Saturated and mirror images of each other, so that "redness" of the target and
# "greenness" of the distractor are equal and only their areas decide.
TARGET_RGB = (200, 40, 40)
DISTRACTOR_RGB = (40, 200, 40)
GREY = 128
# Grey-level texture (equal in R, G and B, so it has no colour), blurred so it
# looks like a surface rather than sensor noise.
TEXTURE_AMPLITUDE = 24
TEXTURE_BLUR_SIGMA = 2.0
# Target path over the whole clip, whatever its length: a steady drift right
# (start x, distance in px) with a slow vertical swing (centre y, amplitude in px,
# total phase in rad), so that the target, gap and grown distractor stay in frame.
START_X, TRAVEL_X = 40.0, 117.0
CENTRE_Y, SWING_Y, SWING_PHASE = 110.0, 25.0, 4.9
# Distractor side grows linearly over the clip and passes TARGET_SIZE at 58 % of
# it (frame ~23 of 40), late enough for SAMURAI's 15 warm-up frames. It is
# rounded to an odd number of pixels, the target's side being even: the areas
# are never equal, so no frame's choice hangs on a tie of predicted IoUs.
DISTRACTOR_START, DISTRACTOR_END = 12.0, 60.0
DISTRACTOR_GAP = 8
# A vertical grey bar sweeps across the target during this part of the clip.
OCCLUSION_SPAN = (0.2, 0.3)
BAR_WIDTH = 10
# Leave-and-return clip: the target's left edge goes from LEAVE_START_X to
# LEAVE_TURN_X (past the right edge) at mid-clip and back, at constant speed.
LEAVE_START_X, LEAVE_TURN_X = 20.0, 380.0
LEAVE_Y = 100
# A static green square, smaller than the target (so the red mask rates higher
# while the target is in view, the green one while it is out) and far from its path.
STILL_GREEN_XY, STILL_GREEN_SIZE = (40, 190), 21


DEFAULT_FRAMES, LEAVE_FRAMES = 40, 44


def _background(rng: np.random.Generator) -> np.ndarray:
    noise = rng.uniform(-1.0, 1.0, (HEIGHT, WIDTH)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), TEXTURE_BLUR_SIGMA)
    noise /= np.abs(noise).max()
    grey = np.clip(GREY + TEXTURE_AMPLITUDE * noise, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def make_frames(num_frames: int = 40, seed: int = 0) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """RGB uint8 frames (HEIGHT, WIDTH, 3) and the target's true boxes (x, y, w, h)."""
    if num_frames < 2:
        raise ValueError(f"the demo clip needs at least 2 frames, got {num_frames}")
    background = _background(np.random.default_rng(seed))
    first_occluded, last_occluded = (round(f * (num_frames - 1)) for f in OCCLUSION_SPAN)
    frames, boxes = [], []
    for i in range(num_frames):
        progress = i / (num_frames - 1)
        frame = background.copy()
        x = round(START_X + TRAVEL_X * progress)
        y = round(CENTRE_Y + SWING_Y * np.sin(SWING_PHASE * progress) - TARGET_SIZE / 2)
        frame[y : y + TARGET_SIZE, x : x + TARGET_SIZE] = TARGET_RGB
        side = 2 * round((DISTRACTOR_START + (DISTRACTOR_END - DISTRACTOR_START) * progress - 1) / 2) + 1
        dx = x + TARGET_SIZE + DISTRACTOR_GAP
        dy = y + TARGET_SIZE // 2 - side // 2
        frame[dy : dy + side, dx : dx + side] = DISTRACTOR_RGB
        if first_occluded <= i <= last_occluded:
            # The bar enters at the target's left part and leaves at its right part.
            sweep = (i - first_occluded) / max(last_occluded - first_occluded, 1)
            bar_x = x + round((TARGET_SIZE - BAR_WIDTH) * sweep)
            frame[:, bar_x : bar_x + BAR_WIDTH] = GREY
        frames.append(frame)
        boxes.append((x, y, TARGET_SIZE, TARGET_SIZE))
    return frames, boxes


def make_leave_frames(num_frames: int = 44, seed: int = 0) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]]]:
    """RGB frames where the target leaves on the right and returns, and its visible boxes (0,0,0,0 when out)."""
    if num_frames < 3:
        raise ValueError(f"the leave-and-return clip needs at least 3 frames, got {num_frames}")
    background = _background(np.random.default_rng(seed))
    gx, gy = STILL_GREEN_XY
    background[gy : gy + STILL_GREEN_SIZE, gx : gx + STILL_GREEN_SIZE] = DISTRACTOR_RGB
    frames, boxes = [], []
    for i in range(num_frames):
        out_and_back = 1 - abs(2 * i / (num_frames - 1) - 1)
        x = round(LEAVE_START_X + (LEAVE_TURN_X - LEAVE_START_X) * out_and_back)
        frame = background.copy()
        frame[LEAVE_Y : LEAVE_Y + TARGET_SIZE, x : x + TARGET_SIZE] = TARGET_RGB
        visible = min(x + TARGET_SIZE, WIDTH) - x
        boxes.append((x, LEAVE_Y, visible, TARGET_SIZE) if visible > 0 else (0, 0, 0, 0))
        frames.append(frame)
    return frames, boxes
