"""The official SAM 2 computations that each exported graph must reproduce.

These call the unmodified `sam2` modules the way `SAM2Base` does inside a video
step, from the same flat tensors the exported graphs take, so export checks and
tests compare an ONNX graph with the official code rather than with its own
wrapper.
"""

from __future__ import annotations

import torch
from sam2.modeling.sam2_utils import get_1d_sine_pe
from torch import nn


def memory_attention(model: nn.Module, vision_feat, vision_pos, memory, memory_pos, obj_ptrs, obj_ptr_offsets):
    """Official complex-RoPE memory attention (as in `_prepare_memory_conditioned_features`)."""
    _, c, h, w = vision_feat.shape
    mem_dim = model.mem_dim
    curr = vision_feat.flatten(2).permute(2, 0, 1)
    curr_pos = vision_pos.flatten(2).permute(2, 0, 1)
    spatial = [frame.flatten(1).permute(1, 0).unsqueeze(1) for frame in memory]
    spatial_pos = [frame.flatten(1).permute(1, 0).unsqueeze(1) for frame in memory_pos]
    obj_pos = model.obj_ptr_tpos_proj(get_1d_sine_pe(obj_ptr_offsets, dim=c)).unsqueeze(1)
    ptrs = obj_ptrs.reshape(-1, 1, c // mem_dim, mem_dim).permute(0, 2, 1, 3).flatten(0, 1)
    obj_pos = obj_pos.repeat_interleave(c // mem_dim, dim=0)
    out = model.memory_attention(
        curr=[curr],
        curr_pos=[curr_pos],
        memory=torch.cat([*spatial, ptrs], dim=0),
        memory_pos=torch.cat([*spatial_pos, obj_pos], dim=0),
        num_obj_ptr_tokens=ptrs.shape[0],
    )
    return out.permute(1, 2, 0).reshape(1, c, h, w)


def memory_encoder(model: nn.Module, vision_feat, mask_logits, object_score_logits, binarize):
    """Official `_encode_new_memory` on the bilinearly upsampled low-res mask."""
    _, c, h, w = vision_feat.shape
    high_res = torch.nn.functional.interpolate(
        mask_logits, size=(model.image_size, model.image_size), mode="bilinear", align_corners=False
    )
    features, _ = model._encode_new_memory(
        current_vision_feats=[vision_feat.flatten(2).permute(2, 0, 1)],
        feat_sizes=[(h, w)],
        pred_masks_high_res=high_res,
        object_score_logits=object_score_logits,
        is_mask_from_pts=bool(binarize.item() > 0.5),
    )
    return features


def sam_heads(model: nn.Module, pix_feat, high_res_feat0, high_res_feat1, point_coords, point_labels, mask_input,
              mask_valid, multimask: bool):
    """Official `_forward_sam_heads`: (low-res masks, ious, best low-res mask, obj_ptr, object score)."""
    point_inputs = None
    if int((point_labels != -1).sum()) > 0:
        point_inputs = {"point_coords": point_coords, "point_labels": point_labels}
    out = model._forward_sam_heads(
        backbone_features=pix_feat,
        point_inputs=point_inputs,
        mask_inputs=mask_input if float(mask_valid.item()) > 0.5 else None,
        high_res_features=[high_res_feat0, high_res_feat1],
        multimask_output=multimask,
    )
    low_res_multimasks, _, ious, low_res_masks, _, obj_ptr, object_score_logits = out
    return low_res_multimasks, ious, low_res_masks, obj_ptr, object_score_logits


def mask_decoder(model: nn.Module, pix_feat, high_res_feat0, high_res_feat1, point_coords, point_labels, mask_input,
                 mask_valid, min_obj_score):
    """The prompt encoder (with the mask prompt passed as `masks` where valid) and all four mask tokens.

    As `_forward_sam_heads` calls them, before it picks a token: masks of an absent object set
    to NO_OBJ_SCORE, every token's object pointer gated by presence.
    """
    from sam2.modeling.sam2_base import NO_OBJ_SCORE

    masks = mask_input if float(mask_valid.item()) > 0.5 else None
    sparse, dense = model.sam_prompt_encoder(points=(point_coords, point_labels), boxes=None, masks=masks)
    low_res, ious, tokens, scores = model.sam_mask_decoder.predict_masks(
        image_embeddings=pix_feat,
        image_pe=model.sam_prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        repeat_image=False,
        high_res_features=[high_res_feat0, high_res_feat1],
    )
    present = (scores > min_obj_score).float()
    low_res = torch.where(present[:, :, None, None] > 0, low_res, torch.full_like(low_res, NO_OBJ_SCORE))
    pointers = model.obj_ptr_proj(tokens)
    if model.fixed_no_obj_ptr:
        pointers = present[:, :, None] * pointers
    pointers = pointers + (1.0 - present[:, :, None]) * model.no_obj_ptr
    return low_res, ious, pointers, scores
