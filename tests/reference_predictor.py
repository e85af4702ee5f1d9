"""PyTorch references for the parity tests, built on the official `sam2==1.1.0` predictor.

* `cpu_connected_components` stands in for SAM 2's CUDA kernel, which a CPU-only
  install skips (with a warning), so that the official predictor fills holes as
  it does on a GPU.
* `SamuraiReferencePredictor` adds SAMURAI's rules (SAMURAI.md section 3) to the
  official predictor the way the SAMURAI code does: mask choice inside the SAM
  heads and memory choice inside `_prepare_memory_conditioned_features`. The
  official SAMURAI repository is not on PyPI, so this is the test's own
  transcription, sharing only the Kalman arithmetic with the tracker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from sam2.modeling.sam2_base import NO_OBJ_SCORE
from sam2.modeling.sam2_utils import get_1d_sine_pe
from sam2.sam2_video_predictor import SAM2VideoPredictor

from app.samurai import kalman_filter
from app.samurai.motion_selection import SamuraiParams
from tests.demo_model import torch_threads


def cpu_connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, areas) per pixel with 8-connectivity, like sam2's `get_connected_components`."""
    binary = mask.to(torch.uint8).cpu().numpy()
    labels = np.zeros(binary.shape, np.int32)
    areas = np.zeros(binary.shape, np.int32)
    for i in range(binary.shape[0]):
        _, lab, stats, _ = cv2.connectedComponentsWithStats(binary[i, 0], connectivity=8)
        labels[i, 0] = lab
        areas[i, 0] = np.where(lab > 0, stats[lab, cv2.CC_STAT_AREA], 0)
    return torch.from_numpy(labels), torch.from_numpy(areas)


@dataclass
class FrameLog:
    index: int  # chosen multimask index (0..2), -1 on the prompt frame
    best_iou: float
    object_score: float
    kf_score: float | None
    stable_frames: int
    kf_mean: np.ndarray | None
    memory_frames: list[int]


def _box(mask: torch.Tensor) -> np.ndarray:
    nonzero = torch.argwhere(mask > 0.0)
    if len(nonzero) == 0:
        return np.zeros(4)
    y_min, x_min = nonzero.min(dim=0).values
    y_max, x_max = nonzero.max(dim=0).values
    return np.array([x_min.item(), y_min.item(), x_max.item(), y_max.item()], dtype=np.float64)


class SamuraiReferencePredictor(SAM2VideoPredictor):
    """The official predictor with SAMURAI's motion-aware mask and memory selection."""

    def setup_samurai(self, params: SamuraiParams) -> None:
        self.params = params
        self.kf_mean = None
        self.kf_cov = None
        self.stable_frames = 0
        self.current_frame = 0
        self.log: dict[int, FrameLog] = {}

    def _choose(self, ious: torch.Tensor, high_res_multimasks: torch.Tensor) -> tuple[int, float | None]:
        p = self.params
        if (self.kf_mean is None and self.kf_cov is None) or self.stable_frames == 0:
            best = int(torch.argmax(ious[0]))
            self.kf_mean, self.kf_cov = kalman_filter.initiate(kalman_filter.xyxy_to_xyah(_box(high_res_multimasks[0, best])))
            self.stable_frames += 1
            return best, None
        if self.stable_frames < p.stable_frames_threshold:
            self.kf_mean, self.kf_cov = kalman_filter.predict(self.kf_mean, self.kf_cov)
            best = int(torch.argmax(ious[0]))
            if ious[0][best] > p.stable_ious_threshold:
                box = kalman_filter.xyxy_to_xyah(_box(high_res_multimasks[0, best]))
                self.kf_mean, self.kf_cov = kalman_filter.update(self.kf_mean, self.kf_cov, box)
                self.stable_frames += 1
            else:
                self.stable_frames = 0
            return best, None
        self.kf_mean, self.kf_cov = kalman_filter.predict(self.kf_mean, self.kf_cov)
        boxes = np.stack([_box(high_res_multimasks[0, i]) for i in range(high_res_multimasks.shape[1])])
        kf_ious = torch.tensor(kalman_filter.iou_with_boxes(self.kf_mean, boxes), dtype=ious.dtype)
        weighted = p.kf_score_weight * kf_ious + (1 - p.kf_score_weight) * ious[0]
        best = int(torch.argmax(weighted))
        if ious[0][best] < p.stable_ious_threshold:
            self.stable_frames = 0
        else:
            box = kalman_filter.xyxy_to_xyah(boxes[best])
            self.kf_mean, self.kf_cov = kalman_filter.update(self.kf_mean, self.kf_cov, box)
        return best, float(kf_ious[best])

    def _forward_sam_heads(self, backbone_features, point_inputs=None, mask_inputs=None, high_res_features=None, multimask_output=False):
        if not multimask_output:
            out = super()._forward_sam_heads(backbone_features, point_inputs, mask_inputs, high_res_features, multimask_output)
            self.log[self.current_frame] = FrameLog(-1, float(out[2][0, 0]), float(out[6][0, 0]), None, 0, None, [])
            return out
        b = backbone_features.size(0)
        coords = torch.zeros(b, 1, 2)
        labels = -torch.ones(b, 1, dtype=torch.int32)
        sparse, dense = self.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        low_multi, ious, tokens, score = self.sam_mask_decoder(
            image_embeddings=backbone_features,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            repeat_image=False,
            high_res_features=high_res_features,
        )
        present = score > 0
        low_multi = torch.where(present[:, None, None], low_multi, NO_OBJ_SCORE).float()
        high_multi = torch.nn.functional.interpolate(
            low_multi, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        best, kf_score = self._choose(ious, high_multi)
        low, high = low_multi[:, best : best + 1], high_multi[:, best : best + 1]
        obj_ptr = self.obj_ptr_proj(tokens[:, best])
        weight = present.float()
        obj_ptr = weight * obj_ptr + (1 - weight) * self.no_obj_ptr
        log = self.log[self.current_frame]
        log.index, log.best_iou, log.object_score, log.kf_score = best, float(ious[0, best]), float(score[0, 0]), kf_score
        log.stable_frames, log.kf_mean = self.stable_frames, None if self.kf_mean is None else self.kf_mean.copy()
        return low_multi, high_multi, ious, low, high, obj_ptr, score

    def _is_reliable(self, frame: int) -> bool:
        log, p = self.log[frame], self.params
        return (
            log.best_iou > p.memory_bank_iou_threshold
            and log.object_score > p.memory_bank_obj_score_threshold
            and (log.kf_score is None or log.kf_score > p.memory_bank_kf_score_threshold)
        )

    def _prepare_memory_conditioned_features(self, frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds, feat_sizes, output_dict, num_frames, track_in_reverse=False):
        self.current_frame = frame_idx
        if is_init_cond_frame:
            self.log[frame_idx] = FrameLog(-1, 0.0, 0.0, None, 0, None, [])
            return super()._prepare_memory_conditioned_features(
                frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds, feat_sizes, output_dict, num_frames
            )
        self.log[frame_idx] = FrameLog(-1, 0.0, 0.0, None, 0, None, [])
        c, (h, w) = self.hidden_dim, feat_sizes[-1]
        non_cond = output_dict["non_cond_frame_outputs"]
        cond = output_dict["cond_frame_outputs"]
        valid: list[int] = []
        for i in range(frame_idx - 1, 1, -1):
            if self._is_reliable(i):
                valid.insert(0, i)
            if len(valid) >= self.max_obj_ptrs_in_encoder - 1:
                break
        if frame_idx - 1 not in valid:
            valid.append(frame_idx - 1)
        slots = [(0, t, out) for t, out in cond.items()]
        for t_pos in range(1, self.num_maskmem):
            idx = t_pos - self.num_maskmem
            if idx < -len(valid):
                continue
            if valid[idx] in non_cond:  # the prompt frame is not a non-conditioning frame
                slots.append((t_pos, valid[idx], non_cond[valid[idx]]))
        self.log[frame_idx].memory_frames = [t for _, t, _ in slots]
        memory, memory_pos = [], []
        for t_pos, _, prev in slots:
            memory.append(prev["maskmem_features"].flatten(2).permute(2, 0, 1))
            enc = prev["maskmem_pos_enc"][-1].flatten(2).permute(2, 0, 1)
            memory_pos.append(enc + self.maskmem_tpos_enc[self.num_maskmem - t_pos - 1])
        max_ptrs = min(num_frames, self.max_obj_ptrs_in_encoder)
        pos_and_ptrs = [(frame_idx - t, out["obj_ptr"]) for t, out in cond.items() if t <= frame_idx]
        for t_diff in range(1, max_ptrs):
            t = frame_idx - t_diff
            if t < 0:
                break
            if t in non_cond:
                pos_and_ptrs.append((t_diff, non_cond[t]["obj_ptr"]))
        positions, ptrs = zip(*pos_and_ptrs)
        obj_ptrs = torch.stack(ptrs, dim=0)
        obj_pos = get_1d_sine_pe(torch.tensor(positions) / (max_ptrs - 1), dim=c)
        obj_pos = self.obj_ptr_tpos_proj(obj_pos).unsqueeze(1).expand(-1, 1, self.mem_dim)
        split = c // self.mem_dim
        obj_ptrs = obj_ptrs.reshape(-1, 1, split, self.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
        obj_pos = obj_pos.repeat_interleave(split, dim=0)
        out = self.memory_attention(
            curr=current_vision_feats,
            curr_pos=current_vision_pos_embeds,
            memory=torch.cat(memory + [obj_ptrs], dim=0),
            memory_pos=torch.cat(memory_pos + [obj_pos], dim=0),
            num_obj_ptr_tokens=obj_ptrs.shape[0],
        )
        return out.permute(1, 2, 0).view(1, c, h, w)


@dataclass
class OfficialRun:
    predictor: SAM2VideoPredictor  # a SamuraiReferencePredictor (with its per-frame `log`) in samurai mode
    masks: dict[int, np.ndarray]  # frame -> (H, W) bool at frame size
    logits: dict[int, np.ndarray]  # frame -> low-res mask logits (holes filled)
    object_scores: dict[int, float]


def run_official(
    checkpoint: Path, folder: Path, box_xyxy, image_size: int, samurai: SamuraiParams | None = None, threads: int | None = None
) -> OfficialRun:
    """The official sam2 video predictor (or the SAMURAI reference with `samurai`) over a JPEG folder, one box on frame 0."""
    import sam2.utils.misc as misc
    from sam2.build_sam import build_sam2_video_predictor

    target = "tests.reference_predictor.SamuraiReferencePredictor" if samurai else "sam2.sam2_video_predictor.SAM2VideoPredictor"
    predictor = build_sam2_video_predictor(
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        str(checkpoint),
        device="cpu",
        hydra_overrides_extra=[f"++model.image_size={image_size}", f"++model._target_={target}"],
    )
    if samurai:
        predictor.setup_samurai(samurai)
    original = misc.get_connected_components
    misc.get_connected_components = cpu_connected_components
    try:
        with torch.inference_mode(), torch_threads(threads or torch.get_num_threads()):
            state = predictor.init_state(str(folder))
            predictor.add_new_points_or_box(state, 0, 1, box=list(box_xyxy))
            masks = {i: (m[0, 0] > 0).numpy() for i, _, m in predictor.propagate_in_video(state)}
            outputs = state["output_dict_per_obj"][0]
            outputs = {**outputs["cond_frame_outputs"], **outputs["non_cond_frame_outputs"]}
    finally:
        misc.get_connected_components = original
    logits = {i: out["pred_masks"][0, 0].numpy() for i, out in outputs.items()}
    scores = {i: float(out["object_score_logits"][0, 0]) for i, out in outputs.items()}
    return OfficialRun(predictor, masks, logits, scores)
