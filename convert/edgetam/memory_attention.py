"""EdgeTAM's memory attention: rotary self-attention on the frame, then v2 cross-attention to perceiver memories.

The v2 cross-attention (the official `RoPEAttentionv2`) rotates queries on the
frame's grid (image_size/16 per side) and keys on the perceiver's grid (16×16):
in each memory frame only the grid latents, which come last, are rotated, the
global latents first in the frame are not, and neither are the object-pointer
tokens at the end. The official call passes the number of memory frames as
`num_spatial_mem` (`rope_k_repeat`) so the key grid repeats once per frame;
here the frame count is the static `num_maskmem` and absent frames and pointers
are masked out of the softmax with `memory_valid` / `obj_ptr_valid`, so the
module is the exported graph itself (one static shape, no gears). EdgeTAM adds
no temporal encoding to pointers (`add_tpos_enc_to_obj_ptrs: false`): their
keys get no position. Parameter names are the checkpoint's under
`memory_attention.`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from convert.edgetam.rotary import GridRotary
from convert.submodels import KEY_MASK_BIAS


@dataclass(frozen=True)
class MemoryAttentionShape:
    """Widths, depth and where position encodings enter (configs/edgetam.yaml)."""

    d_model: int
    kv_dim: int
    num_layers: int
    dim_feedforward: int
    num_heads: int
    rope_theta: float
    pos_enc_at_input: bool
    pos_enc_at_attn: bool
    pos_enc_at_cross_attn_keys: bool
    pos_enc_at_cross_attn_queries: bool


class Attention(nn.Module):
    """Projections of one attention (`q_proj`, `k_proj`, `v_proj`, `out_proj`); keys and values may be narrower."""

    def __init__(self, dim: int, kv_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = 1.0 / math.sqrt(dim // heads)
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(kv_dim, dim)
        self.v_proj = nn.Linear(kv_dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_bias: torch.Tensor | None = None):
        """q, k, v: (B, H, N, d) after projection and rotation -> (B, Nq, C) after out_proj."""
        scores = torch.matmul(q, k.transpose(-2, -1)) * self.scale
        if key_bias is not None:
            scores = scores + key_bias
        mixed = torch.matmul(torch.softmax(scores, dim=-1), v)
        b, h, n, d = mixed.shape
        return self.out_proj(mixed.transpose(1, 2).reshape(b, n, h * d))


class MemoryAttentionLayer(nn.Module):
    """Pre-norm self-attention, cross-attention to memory, ReLU MLP; each residual."""

    def __init__(self, shape: MemoryAttentionShape):
        super().__init__()
        self.shape = shape
        self.self_attn = Attention(shape.d_model, shape.d_model, shape.num_heads)
        self.cross_attn_image = Attention(shape.d_model, shape.kv_dim, shape.num_heads)
        self.linear1 = nn.Linear(shape.d_model, shape.dim_feedforward)
        self.linear2 = nn.Linear(shape.dim_feedforward, shape.d_model)
        self.norm1 = nn.LayerNorm(shape.d_model)
        self.norm2 = nn.LayerNorm(shape.d_model)
        self.norm3 = nn.LayerNorm(shape.d_model)


class EdgeMemoryAttention(nn.Module):
    """Static-shape memory attention over `num_maskmem` perceiver memories and `max_ptrs` pointers."""

    input_names = ["vision_feat", "vision_pos", "memory", "memory_pos", "memory_valid", "obj_ptrs", "obj_ptr_valid"]
    output_names = ["pix_feat_with_mem"]

    def __init__(self, shape: MemoryAttentionShape, feat_side: int, key_grid_side: int):
        super().__init__()
        self.shape = shape
        self.layers = nn.ModuleList(MemoryAttentionLayer(shape) for _ in range(shape.num_layers))
        self.norm = nn.LayerNorm(shape.d_model)
        head_dim = shape.d_model // shape.num_heads
        self.query_rotary = GridRotary(head_dim, feat_side, shape.rope_theta)
        self.key_rotary = GridRotary(head_dim, key_grid_side, shape.rope_theta)

    def forward(self, vision_feat, vision_pos, memory, memory_pos, memory_valid, obj_ptrs, obj_ptr_valid):
        """
        vision_feat, vision_pos: (1, C, h, w); memory, memory_pos: (F, T, kv_dim) perceiver latents and their
        position (with the temporal encoding of the frame's slot added); memory_valid: (F,) float32 1/0;
        obj_ptrs: (P, C); obj_ptr_valid: (P,) float32 1/0. Absent entries may hold anything finite.
        Returns (1, C, h, w).
        """
        s = self.shape
        _, c, h, w = vision_feat.shape
        frames, tokens, _ = memory.shape
        split = c // s.kv_dim
        output = vision_feat.flatten(2).transpose(1, 2)
        query_pos = vision_pos.flatten(2).transpose(1, 2)
        if s.pos_enc_at_input:
            output = output + 0.1 * query_pos
        spatial = memory.reshape(1, frames * tokens, s.kv_dim)
        spatial_keys = spatial + memory_pos.reshape(1, frames * tokens, s.kv_dim) if s.pos_enc_at_cross_attn_keys \
            else spatial
        pointers = obj_ptrs.reshape(1, -1, s.kv_dim)  # each pointer split into `split` tokens, pointer-major
        values = torch.cat((spatial, pointers), dim=1)
        frame_bias = ((1.0 - memory_valid) * KEY_MASK_BIAS).unsqueeze(1).expand(frames, tokens)
        ptr_bias = ((1.0 - obj_ptr_valid) * KEY_MASK_BIAS).unsqueeze(1).expand(obj_ptrs.shape[0], split)
        key_bias = torch.cat((frame_bias.reshape(-1), ptr_bias.reshape(-1))).reshape(1, 1, 1, -1)
        for layer in self.layers:
            x = layer.norm1(output)
            q = x + query_pos if s.pos_enc_at_attn else x
            sa = layer.self_attn
            output = output + sa.attend(
                self.query_rotary(sa.split(sa.q_proj(q))), self.query_rotary(sa.split(sa.k_proj(q))),
                sa.split(sa.v_proj(x)),
            )
            x = layer.norm2(output)
            q = x + query_pos if s.pos_enc_at_cross_attn_queries else x
            ca = layer.cross_attn_image
            keys = torch.cat((
                self.key_rotary.rotate_tail(ca.split(ca.k_proj(spatial_keys)), frames),
                ca.split(ca.k_proj(pointers)),
            ), dim=2)
            output = output + ca.attend(
                self.query_rotary(ca.split(ca.q_proj(q))), keys, ca.split(ca.v_proj(values)), key_bias
            )
            x = layer.norm3(output)
            output = output + layer.linear2(torch.relu(layer.linear1(x)))
        return self.norm(output).transpose(1, 2).reshape(1, c, h, w)
