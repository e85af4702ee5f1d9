"""PyTorch references for the parity tests, built on the official `sam2==1.1.0` predictor.

* `cpu_connected_components` stands in for SAM 2's CUDA kernel, which a CPU-only
  install skips (with a warning), so that the official predictor fills holes as
  it does on a GPU.
* `SamuraiReferencePredictor` adds SAMURAI's rules (SAMURAI.md section 3) to the
  official predictor the way the SAMURAI code does: mask choice inside the SAM
  heads and memory choice inside `_prepare_memory_conditioned_features`.

The official SAMURAI repository (github.com/yangchris11/samurai) is not on PyPI,
so its parts are transcribed here from its behaviour, written anew and sharing
nothing with `app/`: the DeepSORT Kalman filter of `sam2/utils/kalman_filter.py`,
the three selection branches of `SAM2Base._forward_sam_heads`, the memory walk of
`_prepare_memory_conditioned_features`, and the hyper-parameters of
`sam2/configs/samurai/sam2.1_hiera_{t,s,b+,l}.yaml`. A wrong default or rule in
`app/` therefore disagrees with this file instead of agreeing with itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from sam2.modeling.sam2_base import NO_OBJ_SCORE
from sam2.modeling.sam2_utils import get_1d_sine_pe
from sam2.sam2_video_predictor import SAM2VideoPredictor

from tests.demo_model import torch_threads


@dataclass(frozen=True)
class OfficialParams:
    """SAMURAI's hyper-parameters as the official configs set them (t, s and b+; see OFFICIAL_PARAMS for l)."""

    stable_frames_threshold: int = 15
    stable_ious_threshold: float = 0.3
    kf_score_weight: float = 0.25
    memory_bank_iou_threshold: float = 0.5
    memory_bank_obj_score_threshold: float = 0.0
    memory_bank_kf_score_threshold: float = 0.0
    # An object counts as present (masks kept, object pointer not mixed) above this score logit.
    min_obj_score_logits: float = -1.0


OFFICIAL_PARAMS = {
    "t": OfficialParams(),
    "s": OfficialParams(),
    "b+": OfficialParams(),
    # The large config keeps SAM2Base's code default weight.
    "l": OfficialParams(kf_score_weight=0.15),
}


# ---------------------------------------------------------------- the Kalman filter (DeepSORT formulation)

POSITION_WEIGHT = 1 / 20  # position std per pixel of box height
VELOCITY_WEIGHT = 1 / 160  # velocity std per pixel of box height
ASPECT_PROCESS_STD, ASPECT_VELOCITY_PROCESS_STD, ASPECT_MEASUREMENT_STD = 1e-2, 1e-5, 1e-1
NEW_TRACK_POSITION_FACTOR, NEW_TRACK_VELOCITY_FACTOR = 2, 10


def _noise(height: float, position: float, velocity: float, aspect: float, aspect_velocity: float) -> np.ndarray:
    p, v = position * height, velocity * height
    return np.diag(np.square([p, p, aspect, p, v, v, aspect_velocity, v]))


def kf_initiate(xyah) -> tuple[np.ndarray, np.ndarray]:
    """A new track: zero velocity, position std doubled and velocity std ten times the process noise."""
    h = xyah[3]
    cov = _noise(h, NEW_TRACK_POSITION_FACTOR * POSITION_WEIGHT, NEW_TRACK_VELOCITY_FACTOR * VELOCITY_WEIGHT,
                 ASPECT_PROCESS_STD, ASPECT_VELOCITY_PROCESS_STD)
    return np.r_[np.asarray(xyah, dtype=np.float64), np.zeros(4)], cov


def _transition() -> np.ndarray:
    f = np.eye(8)
    for i in range(4):
        f[i, 4 + i] = 1.0
    return f


def kf_predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame of constant velocity; the noise is scaled by the height before the step."""
    f = _transition()
    q = _noise(mean[3], POSITION_WEIGHT, VELOCITY_WEIGHT, ASPECT_PROCESS_STD, ASPECT_VELOCITY_PROCESS_STD)
    return f @ mean, f @ cov @ f.T + q


def kf_update(mean: np.ndarray, cov: np.ndarray, xyah) -> tuple[np.ndarray, np.ndarray]:
    """Correct with a measured box; the measurement noise is scaled by the predicted height."""
    p = POSITION_WEIGHT * mean[3]
    innovation_cov = cov[:4, :4] + np.diag(np.square([p, p, ASPECT_MEASUREMENT_STD, p]))
    gain = np.linalg.solve(innovation_cov, cov[:, :4].T).T  # P H^T S^-1 with S symmetric
    innovation = np.asarray(xyah, dtype=np.float64) - mean[:4]
    return mean + gain @ innovation, cov - gain @ innovation_cov @ gain.T


def xyxy_to_xyah(box) -> list[float]:
    """Plain differences, no +1; a zero height counts as 1."""
    x1, y1, x2, y2 = box
    height = (y2 - y1) or 1
    return [(x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / height, height]


def xyah_to_xyxy(xyah) -> list[float]:
    cx, cy, aspect, height = xyah[:4]
    return [cx - aspect * height / 2, cy - height / 2, cx + aspect * height / 2, cy + height / 2]


def filter_ious(mean: np.ndarray, boxes: list[list[int]]) -> list[float]:
    """IoU of the filter's box with each mask box; the empty-mask box [0, 0, 0, 0] scores 0 by rule."""
    a1, b1, a2, b2 = xyah_to_xyxy(mean)
    out: list[float] = []
    for box in boxes:
        if list(box) == [0, 0, 0, 0]:
            out.append(0)
            continue
        x1, y1, x2, y2 = box
        inter = max(0, min(a2, x2) - max(a1, x1)) * max(0, min(b2, y2) - max(b1, y1))
        union = (a2 - a1) * (b2 - b1) + (x2 - x1) * (y2 - y1) - inter
        out.append(inter / union if union != 0 else 0)
    return out


def mask_box(mask: torch.Tensor) -> list[int]:
    """[x_min, y_min, x_max, y_max] of the pixels with logit > 0 (inclusive indices); [0, 0, 0, 0] when none."""
    nonzero = torch.argwhere(mask > 0.0)
    if len(nonzero) == 0:
        return [0, 0, 0, 0]
    y_min, x_min = nonzero.min(dim=0).values
    y_max, x_max = nonzero.max(dim=0).values
    return [x_min.item(), y_min.item(), x_max.item(), y_max.item()]


# ---------------------------------------------------------------- SAMURAI's selection rules


@dataclass
class MotionTrack:
    mean: np.ndarray | None = None
    cov: np.ndarray | None = None
    stable_frames: int = 0


def choose_mask(
    track: MotionTrack, ious: torch.Tensor, boxes: list[list[int]], params: OfficialParams
) -> tuple[int, float | None]:
    """SAMURAI's motion-aware choice among the multimask outputs; `ious` (1, M) in the decoder's float32.

    Returns the chosen index and, in the stable branch only, the chosen box's filter IoU (its kf_score).
    The weighted score is computed as the official code does: filter IoUs in float64, predicted IoUs float32.
    """
    if (track.mean is None and track.cov is None) or track.stable_frames == 0:
        best = int(torch.argmax(ious, dim=-1))
        track.mean, track.cov = kf_initiate(xyxy_to_xyah(boxes[best]))
        track.stable_frames += 1
        return best, None
    track.mean, track.cov = kf_predict(track.mean, track.cov)
    if track.stable_frames < params.stable_frames_threshold:
        best = int(torch.argmax(ious, dim=-1))
        if ious[0][best] > params.stable_ious_threshold:
            track.mean, track.cov = kf_update(track.mean, track.cov, xyxy_to_xyah(boxes[best]))
            track.stable_frames += 1
        else:
            track.stable_frames = 0
        return best, None
    kf_ious = torch.tensor(filter_ious(track.mean, boxes))
    weighted = params.kf_score_weight * kf_ious + (1 - params.kf_score_weight) * ious
    best = int(torch.argmax(weighted, dim=-1))
    if ious[0][best] < params.stable_ious_threshold:
        track.stable_frames = 0
    else:
        track.mean, track.cov = kf_update(track.mean, track.cov, xyxy_to_xyah(boxes[best]))
    return best, float(kf_ious[best])


@dataclass
class FrameLog:
    index: int  # chosen multimask index (0..2), -1 on the prompt frame
    best_iou: float
    object_score: float
    kf_score: float | None
    stable_frames: int
    kf_mean: np.ndarray | None
    memory_frames: list[int] = field(default_factory=list)


def is_reliable(log: FrameLog, params: OfficialParams) -> bool:
    return (
        log.best_iou > params.memory_bank_iou_threshold
        and log.object_score > params.memory_bank_obj_score_threshold
        and (log.kf_score is None or log.kf_score > params.memory_bank_kf_score_threshold)
    )


def memory_slots(frame_idx: int, logs: dict[int, FrameLog], params: OfficialParams, num_maskmem: int,
                 max_obj_ptrs: int) -> list[tuple[int, int]]:
    """(temporal slot, frame) of the non-prompt memories SAMURAI attends to for `frame_idx`.

    Walk back from the previous frame down to frame 2 keeping reliable frames (at most max_obj_ptrs - 1),
    force the previous frame in, and give the most recent num_maskmem - 1 of them slots, the newest last.
    """
    valid: list[int] = []
    for i in range(frame_idx - 1, 1, -1):
        if is_reliable(logs[i], params):
            valid.insert(0, i)
        if len(valid) >= max_obj_ptrs - 1:
            break
    if frame_idx - 1 not in valid:
        valid.append(frame_idx - 1)
    slots = range(1, num_maskmem)
    return [(t_pos, valid[t_pos - num_maskmem]) for t_pos in slots if t_pos - num_maskmem >= -len(valid)]


# ---------------------------------------------------------------- the predictor


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


class SamuraiReferencePredictor(SAM2VideoPredictor):
    """The official predictor with SAMURAI's motion-aware mask and memory selection."""

    def setup_samurai(self, params: OfficialParams) -> None:
        self.params = params
        self.track = MotionTrack()
        self.current_frame = 0
        self.log: dict[int, FrameLog] = {}

    def _forward_sam_heads(self, backbone_features, point_inputs=None, mask_inputs=None, high_res_features=None,
                           multimask_output=False):
        b = backbone_features.size(0)
        if point_inputs is None:
            coords, labels = torch.zeros(b, 1, 2), -torch.ones(b, 1, dtype=torch.int32)
        else:
            coords, labels = point_inputs["point_coords"], point_inputs["point_labels"]
        # A correction's previous logits come at the prompt encoder's mask size (no resize needed).
        assert mask_inputs is None or mask_inputs.shape[-2:] == self.sam_prompt_encoder.mask_input_size
        sparse, dense = self.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=mask_inputs)
        low_multi, ious, tokens, score = self.sam_mask_decoder(
            image_embeddings=backbone_features,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=False,
            high_res_features=high_res_features,
        )
        present = score > self.params.min_obj_score_logits
        low_multi = torch.where(present[:, None, None], low_multi, NO_OBJ_SCORE).float()
        high_multi = torch.nn.functional.interpolate(
            low_multi, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        log = self.log[self.current_frame]
        if multimask_output:
            boxes = [mask_box(high_multi[0, i]) for i in range(high_multi.shape[1])]
            best, kf_score = choose_mask(self.track, ious, boxes, self.params)
            log.index, log.kf_score = best, kf_score
            log.stable_frames = self.track.stable_frames
            log.kf_mean = None if self.track.mean is None else self.track.mean.copy()
        else:
            best = 0
        low, high = low_multi[:, best : best + 1], high_multi[:, best : best + 1]
        log.best_iou, log.object_score = float(ious[0, best]), float(score[0, 0])
        obj_ptr = self.obj_ptr_proj(tokens[:, best])
        weight = present.float()
        obj_ptr = weight * obj_ptr + (1 - weight) * self.no_obj_ptr
        return low_multi, high_multi, ious, low, high, obj_ptr, score

    def _track_step(self, frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds, feat_sizes,
                    point_inputs, mask_inputs, *rest):
        """Each call on a frame (tracking, a correction, a mask) starts that frame's log afresh."""
        self.current_frame = frame_idx
        self.log[frame_idx] = log = FrameLog(-1, 0.0, 0.0, None, 0, None)
        out = super()._track_step(frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds,
                                  feat_sizes, point_inputs, mask_inputs, *rest)
        if mask_inputs is not None:  # the mask is the output: the SAMURAI code scores it 1 for memory
            log.index, log.best_iou, log.kf_score = -1, 1.0, 1.0
            log.object_score = float(out[1][6][0, 0])
        return out

    def _prepare_memory_conditioned_features(self, frame_idx, is_init_cond_frame, current_vision_feats,
                                             current_vision_pos_embeds, feat_sizes, output_dict, num_frames,
                                             track_in_reverse=False):
        if is_init_cond_frame:
            return super()._prepare_memory_conditioned_features(
                frame_idx, is_init_cond_frame, current_vision_feats, current_vision_pos_embeds, feat_sizes, output_dict,
                num_frames,
            )
        c, (h, w) = self.hidden_dim, feat_sizes[-1]
        non_cond = output_dict["non_cond_frame_outputs"]
        cond = output_dict["cond_frame_outputs"]
        slots = [(0, t, out) for t, out in cond.items()]
        for t_pos, t in memory_slots(frame_idx, self.log, self.params, self.num_maskmem, self.max_obj_ptrs_in_encoder):
            if t in non_cond:  # the prompt frame is not a non-conditioning frame
                slots.append((t_pos, t, non_cond[t]))
        self.log[frame_idx].memory_frames = [t for _, t, _ in slots]
        memory, memory_pos = [], []
        for t_pos, _, prev in slots:
            memory.append(_sequence_first(prev["maskmem_features"]))
            enc = _sequence_first(prev["maskmem_pos_enc"][-1])
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
        if self.add_tpos_enc_to_obj_ptrs:
            obj_pos = get_1d_sine_pe(torch.tensor(positions) / (max_ptrs - 1), dim=c)
            obj_pos = self.obj_ptr_tpos_proj(obj_pos).unsqueeze(1).expand(-1, 1, self.mem_dim)
        else:  # EdgeTAM: pointers carry no temporal position
            obj_pos = obj_ptrs.new_zeros(len(positions), 1, self.mem_dim)
        split = c // self.mem_dim
        obj_ptrs = obj_ptrs.reshape(-1, 1, split, self.mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
        obj_pos = obj_pos.repeat_interleave(split, dim=0)
        out = self.memory_attention(
            curr=current_vision_feats,
            curr_pos=current_vision_pos_embeds,
            memory=torch.cat(memory + [obj_ptrs], dim=0),
            memory_pos=torch.cat(memory_pos + [obj_pos], dim=0),
            num_obj_ptr_tokens=obj_ptrs.shape[0],
            # EdgeTAM's v2 cross-attention repeats its key grid once per memory frame.
            **({"num_spatial_mem": len(memory)} if getattr(self, "spatial_perceiver", None) is not None else {}),
        )
        return out.permute(1, 2, 0).view(1, c, h, w)


def _sequence_first(memory: torch.Tensor) -> torch.Tensor:
    """(tokens, 1, C) from a (1, C, h, w) SAM 2.1 memory or a (1, tokens, C) EdgeTAM perceiver memory."""
    return memory.permute(1, 0, 2) if memory.ndim == 3 else memory.flatten(2).permute(2, 0, 1)


@dataclass
class OfficialRun:
    predictor: SAM2VideoPredictor  # a SamuraiReferencePredictor (with its per-frame `log`) in samurai mode
    masks: dict[int, np.ndarray]  # frame -> (H, W) bool at frame size
    logits: dict[int, np.ndarray]  # frame -> low-res mask logits (holes filled)
    object_scores: dict[int, float]


def build_predictor(checkpoint: Path, image_size: int, samurai: OfficialParams | None) -> SAM2VideoPredictor:
    """The official sam2 video predictor, or the SAMURAI reference with `samurai`, on the tiny config."""
    from sam2.build_sam import build_sam2_video_predictor

    target = "tests.reference_predictor.SamuraiReferencePredictor" if samurai is not None else "sam2.sam2_video_predictor.SAM2VideoPredictor"
    predictor = build_sam2_video_predictor(
        "configs/sam2.1/sam2.1_hiera_t.yaml",
        str(checkpoint),
        device="cpu",
        hydra_overrides_extra=[f"++model.image_size={image_size}", f"++model._target_={target}"],
    )
    if samurai is not None:
        predictor.setup_samurai(samurai)
    return predictor


def run_official(
    checkpoint: Path, folder: Path, box_xyxy, image_size: int, samurai: OfficialParams | None = None, threads: int | None = None
) -> OfficialRun:
    """The official sam2 video predictor (or the SAMURAI reference with `samurai`) over a JPEG folder, one box on frame 0."""
    import sam2.utils.misc as misc

    predictor = build_predictor(checkpoint, image_size, samurai)
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


# ---------------------------------------------------------------- interactive sessions


@dataclass(frozen=True)
class Call:
    """One interactive call on a frame: clicks and/or a box (`add_new_points_or_box`), a mask, or a removal."""

    obj_id: int
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box_xyxy: tuple[float, float, float, float] | None = None
    remove: bool = False
    mask: np.ndarray | None = None  # (H, W) bool: `add_new_mask`


@dataclass
class SessionRun:
    predictor: SAM2VideoPredictor
    masks: dict[int, dict[int, np.ndarray]]  # frame -> object id -> (H, W) bool at frame size
    logits: dict[int, dict[int, np.ndarray]]  # frame -> object id -> low-res logits (holes filled)
    cond_frames: dict[int, list[int]]  # object id -> its conditioning frames at the end
    scores: dict[int, dict[int, float]]  # frame -> object id -> object-score logit


def run_official_session(
    checkpoint: Path, folder: Path, image_size: int, calls: dict[int, list[Call]], samurai: OfficialParams | None = None,
    threads: int | None = None, max_cond_frames_in_attn: int | None = None, after_start: tuple[Call, ...] = (),
) -> SessionRun:
    """The official predictor driven as a stream is: frames 0..K tracked, then frame K's calls, then K+1 on.

    The first frame's calls start the objects; each later frame's calls follow `propagate_in_video` up to
    that frame, and so do `after_start`, calls on the first frame once it is tracked (a correction on the
    objects' start frame). Clicks on one frame accumulate (`clear_old_points=False`); a box clears them, as
    the predictor requires. The last result a frame gets for an object (tracked, or corrected by a call) is
    the one recorded.
    """
    import sam2.utils.misc as misc

    predictor = build_predictor(checkpoint, image_size, samurai)
    if max_cond_frames_in_attn is not None:  # the official cap (its default -1: no cap)
        predictor.max_cond_frames_in_attn = max_cond_frames_in_attn
    masks: dict[int, dict[int, np.ndarray]] = {}
    logits: dict[int, dict[int, np.ndarray]] = {}
    scores: dict[int, dict[int, float]] = {}
    original = misc.get_connected_components
    misc.get_connected_components = cpu_connected_components
    try:
        with torch.inference_mode(), torch_threads(threads or torch.get_num_threads()):
            state = predictor.init_state(str(folder))
            last = state["num_frames"] - 1
            prompt_frames = sorted(calls)
            for n, frame in enumerate(prompt_frames):
                for call in calls[frame]:
                    _official_call(predictor, state, frame, call, masks, logits, scores)
                if n == 0 and after_start:
                    _propagate(predictor, state, frame, frame, masks, logits, scores)
                    for call in after_start:
                        _official_call(predictor, state, frame, call, masks, logits, scores)
                end = prompt_frames[n + 1] if n + 1 < len(prompt_frames) else last
                start = frame if n == 0 and not after_start else frame + 1
                if end >= start:
                    _propagate(predictor, state, start, end, masks, logits, scores)
            cond = {obj_id: sorted(state["output_dict_per_obj"][obj_idx]["cond_frame_outputs"])
                    for obj_idx, obj_id in enumerate(state["obj_ids"])}
    finally:
        misc.get_connected_components = original
    return SessionRun(predictor, masks, logits, cond, scores)


def _propagate(predictor, state, start: int, end: int, masks, logits, scores) -> None:
    """`propagate_in_video` over frames start..end, each object's result recorded."""
    for i, obj_ids, video_masks in predictor.propagate_in_video(
        state, start_frame_idx=start, max_frame_num_to_track=end - start
    ):
        for obj_idx, obj_id in enumerate(obj_ids):
            outputs = state["output_dict_per_obj"][obj_idx]
            out = outputs["cond_frame_outputs"].get(i) or outputs["non_cond_frame_outputs"][i]
            masks.setdefault(i, {})[obj_id] = (video_masks[obj_idx, 0] > 0).numpy()
            logits.setdefault(i, {})[obj_id] = out["pred_masks"][0, 0].numpy().copy()
            scores.setdefault(i, {})[obj_id] = float(out["object_score_logits"][0, 0])


def _official_call(predictor, state, frame: int, call: Call, masks, logits, scores) -> None:
    if call.remove:
        predictor.remove_object(state, call.obj_id, strict=True)
        return
    if call.mask is not None:
        _, obj_ids, video_masks = predictor.add_new_mask(state, frame, call.obj_id, call.mask)
        _record(state, frame, call.obj_id, obj_ids, video_masks, masks, logits, scores)
        return
    box = None if call.box_xyxy is None else list(call.box_xyxy)
    points = [list(p) for p in call.points] or None
    labels = list(call.labels) or None
    _, obj_ids, video_masks = predictor.add_new_points_or_box(
        state, frame, call.obj_id, points=points, labels=labels, box=box, clear_old_points=box is not None
    )
    _record(state, frame, call.obj_id, obj_ids, video_masks, masks, logits, scores)


def _record(state, frame: int, obj_id: int, obj_ids, video_masks, masks, logits, scores) -> None:
    obj_idx = obj_ids.index(obj_id)
    temp = state["temp_output_dict_per_obj"][obj_idx]
    out = temp["cond_frame_outputs"].get(frame) or temp["non_cond_frame_outputs"][frame]
    masks.setdefault(frame, {})[obj_id] = (video_masks[obj_idx, 0] > 0).numpy()
    logits.setdefault(frame, {})[obj_id] = out["pred_masks"][0, 0].numpy().copy()
    scores.setdefault(frame, {})[obj_id] = float(out["object_score_logits"][0, 0])
