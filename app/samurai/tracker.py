"""SAMURAI tracking of one object over four sub-model runners.

Per frame, top to bottom as the data flows: preprocess → image encoder (the
shared `FrameEncoder` step, the same for every object) → then per object:
memory attention (or the no-memory embedding on the prompt frame) → mask
decoder → mask selection (stability fallback, best IoU, or SAMURAI's Kalman
score) → memory encoder → frame-sized mask. The runners know nothing about
the video; an object's state lives in its `MemoryBank` and `MotionState`, so
objects that share one encoded frame stay independent (`app.samurai.multi_tracker`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from acl_models.base import ModelRunner, Pending
from app.samurai import preprocess
from app.samurai.boxes import BoxXYWH, box_from_mask
from app.samurai.config import TrackerConfig
from app.samurai.memory_bank import MemoryBank, MemoryEntry, from_bfloat16, pad_rows, to_bfloat16
from app.samurai.motion_selection import MotionState, mask_box, select
from app.samurai.state import ObjectState

if TYPE_CHECKING:  # the algorithm reads a bundle; opening one (and its runtimes) is the caller's business
    from acl_models.bundle import ModelBundle

# Point labels of the SAM prompt encoder.
BOX_TOP_LEFT, BOX_BOTTOM_RIGHT, PADDING_POINT = 2, 3, -1
# Mask-decoder token 0 is the single-mask output, tokens 1.. the multimask outputs.
SINGLE_MASK_TOKEN = 0
# SAM 2.1's multimask_max_pt_num: a prompt of at most this many points gets three candidate masks.
MULTIMASK_MAX_POINTS = 1


# SAM 2's rule: an object-score logit above this means the object is in the frame
# (SAMURAI's configs lower it: SamuraiParams.min_obj_score_logits).
SAM2_PRESENT_LOGIT = 0.0
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


@dataclass
class EncodedFrame:
    """A frame after the image encoder: what every object's step reads."""

    frame_idx: int
    width: int
    height: int
    features: dict[str, np.ndarray]
    timings: dict[str, float]


@dataclass
class PendingFrame:
    """A frame whose image encoder was submitted to its runner; `wait()` gives the encoded frame.

    Its "image_encoder" time is what the caller spent submitting and waiting, not
    the encoder's own time, which ran beside the caller's other work.
    """

    frame_idx: int
    width: int
    height: int
    pending: Pending
    timings: dict[str, float]
    clock: Callable[[], float]

    def wait(self) -> EncodedFrame:
        start = self.clock()
        features = self.pending.wait()
        self.timings["image_encoder"] = self.timings.get("image_encoder", 0.0) + 1000.0 * (self.clock() - start)
        return EncodedFrame(self.frame_idx, self.width, self.height, features, self.timings)


# What `FrameEncoder.frames` reads: frame index, image, and its prepared model input or None.
SourceFrame = tuple[int, np.ndarray, np.ndarray | None]


class _Timer:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = self.clock()
        yield
        self.ms[name] = self.ms.get(name, 0.0) + 1000.0 * (self.clock() - start)


class FrameEncoder:
    """Preprocessing and the image encoder: the part of a frame's work that objects share."""

    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, bundle: ModelBundle, config: TrackerConfig):
        hyper = bundle.manifest.hyper
        self.runner = bundle.runners["image_encoder"]
        self.image_size = bundle.manifest.image_size
        self.resize = config.resize
        self.normalise = preprocess.Normaliser.for_stats(hyper["image_mean"], hyper["image_std"])

    def prepare_input(self, image: np.ndarray) -> np.ndarray:
        """The image encoder's input for a frame; pure, so a caller may run it ahead of `encode`."""
        resized = preprocess.resize_frame(image, self.image_size, self.resize)
        if self.runner.takes_pixels:
            return resized[None]
        return self.normalise(resized)

    def encode(self, frame_idx: int, image: np.ndarray, model_input: np.ndarray | None = None) -> EncodedFrame:
        """`model_input` is `prepare_input(image)` when the caller prepared it ahead."""
        timer = _Timer(self.clock)
        with timer.stage("preprocess"):
            x = self.prepare_input(image) if model_input is None else model_input
        with timer.stage("image_encoder"):
            features = self.runner.run({"image": x})
        return EncodedFrame(frame_idx, image.shape[1], image.shape[0], features, timer.ms)

    def submit(self, frame_idx: int, image: np.ndarray, model_input: np.ndarray | None = None) -> PendingFrame:
        """`encode`, started on the runner and returned at once where the runner computes in the background."""
        timer = _Timer(self.clock)
        with timer.stage("preprocess"):
            x = self.prepare_input(image) if model_input is None else model_input
        with timer.stage("image_encoder"):
            pending = self.runner.submit({"image": x})
        return PendingFrame(frame_idx, image.shape[1], image.shape[0], pending, timer.ms, self.clock)

    def frames(self, frames: Iterable[SourceFrame], overlap: bool) -> Iterator[EncodedFrame]:
        """(frame index, image, model input or None) -> each frame encoded, in order.

        With `overlap`, frame t+1 is read and its encoder submitted before frame t
        is handed out, so that the encoder runs in the runner's background while
        the caller tracks frame t: the same arithmetic in another order, since the
        encoder reads nothing but its frame. Without, each frame is encoded when
        it is handed out.
        """
        if not overlap:
            for frame_idx, image, model_input in frames:
                yield self.encode(frame_idx, image, model_input)
            return
        pending: PendingFrame | None = None
        for frame_idx, image, model_input in frames:
            ready = pending.wait() if pending is not None else None
            pending = self.submit(frame_idx, image, model_input)
            if ready is not None:
                yield ready
        if pending is not None:
            yield pending.wait()


def new_object_state(bundle: ModelBundle, config: TrackerConfig, num_frames: int | None = None) -> ObjectState:
    """An object before its first box: an empty memory bank sized by the bundle."""
    hyper = bundle.manifest.hyper
    # The official predictor caps pointers by the video length when it knows it.
    max_ptrs = int(hyper["max_obj_ptrs_in_encoder"])
    max_obj_ptrs = min(num_frames, max_ptrs) if num_frames else max_ptrs
    return ObjectState(MemoryBank(int(hyper["num_maskmem"]), max_obj_ptrs, config.mode, config.samurai))


def _presence_gate(config: TrackerConfig) -> np.ndarray:
    """(1,) float32 object-score logit above which the object is present, in the mode's rule."""
    gate = config.samurai.min_obj_score_logits if config.mode == "samurai" else SAM2_PRESENT_LOGIT
    return np.array([gate], dtype=np.float32)


def _attend_memory(bundle: ModelBundle, memory: MemoryBank, t: int, vision_feat: np.ndarray) -> np.ndarray:
    """Memory attention at the graph's static shape: memories and pointers zero-padded, validity flags set."""
    constants, num_maskmem = bundle.constants, memory.num_maskmem
    frames = memory.memory_frames(t)
    rows, memory_valid = pad_rows(np.concatenate([from_bfloat16(e.features) for _, e in frames]), num_maskmem)
    slots = [num_maskmem - t_pos - 1 for t_pos, _ in frames]
    memory_pos, _ = pad_rows(constants["memory_pos"] + _slot_encodings(bundle, slots), num_maskmem)
    pointers = memory.object_pointers(t)
    # The graph's pointer count; the bank's may be lower for a short video.
    max_ptrs = int(bundle.manifest.hyper["max_obj_ptrs_in_encoder"])
    obj_ptrs, obj_ptr_valid = pad_rows(np.stack([p for _, p in pointers]), max_ptrs)
    offsets = np.array([d for d, _ in pointers], dtype=np.float32) / np.float32(memory.max_obj_ptrs - 1)
    out = _run_declared(
        bundle.runners["memory_attention"],
        {
            "vision_feat": vision_feat,
            "vision_pos": constants["vision_pos"],
            "memory": rows,
            "memory_pos": memory_pos,
            "memory_valid": memory_valid,
            "obj_ptrs": obj_ptrs,
            "obj_ptr_offsets": pad_rows(offsets, max_ptrs)[0],
            "obj_ptr_valid": obj_ptr_valid,
        },
    )
    return out["pix_feat_with_mem"]


def _slot_encodings(bundle: ModelBundle, slots: list[int]) -> np.ndarray:
    """The memory slots' temporal encodings, shaped to add to `memory_pos`: per channel of a feature map (SAM 2.1),
    or per channel of every token (EdgeTAM's perceiver memories, manifest `memory_layout.kind` "tokens")."""
    encodings = bundle.constants["maskmem_tpos_enc"][slots]
    if bundle.manifest.memory_layout.get("kind") == "tokens":
        return encodings[:, None, :]
    return encodings[:, :, None, None]


def _run_declared(runner: ModelRunner, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run with the feeds the graph declares: a family's graph leaves out inputs its model does not use
    (EdgeTAM: no pointer offsets, no object score in the memory encoder)."""
    return runner.run({name: value for name, value in feeds.items() if name in runner.input_names})


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


def _decode(bundle: ModelBundle, pix_feat, features, prompt: DecoderPrompt,
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


def _single_mask(hyper: dict, masks: np.ndarray, ious: np.ndarray) -> int:
    """SAM 2's dynamic multimask: the single mask unless it is unstable, then the best multimask."""
    delta = hyper["dynamic_multimask_stability_delta"]
    single = masks[SINGLE_MASK_TOKEN]
    union = np.count_nonzero(single > -delta)
    stability = np.count_nonzero(single > delta) / union if union > 0 else 1.0
    if np.float32(stability) >= np.float32(hyper["dynamic_multimask_stability_thresh"]):
        return SINGLE_MASK_TOKEN
    return 1 + int(np.argmax(ious[1:]))


def _choose_multimask(
    config: TrackerConfig, size: int, motion: MotionState, masks: np.ndarray, ious: np.ndarray
) -> tuple[int, float | None, MotionState]:
    """The chosen multimask token, its filter score and the motion after it (SAM 2 keeps no motion)."""
    candidates = ious[1:]
    if config.mode == "sam2":
        return 1 + int(np.argmax(candidates)), None, motion
    boxes = np.stack([mask_box(preprocess.resize_logits(m, size, size)) for m in masks[1:]])
    chosen, motion = select(motion, candidates, boxes, config.samurai)
    return 1 + chosen.index, chosen.kf_score, motion


def _encode_memory(bundle: ModelBundle, vision_feat, mask_logits, object_score, binarize: bool) -> np.ndarray:
    out = _run_declared(
        bundle.runners["memory_encoder"],
        {
            "vision_feat": vision_feat,
            "mask_logits": mask_logits[None, None],
            "object_score_logits": np.array([[object_score]], dtype=np.float32),
            "binarize": np.array([1.0 if binarize else 0.0], dtype=np.float32),
        },
    )
    return to_bfloat16(out["maskmem_feat"])


def box_prompt(box_xyxy: tuple[float, float, float, float], width: int, height: int, image_size: int) -> DecoderPrompt:
    """A box (source pixels, x1, y1, x2, y2) as the decoder's two corner points."""
    return DecoderPrompt(to_model_pixels(np.asarray(box_xyxy, dtype=np.float32).reshape(2, 2), width, height,
                                         image_size), np.array([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT], np.int32))


def to_model_pixels(points: np.ndarray, width: int, height: int, image_size: int) -> np.ndarray:
    """(N, 2) source pixels -> model-input pixels: normalised by the frame size, then scaled, in float32
    as the official predictor does."""
    return np.asarray(points, np.float32) / np.array([width, height], dtype=np.float32) * np.float32(image_size)


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


def _stored(memory: MemoryBank, entry: MemoryEntry, starts: bool) -> MemoryBank:
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
    timer = _Timer(clock)
    hyper, image_size = bundle.manifest.hyper, bundle.manifest.image_size
    frame_idx, width, height, features = frame.frame_idx, frame.width, frame.height, frame.features
    vision_feat = features["vision_feat"]
    min_obj_score = _presence_gate(config)
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
            pix_feat = _attend_memory(bundle, memory, relative, vision_feat)
    with timer.stage("mask_decoder"):
        out = _decode(bundle, pix_feat, features, prompt, min_obj_score)
    masks, ious = out["mask_logits"][0], out["iou_pred"][0]
    object_score = float(out["object_score_logits"][0, 0])
    with timer.stage("selection"):
        if prompt.multimask:
            index, kf_score, motion = _choose_multimask(config, image_size, motion, masks, ious)
            pointer_token = index
        else:
            index, kf_score = _single_mask(hyper, masks, ious), None
            pointer_token = SINGLE_MASK_TOKEN
        chosen = masks[index]
        filled = preprocess.fill_holes(chosen, int(hyper["fill_hole_area"]))
    with timer.stage("memory_encoder"):
        # A prompted frame's memory comes from its filled, binarised mask; tracked
        # frames from the raw chosen mask (the official predictor's order).
        features_out = _encode_memory(bundle, vision_feat, filled if prompted else chosen, object_score,
                                      binarize=prompted)
    entry = MemoryEntry(
        frame_idx=frame_idx - prompt_frame,
        features=features_out,
        obj_ptr=out["obj_ptrs"][0, pointer_token].astype(np.float32),
        best_iou=float(ious[index]),
        object_score=object_score,
        kf_score=kf_score,
    )
    memory = _stored(memory, entry, starts)
    with timer.stage("postprocess"):
        mask = preprocess.resize_logits(filled, width, height) > 0
    kf_mean = None if motion.mean is None else motion.mean.copy()
    result = FrameResult(
        frame_idx, mask, filled, index, float(ious[index]), object_score, kf_score, timer.ms,
        ious=ious.copy(), stable_frames=motion.stable_frames, kf_mean=kf_mean, memory_frames=memory_frames,
        present=bool(np.float32(object_score) > min_obj_score[0]),
    )
    return result, ObjectState(memory, motion, prompt_frame)


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
    timer = _Timer(clock)
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
        out = _decode(bundle, features["vision_feat"], features,
                      replace(TRACKING_PROMPT, mask_logits=prompt_logits), _presence_gate(config))
    obj_ptr = out["obj_ptrs"][0, SINGLE_MASK_TOKEN].astype(np.float32) if present else constants["no_obj_ptr"]
    object_score = MASK_OUT_SCALE * float(present) + MASK_OUT_BIAS
    filled = preprocess.fill_holes(logits, int(hyper["fill_hole_area"]))
    with timer.stage("memory_encoder"):
        features_out = _encode_memory(bundle, features["vision_feat"], filled, object_score, binarize=True)
    starts = before.prompt_frame is None
    prompt_frame = frame_idx if starts else before.prompt_frame
    reliable = 1.0  # the SAMURAI code's best_iou_score and kf_score of a mask prompt
    entry = MemoryEntry(frame_idx - prompt_frame, features_out, obj_ptr, reliable, object_score,
                        reliable if config.mode == "samurai" else None)
    memory = _stored(before.memory, entry, starts)
    with timer.stage("postprocess"):
        frame_mask = preprocess.resize_logits(filled, width, height) > 0
    result = FrameResult(
        frame_idx, frame_mask, filled, SINGLE_MASK_TOKEN, reliable, object_score, None, timer.ms,
        stable_frames=motion.stable_frames, kf_mean=None if motion.mean is None else motion.mean.copy(),
        present=present,
    )
    return result, ObjectState(memory, motion, prompt_frame)


class SamuraiTracker:
    """One object, keeping its `ObjectState` between calls of the pure `step_object`.

    `step` encodes the frame itself; `track` takes a frame encoded once for several objects.
    """

    # Times the stages; a benchmark on a busy machine may swap in time.process_time (here and on `encoder`).
    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, bundle: ModelBundle, config: TrackerConfig, num_frames: int | None = None):
        self.bundle = bundle
        self.config = config
        self.encoder = FrameEncoder(bundle, config)
        self.state = new_object_state(bundle, config, num_frames)

    def prepare_input(self, image: np.ndarray) -> np.ndarray:
        """The image encoder's input for a frame; pure, so a caller may run it ahead of `step`."""
        return self.encoder.prepare_input(image)

    def step(
        self,
        frame_idx: int,
        image: np.ndarray,
        box_xyxy: tuple[float, float, float, float] | None = None,
        model_input: np.ndarray | None = None,
    ) -> FrameResult:
        """Track one frame. The first call needs the prompt box (original pixels, x1, y1, x2, y2).

        `model_input` is `prepare_input(image)` when the caller prepared it ahead.
        """
        frame = self.encoder.encode(frame_idx, image, model_input)
        result = self.track(frame, box_xyxy)
        result.timings = {**frame.timings, **result.timings}
        return result

    def track(self, frame: EncodedFrame, box_xyxy: tuple[float, float, float, float] | None = None) -> FrameResult:
        """This object's step on an encoded frame; a box (re)starts the object from it, as on its first frame."""
        result, self.state = step_object(self.bundle, self.config, self.state, frame, box_xyxy, self.clock)
        return result

    def state_nbytes(self) -> int:
        return self.state.nbytes()
