"""One object's step on an encoded frame, a pure function of (bundle, config, state, frame) -> (result, next state):
memory attention (or the no-memory embedding on the prompt frame) -> mask decoder -> mask choice -> memory encoder
-> frame-sized mask. Tracking, a box that (re)starts the object and a click correction all run it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from app.samurai import preprocess
from app.samurai.config import TrackerConfig
from app.samurai.decoder import TRACKING_PROMPT, DecoderPrompt, box_prompt, decode, presence_gate
from app.samurai.frame_encoder import EncodedFrame
from app.samurai.mask_choice import SINGLE_MASK_TOKEN, choose_multimask, single_mask
from app.samurai.memory_bank import MemoryBank, MemoryEntry
from app.samurai.memory_graphs import attend_memory, encode_memory
from app.samurai.motion_selection import MotionState
from app.samurai.results import FrameResult
from app.samurai.state import ObjectState
from app.samurai.timing import StageTimer

if TYPE_CHECKING:  # the algorithm reads a bundle; opening one (and its runtimes) is the caller's business
    from acl_models.bundle import ModelBundle


def new_object_state(bundle: ModelBundle, config: TrackerConfig, num_frames: int | None = None) -> ObjectState:
    """An object before its first box: an empty memory bank sized by the bundle."""
    hyper = bundle.manifest.hyper
    # The official predictor caps pointers by the video length when it knows it.
    max_ptrs = int(hyper["max_obj_ptrs_in_encoder"])
    max_obj_ptrs = min(num_frames, max_ptrs) if num_frames else max_ptrs
    return ObjectState(MemoryBank(int(hyper["num_maskmem"]), max_obj_ptrs, config.mode, config.samurai))


def step_object(
    bundle: ModelBundle,
    config: TrackerConfig,
    state: ObjectState,
    frame: EncodedFrame,
    box_xyxy: tuple[float, float, float, float] | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[FrameResult, ObjectState]:
    """One object's step on an encoded frame: its result and its next state; `state` is left as it was.

    A box (original pixels, x1, y1, x2, y2) (re)starts the object from it, as on
    its first frame; without one, `state` must have been started by a box.
    """
    if box_xyxy is not None:
        prompt = box_prompt(box_xyxy, frame.width, frame.height, bundle.manifest.image_size)
        restarted = state.restarted()
        return prompt_object(bundle, config, restarted, restarted.motion, frame, prompt, clock)
    if state.prompt_frame is None:
        raise ValueError("the first frame needs a box prompt")
    return _run_step(bundle, config, state, state.motion, frame, TRACKING_PROMPT, False, clock)


def prompt_object(
    bundle: ModelBundle,
    config: TrackerConfig,
    before: ObjectState,
    motion: MotionState,
    frame: EncodedFrame,
    prompt: DecoderPrompt,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[FrameResult, ObjectState]:
    """The official predictor's `add_new_points_or_box` on a frame, then the memory its next propagation encodes.

    `before` is the object's state before this frame. Started (`before.prompt_frame` set), the object
    is refined: the frame is conditioned on `before`'s memory, the prompt carries the previous logits
    as its mask prompt, and the result replaces the frame's entry in memory (a non-conditioning frame,
    the official `add_all_frames_to_correct_as_cond=False`). Not started, this frame becomes its
    prompt frame (an initial conditioning frame). `motion` is SAMURAI's Kalman state the choice
    among three candidates reads and advances, as the official SAMURAI code does on every multimask call.
    """
    return _run_step(bundle, config, before, motion, frame, prompt, True, clock)


def store_entry(memory: MemoryBank, entry: MemoryEntry, starts: bool) -> MemoryBank:
    """`memory` with a frame's entry: as the prompt frame of an object that starts, else as a tracked frame.

    A correction on the prompt frame itself leaves the memory as it was: the official predictor
    drops a non-conditioning output on a conditioning frame.
    """
    if starts:
        return memory.with_prompt(entry)
    return memory.add(entry) if entry.frame_idx > 0 else memory


def _run_step(
    bundle: ModelBundle,
    config: TrackerConfig,
    state: ObjectState,
    motion: MotionState,
    frame: EncodedFrame,
    prompt: DecoderPrompt,
    prompted: bool,
    clock: Callable[[], float],
) -> tuple[FrameResult, ObjectState]:
    timer = StageTimer(clock)
    hyper, image_size = bundle.manifest.hyper, bundle.manifest.image_size
    frame_idx, width, height, features = frame.frame_idx, frame.width, frame.height, frame.features
    vision_feat = features["vision_feat"]
    min_obj_score = presence_gate(config)
    starts = state.prompt_frame is None
    prompt_frame = frame_idx if starts else state.prompt_frame
    memory = state.memory
    memory_frames: list[int] = []
    if starts:
        pix_feat = vision_feat + bundle.constants["no_mem_embed"][None, :, None, None]
    else:
        relative = frame_idx - prompt_frame
        memory_frames = [prompt_frame + e.frame_idx for _, e in memory.memory_frames(relative)]
        with timer.stage("memory_attention"):
            pix_feat = attend_memory(bundle, memory, relative, vision_feat)
    with timer.stage("mask_decoder"):
        out = decode(bundle, pix_feat, features, prompt, min_obj_score)
    masks, ious = out["mask_logits"][0], out["iou_pred"][0]
    object_score = float(out["object_score_logits"][0, 0])
    with timer.stage("selection"):
        if prompt.multimask:
            index, kf_score, motion = choose_multimask(config, image_size, motion, masks, ious)
            pointer_token = index
        else:
            index, kf_score = single_mask(hyper, masks, ious), None
            pointer_token = SINGLE_MASK_TOKEN
        chosen = masks[index]
        filled = preprocess.fill_holes(chosen, int(hyper["fill_hole_area"]))
    with timer.stage("memory_encoder"):
        # A prompted frame's memory comes from its filled, binarised mask; tracked
        # frames from the raw chosen mask (the official predictor's order).
        features_out = encode_memory(bundle, vision_feat, filled if prompted else chosen, object_score,
                                      binarize=prompted)
    entry = MemoryEntry(
        frame_idx=frame_idx - prompt_frame,
        features=features_out,
        obj_ptr=out["obj_ptrs"][0, pointer_token].astype(np.float32),
        best_iou=float(ious[index]),
        object_score=object_score,
        kf_score=kf_score,
    )
    memory = store_entry(memory, entry, starts)
    with timer.stage("postprocess"):
        mask = preprocess.resize_logits(filled, width, height) > 0
    kf_mean = None if motion.mean is None else motion.mean.copy()
    result = FrameResult(
        frame_idx, mask, filled, index, float(ious[index]), object_score, kf_score, timer.ms,
        ious=ious.copy(), stable_frames=motion.stable_frames, kf_mean=kf_mean, memory_frames=memory_frames,
        present=bool(np.float32(object_score) > min_obj_score[0]),
    )
    return result, ObjectState(memory, motion, prompt_frame)
