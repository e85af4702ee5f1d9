"""SAMURAI single-object tracker over four sub-model runners.

Per frame, top to bottom as the data flows: preprocess → image encoder →
memory attention (or the no-memory embedding on the prompt frame) → mask
decoder → mask selection (stability fallback, best IoU, or SAMURAI's Kalman
score) → memory encoder → frame-sized mask. The runners know nothing about
the video; all state lives in `MemoryBank` and `MotionState`.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from acl_models.base import ModelRunner
from app import preprocess
from app.config import TrackerConfig
from app.memory_bank import MemoryBank, MemoryEntry, from_bfloat16, pad_rows, to_bfloat16
from app.model_bundle import Manifest
from app.motion_selection import MotionState, mask_box, select

# Point labels of the SAM prompt encoder.
BOX_TOP_LEFT, BOX_BOTTOM_RIGHT, PADDING_POINT = 2, 3, -1
# Mask-decoder token 0 is the single-mask output, tokens 1.. the multimask outputs.
SINGLE_MASK_TOKEN = 0


@dataclass
class FrameResult:
    frame_idx: int
    mask: np.ndarray  # (H, W) bool, at frame size
    low_res_logits: np.ndarray  # (4h, 4w) float32, holes filled
    mask_index: int  # decoder token that was chosen
    best_iou: float
    object_score: float
    kf_score: float | None
    timings: dict[str, float] = field(default_factory=dict)


class _Timer:
    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        yield
        self.ms[name] = self.ms.get(name, 0.0) + 1000.0 * (time.perf_counter() - start)


class SamuraiTracker:
    def __init__(
        self,
        runners: dict[str, ModelRunner],
        manifest: Manifest,
        constants: dict[str, np.ndarray],
        config: TrackerConfig,
        num_frames: int | None = None,
    ):
        hyper = manifest.hyper
        self.runners = runners
        self.manifest = manifest
        self.config = config
        self.image_size = manifest.image_size
        self.mean = np.asarray(hyper["image_mean"], dtype=np.float32)
        self.std = np.asarray(hyper["image_std"], dtype=np.float32)
        self.num_maskmem = int(hyper["num_maskmem"])
        # The official predictor caps pointers by the video length when it knows it.
        max_ptrs = int(hyper["max_obj_ptrs_in_encoder"])
        self.max_obj_ptrs = min(num_frames, max_ptrs) if num_frames else max_ptrs
        self.vision_pos = constants["vision_pos"]
        self.memory_pos = constants["memory_pos"]
        self.tpos = constants["maskmem_tpos_enc"]
        self.no_mem_embed = constants["no_mem_embed"][None, :, None, None]
        self.bank = MemoryBank(self.num_maskmem, self.max_obj_ptrs, config.mode, config.samurai)
        self.motion = MotionState()
        self.first_index: int | None = None

    # -- stages ------------------------------------------------------------

    def _model_input(self, image: np.ndarray) -> np.ndarray:
        resized = preprocess.resize_frame(image, self.image_size, self.config.resize)
        if self.runners["image_encoder"].takes_pixels:
            return resized[None]
        return preprocess.normalise(resized, self.mean, self.std)

    def _attend_memory(self, t: int, vision_feat: np.ndarray) -> np.ndarray:
        """Memory attention at the graph's static shape: memories and pointers zero-padded, validity flags set."""
        frames = self.bank.memory_frames(t)
        memory, memory_valid = pad_rows(np.concatenate([from_bfloat16(e.features) for _, e in frames]), self.num_maskmem)
        slots = [self.num_maskmem - t_pos - 1 for t_pos, _ in frames]
        memory_pos, _ = pad_rows(self.memory_pos + self.tpos[slots][:, :, None, None], self.num_maskmem)
        pointers = self.bank.object_pointers(t)
        # The graph's pointer count; self.max_obj_ptrs may be lower for a short video.
        max_ptrs = int(self.manifest.hyper["max_obj_ptrs_in_encoder"])
        obj_ptrs, obj_ptr_valid = pad_rows(np.stack([p for _, p in pointers]), max_ptrs)
        offsets = np.array([d for d, _ in pointers], dtype=np.float32) / np.float32(self.max_obj_ptrs - 1)
        out = self.runners["memory_attention"].run(
            {
                "vision_feat": vision_feat,
                "vision_pos": self.vision_pos,
                "memory": memory,
                "memory_pos": memory_pos,
                "memory_valid": memory_valid,
                "obj_ptrs": obj_ptrs,
                "obj_ptr_offsets": pad_rows(offsets, max_ptrs)[0],
                "obj_ptr_valid": obj_ptr_valid,
            }
        )
        return out["pix_feat_with_mem"]

    def _decode(self, pix_feat, features, coords: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
        return self.runners["mask_decoder"].run(
            {
                "pix_feat": pix_feat,
                "high_res_feat0": features["high_res_feat0"],
                "high_res_feat1": features["high_res_feat1"],
                "point_coords": coords[None].astype(np.float32),
                "point_labels": labels[None].astype(np.int32),
            }
        )

    def _single_mask(self, masks: np.ndarray, ious: np.ndarray) -> int:
        """SAM 2's dynamic multimask: the single mask unless it is unstable, then the best multimask."""
        delta = self.manifest.hyper["dynamic_multimask_stability_delta"]
        single = masks[SINGLE_MASK_TOKEN]
        union = np.count_nonzero(single > -delta)
        stability = np.count_nonzero(single > delta) / union if union > 0 else 1.0
        if np.float32(stability) >= np.float32(self.manifest.hyper["dynamic_multimask_stability_thresh"]):
            return SINGLE_MASK_TOKEN
        return 1 + int(np.argmax(ious[1:]))

    def _choose_multimask(self, masks: np.ndarray, ious: np.ndarray) -> tuple[int, float | None]:
        candidates = ious[1:]
        if self.config.mode == "sam2":
            return 1 + int(np.argmax(candidates)), None
        size = self.image_size
        boxes = np.stack([mask_box(preprocess.resize_logits(m, size, size)) for m in masks[1:]])
        chosen = select(self.motion, candidates, boxes, self.config.samurai)
        return 1 + chosen.index, chosen.kf_score

    def _encode_memory(self, vision_feat, mask_logits, object_score, binarize: bool) -> np.ndarray:
        out = self.runners["memory_encoder"].run(
            {
                "vision_feat": vision_feat,
                "mask_logits": mask_logits[None, None],
                "object_score_logits": np.array([[object_score]], dtype=np.float32),
                "binarize": np.array([1.0 if binarize else 0.0], dtype=np.float32),
            }
        )
        return to_bfloat16(out["maskmem_feat"])

    # -- public ------------------------------------------------------------

    def step(self, frame_idx: int, image: np.ndarray, box_xyxy: tuple[float, float, float, float] | None = None):
        """Track one frame. The first call needs the prompt box (original pixels, x1, y1, x2, y2)."""
        timer = _Timer()
        height, width = image.shape[:2]
        fill_area = int(self.manifest.hyper["fill_hole_area"])
        with timer.stage("preprocess"):
            x = self._model_input(image)
        with timer.stage("image_encoder"):
            features = self.runners["image_encoder"].run({"image": x})
        vision_feat = features["vision_feat"]
        prompt = self.first_index is None
        if prompt:
            if box_xyxy is None:
                raise ValueError("the first frame needs a box prompt")
            self.first_index = frame_idx
            # Normalise by the frame size, then scale to the model input, in float32 as the official code does.
            corners = np.asarray(box_xyxy, dtype=np.float32).reshape(2, 2)
            coords = corners / np.array([width, height], dtype=np.float32) * np.float32(self.image_size)
            labels = np.array([BOX_TOP_LEFT, BOX_BOTTOM_RIGHT])
            pix_feat = vision_feat + self.no_mem_embed
        else:
            with timer.stage("memory_attention"):
                pix_feat = self._attend_memory(frame_idx - self.first_index, vision_feat)
            coords, labels = np.zeros((1, 2), np.float32), np.array([PADDING_POINT])
        with timer.stage("mask_decoder"):
            out = self._decode(pix_feat, features, coords, labels)
        masks, ious = out["mask_logits"][0], out["iou_pred"][0]
        object_score = float(out["object_score_logits"][0, 0])
        with timer.stage("selection"):
            if prompt:
                index, kf_score = self._single_mask(masks, ious), None
                pointer_token = SINGLE_MASK_TOKEN
            else:
                index, kf_score = self._choose_multimask(masks, ious)
                pointer_token = index
            chosen = masks[index]
            filled = preprocess.fill_holes(chosen, fill_area)
        with timer.stage("memory_encoder"):
            # The prompt frame's memory comes from its filled, binarised mask; tracked
            # frames from the raw chosen mask (the official predictor's order).
            memory = self._encode_memory(vision_feat, filled if prompt else chosen, object_score, binarize=prompt)
        entry = MemoryEntry(
            frame_idx=frame_idx - self.first_index,
            features=memory,
            obj_ptr=out["obj_ptrs"][0, pointer_token].astype(np.float32),
            best_iou=float(ious[index]),
            object_score=object_score,
            kf_score=kf_score,
        )
        if prompt:
            self.bank.prompt = entry
        else:
            self.bank.add(entry)
        with timer.stage("postprocess"):
            mask = preprocess.resize_logits(filled, width, height) > 0
        return FrameResult(frame_idx, mask, filled, index, float(ious[index]), object_score, kf_score, timer.ms)

    def state_nbytes(self) -> int:
        return self.bank.nbytes()
