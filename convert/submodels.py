"""The four exportable sub-networks of SAM 2.1, wrapped around the official modules.

Each wrapper reuses the official sub-modules and their weights; only what ONNX
or ATC cannot express is rewritten: rotary encoding with real cos/sin tensors
instead of complex numbers, and prompt/pointer plumbing that the official code
does with Python lists. Frame-independent tensors (position encodings) are not
outputs: `constants()` returns them for export as `.npy` files.

Tensor layouts are NCHW with batch 1 throughout, as the tracker feeds them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from sam2.modeling.position_encoding import compute_axial_cis
from sam2.modeling.sam2_base import NO_OBJ_SCORE
from sam2.modeling.sam2_utils import get_1d_sine_pe
from torch import nn


class ImageEncoder(nn.Module):
    """Hiera trunk + FPN neck + the decoder's conv_s0/conv_s1 projections.

    The trunk's positional embedding depends only on the image size; it is
    computed here once by the official code and enters the graph as a
    constant, instead of as a bicubic resize of a weight that every runtime
    would have to fold (OpenVINO spends ~30 s folding it at load).
    """

    input_names = ["image"]
    output_names = ["high_res_feat0", "high_res_feat1", "vision_feat"]

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        trunk = model.image_encoder.trunk
        with torch.no_grad():
            patches = trunk.patch_embed(torch.zeros(1, 3, model.image_size, model.image_size))
            self.register_buffer("pos_embed", trunk._get_pos_embed(patches.shape[1:3]), persistent=False)

    def forward(self, image: torch.Tensor):
        """image: (1, 3, S, S) float32, RGB, normalised with the SAM mean/std."""
        trunk = self.model.image_encoder.trunk
        trunk._get_pos_embed = lambda hw: self.pos_embed  # an instance attribute, removed below
        try:
            fpn = self.model.forward_image(image)["backbone_fpn"]
        finally:
            del trunk._get_pos_embed
        return fpn[0], fpn[1], fpn[2]


# Additive key bias for absent memory frames and pointers. Large enough that
# exp() of a masked score is exactly 0 in float32 and float16 (below -104 after
# the softmax's max subtraction), small enough that score + bias stays finite in
# float16 (|x| <= 65504) so fp16 arithmetic on the NPU cannot turn it into -inf
# or NaN.
KEY_MASK_BIAS = -3.0e4


class Rotary(nn.Module):
    """2-D RoPE with real cos/sin tensors; its own module so that its nodes share one name scope.

    The precision study keeps this arithmetic in float32 by that scope (see convert/precision.py).
    """

    def __init__(self, cos: torch.Tensor, sin: torch.Tensor):
        super().__init__()
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Rotate consecutive (real, imaginary) pairs of the last axis; x: (B, H, F*hw, d), F frames of the grid."""
        b, h, n, d = x.shape
        pairs = x.reshape(b, h, -1, self.cos.shape[0], d // 2, 2)
        real, imag = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((real * self.cos - imag * self.sin, real * self.sin + imag * self.cos), dim=-1)
        return rotated.reshape(b, h, n, d)


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    b, n, c = x.shape
    return x.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)


def _value_output_projection(attn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """out_proj ∘ v_proj folded per head: (H·C_in, C) weight and (C,) bias.

    With A the attention weights of head h (rows sum to one) and X the value
    tokens, out_proj(concat_h A_h (X W_vhᵀ + b_vh)) = Σ_h (A_h X)(W_oh W_vh)ᵀ + W_o b_v + b_o.
    """
    heads = attn.num_heads
    head_dim = attn.internal_dim // heads
    w_v = attn.v_proj.weight.detach()  # (internal, C_in)
    w_o = attn.out_proj.weight.detach()  # (C, internal)
    blocks = [
        (w_o[:, h * head_dim:(h + 1) * head_dim] @ w_v[h * head_dim:(h + 1) * head_dim]).T for h in range(heads)
    ]
    bias = w_o @ attn.v_proj.bias.detach() + attn.out_proj.bias.detach()
    return torch.cat(blocks, dim=0).contiguous(), bias.contiguous()


class _ValueOutput(nn.Module):
    """The folded value and output projections of one attention (see `_value_output_projection`)."""

    def __init__(self, attn: nn.Module):
        super().__init__()
        weight, bias = _value_output_projection(attn)
        self.register_buffer("weight", weight, persistent=False)
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, mixed: torch.Tensor) -> torch.Tensor:
        """mixed: (B, H, N, C_in) attention-weighted value tokens -> (B, N, C)."""
        b, h, n, c = mixed.shape
        return torch.matmul(mixed.transpose(1, 2).reshape(b, n, h * c), self.weight) + self.bias


class MemoryAttention(nn.Module):
    """Memory attention at one static shape, with real-valued 2-D RoPE and a lighter value path.

    Static shape: the graph always takes `num_maskmem` memory frames and
    `max_obj_ptrs_in_encoder` pointers; `memory_valid` / `obj_ptr_valid` (1 or 0)
    say which are real. Absent ones get KEY_MASK_BIAS on their attention keys, so
    their softmax weight is exactly 0: memory tokens are only keys and values,
    never queries, and the result equals the official computation over the real
    ones alone. ATC then compiles the graph once, without gears.

    Value path: softmax rows sum to one, so A·(X W_vᵀ + b_v) = (A·X)·W_vᵀ + b_v.
    The cross-attention's value tokens X are the 64-channel memory tokens (the
    spatial memories and each 256-channel pointer split into 4 tokens of 64, as
    SAM 2 does), so attention weights multiply 64 channels instead of 256; the
    value and output projections then fold into one matrix per attention
    (`_ValueOutput`), which also saves a 256×256 projection in self-attention.
    Keys carry the rotary encoding, so no such reordering applies to them.

    The official code concatenates memories and pointer tokens on the host and
    rotates keys with complex numbers; here the graph receives the memories
    frame by frame and the raw pointers with their temporal offsets, and does the
    concatenation, the pointer split and the pointer temporal encoding itself.
    """

    input_names = [
        "vision_feat", "vision_pos", "memory", "memory_pos", "memory_valid", "obj_ptrs", "obj_ptr_offsets", "obj_ptr_valid"
    ]
    output_names = ["pix_feat_with_mem"]

    def __init__(self, model: nn.Module, feat_size: int):
        super().__init__()
        self.attention = model.memory_attention
        self.tpos_proj = model.obj_ptr_tpos_proj
        self.hidden_dim = model.hidden_dim
        self.mem_dim = model.mem_dim
        layer = self.attention.layers[0]
        head_dim = layer.self_attn.internal_dim // layer.self_attn.num_heads
        theta = _rope_theta(layer.self_attn)
        cis = compute_axial_cis(dim=head_dim, end_x=feat_size, end_y=feat_size, theta=theta)
        self.rotary = Rotary(cis.real.float().contiguous(), cis.imag.float().contiguous())
        self.self_value_out = nn.ModuleList(_ValueOutput(l.self_attn) for l in self.attention.layers)
        self.cross_value_out = nn.ModuleList(_ValueOutput(l.cross_attn_image) for l in self.attention.layers)

    def _attention(self, attn, value_out, q, k, tokens, k_unrotated=None, key_bias=None):
        """RoPE attention whose values are `tokens` (B, K, C_in) before v_proj; `k_unrotated` keys join unrotated."""
        q = self.rotary(_heads(attn.q_proj(q), attn.num_heads))
        k = self.rotary(_heads(attn.k_proj(k), attn.num_heads))
        if k_unrotated is not None:
            k = torch.cat((k, _heads(attn.k_proj(k_unrotated), attn.num_heads)), dim=2)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(attn.internal_dim // attn.num_heads)
        if key_bias is not None:
            scores = scores + key_bias
        weights = torch.softmax(scores, dim=-1)
        return value_out(torch.matmul(weights, tokens.unsqueeze(1)))

    def forward(self, vision_feat, vision_pos, memory, memory_pos, memory_valid, obj_ptrs, obj_ptr_offsets, obj_ptr_valid):
        """
        vision_feat, vision_pos: (1, C, h, w); memory, memory_pos: (num_maskmem, mem_dim, h, w);
        memory_valid: (num_maskmem,) float32; obj_ptrs: (max_ptrs, C); obj_ptr_offsets: (max_ptrs,)
        float32, frame distance / (max_obj_ptrs - 1); obj_ptr_valid: (max_ptrs,) float32.
        Absent frames and pointers may hold anything finite. Returns (1, C, h, w).
        """
        _, c, h, w = vision_feat.shape
        tgt = vision_feat.flatten(2).transpose(1, 2)  # (1, hw, C)
        query_pos = vision_pos.flatten(2).transpose(1, 2)
        spatial = memory.flatten(2).transpose(1, 2).reshape(1, -1, self.mem_dim)
        spatial_pos = memory_pos.flatten(2).transpose(1, 2).reshape(1, -1, self.mem_dim)

        split = self.hidden_dim // self.mem_dim
        ptr_pos = self.tpos_proj(get_1d_sine_pe(obj_ptr_offsets, dim=self.hidden_dim))
        ptr_tokens = obj_ptrs.reshape(-1, split, self.mem_dim).reshape(1, -1, self.mem_dim)
        ptr_pos = ptr_pos.unsqueeze(1).repeat(1, split, 1).reshape(1, -1, self.mem_dim)
        mem = torch.cat((spatial, ptr_tokens), dim=1)
        frame_bias = ((1.0 - memory_valid) * KEY_MASK_BIAS).unsqueeze(1).expand(memory.shape[0], h * w)
        ptr_bias = ((1.0 - obj_ptr_valid) * KEY_MASK_BIAS).unsqueeze(1).expand(obj_ptrs.shape[0], split)
        key_bias = torch.cat((frame_bias.reshape(-1), ptr_bias.reshape(-1))).reshape(1, 1, 1, -1)

        output = tgt + 0.1 * query_pos if self.attention.pos_enc_at_input else tgt
        for layer, self_out, cross_out in zip(self.attention.layers, self.self_value_out, self.cross_value_out):
            x = layer.norm1(output)
            q = x + query_pos if layer.pos_enc_at_attn else x
            output = output + self._attention(layer.self_attn, self_out, q, q, x)
            x = layer.norm2(output)
            q = x + query_pos if layer.pos_enc_at_cross_attn_queries else x
            k_spatial, k_ptr = spatial, ptr_tokens
            if layer.pos_enc_at_cross_attn_keys:
                k_spatial, k_ptr = spatial + spatial_pos, ptr_tokens + ptr_pos
            output = output + self._attention(layer.cross_attn_image, cross_out, q, k_spatial, mem, k_ptr, key_bias)
            x = layer.norm3(output)
            output = output + layer.linear2(layer.activation(layer.linear1(x)))
        output = self.attention.norm(output)
        return output.transpose(1, 2).reshape(1, c, h, w)


def _rope_theta(attn: nn.Module) -> float:
    # RoPEAttention keeps theta only inside its functools.partial.
    return float(attn.compute_cis.keywords["theta"])


class MemoryEncoder(nn.Module):
    """Mask → memory feature, including the mask upsampling and the no-object embedding."""

    input_names = ["vision_feat", "mask_logits", "object_score_logits", "binarize"]
    output_names = ["maskmem_feat"]

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, vision_feat, mask_logits, object_score_logits, binarize):
        """
        vision_feat: (1, C, h, w) image-encoder feature (not memory-conditioned);
        mask_logits: (1, 1, 4h, 4w) chosen low-res mask logits; object_score_logits: (1, 1);
        binarize: (1,) float32, 1 for a prompted frame (mask > 0), 0 for sigmoid.
        Returns (1, mem_dim, h, w).
        """
        m = self.model
        high_res = F.interpolate(mask_logits, size=(m.image_size, m.image_size), mode="bilinear", align_corners=False)
        mask = torch.where(binarize > 0.5, (high_res > 0).float(), torch.sigmoid(high_res))
        mask = mask * m.sigmoid_scale_for_mem_enc + m.sigmoid_bias_for_mem_enc
        feat = m.memory_encoder(vision_feat, mask, skip_mask_sigmoid=True)["vision_features"]
        if m.no_obj_embed_spatial is not None:
            absent = 1.0 - (object_score_logits > 0).float()
            feat = feat + absent[..., None, None] * m.no_obj_embed_spatial[..., None, None]
        return feat


class MaskDecoder(nn.Module):
    """Prompt encoder + mask decoder + object-pointer projection, for all four mask tokens.

    Token 0 is the single-mask output, tokens 1-3 the multimask outputs; the
    host chooses among them (stability fallback, best IoU or SAMURAI's Kalman
    score), so every candidate's pointer is computed here.

    The dense prompt is a mask prompt where `mask_valid` is 1 (a correction
    feeds the object's previous low-res logits, as the official predictor does)
    and the learned no-mask embedding where it is 0, so one static graph serves
    tracking and corrections; the prompt encoder's small downscaling network is
    all the flag costs a tracked frame.
    """

    input_names = [
        "pix_feat", "high_res_feat0", "high_res_feat1", "point_coords", "point_labels", "mask_input", "mask_valid",
        "min_obj_score",
    ]
    output_names = ["mask_logits", "iou_pred", "obj_ptrs", "object_score_logits"]

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.register_buffer("image_pe", model.sam_prompt_encoder.get_dense_pe().detach().clone(), persistent=False)

    def forward(self, pix_feat, high_res_feat0, high_res_feat1, point_coords, point_labels, mask_input, mask_valid,
                min_obj_score):
        """
        pix_feat: (1, C, h, w); high_res_feat0/1: (1, C/8, 4h, 4w) / (1, C/4, 2h, 2w);
        point_coords: (1, N, 2) float32 in image_size pixels; point_labels: (1, N) int32
        (1 positive, 0 negative, 2/3 box corners, -1 padding); mask_input: (1, 1, 4h, 4w) float32
        mask-prompt logits, read only where mask_valid (1,) float32 is 1; min_obj_score: (1,) float32, the object counts as
        present above this score logit (SAM 2 uses 0, SAMURAI's configs -1), an input so that
        one graph serves both modes. Returns mask_logits (1, 4, 4h, 4w) with absent objects
        set to NO_OBJ_SCORE, iou_pred (1, 4), obj_ptrs (1, 4, C), object_score_logits (1, 1).
        """
        m = self.model
        encoder = m.sam_prompt_encoder
        sparse, no_mask = encoder(points=(point_coords, point_labels), boxes=None, masks=None)
        dense = torch.where(mask_valid.reshape(1, 1, 1, 1) > 0.5, encoder.mask_downscaling(mask_input), no_mask)
        masks, iou_pred, tokens, object_score_logits = m.sam_mask_decoder.predict_masks(
            image_embeddings=pix_feat,
            image_pe=self.image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            repeat_image=False,
            high_res_features=[high_res_feat0, high_res_feat1],
        )
        present = object_score_logits > min_obj_score
        masks = torch.where(present[:, :, None, None], masks, torch.full_like(masks, NO_OBJ_SCORE))
        obj_ptrs = m.obj_ptr_proj(tokens)
        weight = present.float()[:, :, None]
        if m.fixed_no_obj_ptr:
            obj_ptrs = weight * obj_ptrs
        obj_ptrs = obj_ptrs + (1.0 - weight) * m.no_obj_ptr
        return masks, iou_pred, obj_ptrs, object_score_logits


def constants(model: nn.Module) -> dict[str, np.ndarray]:
    """Frame-independent tensors the runtime needs, computed by the official modules."""
    side = model.image_size // model.backbone_stride
    with torch.no_grad():
        # Both sine encodings depend only on the feature map's shape.
        vision_pos = model.image_encoder.neck.position_encoding(torch.zeros(1, model.hidden_dim, side, side))
        memory_pos = model.memory_encoder.position_encoding(torch.zeros(1, model.mem_dim, side, side))
        return {
            "vision_pos": vision_pos.numpy().astype(np.float32),
            "memory_pos": memory_pos.numpy().astype(np.float32),
            "maskmem_tpos_enc": model.maskmem_tpos_enc.detach().reshape(model.num_maskmem, model.mem_dim).numpy().copy(),
            "no_mem_embed": model.no_mem_embed.detach().reshape(model.hidden_dim).numpy().copy(),
            # A mask prompt (`add_new_mask`): the learned 4x4 stride-4 downsampling of the mask before the
            # decoder makes its pointer, and the pointer of an empty mask.
            "mask_downsample_weight": model.mask_downsample.weight.detach().reshape(4, 4).numpy().copy(),
            "mask_downsample_bias": model.mask_downsample.bias.detach().reshape(1).numpy().copy(),
            "no_obj_ptr": model.no_obj_ptr.detach().reshape(model.hidden_dim).numpy().copy(),
        }
