"""A mask given as the prompt (the official `add_new_mask`): the mask is the result, and the memory it makes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from app.samurai import preprocess
from app.samurai.config import TrackerConfig
from app.samurai.decoder import TRACKING_PROMPT, decode, presence_gate
from app.samurai.frame_encoder import EncodedFrame
from app.samurai.mask_choice import SINGLE_MASK_TOKEN
from app.samurai.memory_bank import MemoryEntry
from app.samurai.memory_graphs import encode_memory
from app.samurai.motion_selection import MotionState
from app.samurai.results import FrameResult
from app.samurai.state import ObjectState
from app.samurai.step import store_entry
from app.samurai.timing import StageTimer

if TYPE_CHECKING:  # the algorithm reads a bundle; opening one (and its runtimes) is the caller's business
    from acl_models.bundle import ModelBundle

# The official `_use_mask_as_output`: a mask prompt becomes logits of -10 outside and +10 inside, and its
# object score says present (+10) unless the mask is empty (-10).
MASK_OUT_SCALE, MASK_OUT_BIAS = 20.0, -10.0
# The official predictor keeps a resized mask prompt's pixels at or above half.
MASK_PROMPT_THRESHOLD = 0.5
MASK_DOWNSAMPLE = 4  # the stride of SAM 2's mask_downsample convolution and of the low-res masks
MASK_CONSTANTS = ("mask_downsample_weight", "mask_downsample_bias", "no_obj_ptr")


def mask_object(
    bundle: ModelBundle,
    config: TrackerConfig,
    before: ObjectState,
    motion: MotionState,
    frame: EncodedFrame,
    mask: np.ndarray,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[FrameResult, ObjectState]:
    """The official predictor's `add_new_mask` on a frame: the mask is the result, and the memory it makes.

    The mask is taken as the output (SAM 2.1's `use_mask_input_as_output_without_sam`): no memory
    attention and no choice among candidates; the decoder runs only for the object pointer, on the
    frame's own features with the downsampled mask as its mask prompt. A started object's frame entry
    is replaced (as a correction's); otherwise the frame becomes its prompt frame. SAMURAI's Kalman
    state `motion` is kept as it is (no multimask call), and the frame counts as reliable memory (the SAMURAI
    code scores a mask prompt 1).
    """
    missing = [name for name in MASK_CONSTANTS if name not in bundle.constants]
    if missing:
        raise ValueError(f"the models in {bundle.manifest.folder} predate mask prompts (no {', '.join(missing)}); "
                         f"export them again with convert/export_onnx.py")
    timer = StageTimer(clock)
    constants, hyper, size = bundle.constants, bundle.manifest.hyper, bundle.manifest.image_size
    frame_idx, width, height, features = frame.frame_idx, frame.width, frame.height, frame.features
    with timer.stage("preprocess"):
        binary = mask.astype(np.float32)
        if binary.shape != (size, size):
            binary = (preprocess.resize_antialiased(binary, size, size) >= MASK_PROMPT_THRESHOLD).astype(np.float32)
        low = size // MASK_DOWNSAMPLE
        logits = preprocess.resize_antialiased(binary * MASK_OUT_SCALE + MASK_OUT_BIAS, low, low)
        blocks = binary.reshape(low, MASK_DOWNSAMPLE, low, MASK_DOWNSAMPLE)
        prompt_logits = np.einsum("iajb,ab->ij", blocks, constants["mask_downsample_weight"]).astype(np.float32)
        prompt_logits += constants["mask_downsample_bias"][0]
    present = bool(binary.any())
    with timer.stage("mask_decoder"):
        out = decode(bundle, features["vision_feat"], features,
                      replace(TRACKING_PROMPT, mask_logits=prompt_logits), presence_gate(config))
    obj_ptr = out["obj_ptrs"][0, SINGLE_MASK_TOKEN].astype(np.float32) if present else constants["no_obj_ptr"]
    object_score = MASK_OUT_SCALE * float(present) + MASK_OUT_BIAS
    filled = preprocess.fill_holes(logits, int(hyper["fill_hole_area"]))
    with timer.stage("memory_encoder"):
        features_out = encode_memory(bundle, features["vision_feat"], filled, object_score, binarize=True)
    starts = before.prompt_frame is None
    prompt_frame = frame_idx if starts else before.prompt_frame
    reliable = 1.0  # the SAMURAI code's best_iou_score and kf_score of a mask prompt
    entry = MemoryEntry(frame_idx - prompt_frame, features_out, obj_ptr, reliable, object_score,
                        reliable if config.mode == "samurai" else None)
    memory = store_entry(before.memory, entry, starts)
    with timer.stage("postprocess"):
        frame_mask = preprocess.resize_logits(filled, width, height) > 0
    result = FrameResult(
        frame_idx, frame_mask, filled, SINGLE_MASK_TOKEN, reliable, object_score, None, timer.ms,
        stable_frames=motion.stable_frames, kf_mean=None if motion.mean is None else motion.mean.copy(),
        present=present,
    )
    return result, ObjectState(memory, motion, prompt_frame)
