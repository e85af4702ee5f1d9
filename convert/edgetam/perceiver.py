"""EdgeTAM's spatial perceiver: compresses one memory frame (h×w tokens of 64 channels) to a fixed set of latents.

Two kinds of latents read the frame through the same layers:
- global latents attend to every token of the frame, with the memory's sine
  position encoding added to keys and values; their position encoding is zero;
- grid latents, one per cell of a g×g grid (g = sqrt of their number), each
  attending only to the tokens of its own cell; their position encoding is
  the sine encoding of the g×g grid, which is what memory attention's rotary
  keys are laid out on.
The output is the global latents followed by the grid latents, and the matching
position encoding (a constant for given sizes: `position_encoding()`).
Parameter names are those of the official checkpoint under `spatial_perceiver.`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from sam2.modeling.position_encoding import PositionEmbeddingSine
from torch import nn


@dataclass(frozen=True)
class PerceiverShape:
    """Width, depth and latent counts of the perceiver (configs/edgetam.yaml)."""

    dim: int
    depth: int
    dim_head: int
    heads: int
    ff_mult: int
    num_latents: int
    num_latents_2d: int


class GridError(ValueError):
    """The memory feature map cannot be split into the perceiver's grid of cells."""


def grid_side(num_latents_2d: int) -> int:
    side = math.isqrt(num_latents_2d)
    if side * side != num_latents_2d:
        raise GridError(f"{num_latents_2d} grid latents do not form a square grid")
    return side


def check_grid(feature_side: int, num_latents_2d: int) -> None:
    """Each grid cell must cover a whole, non-empty square of memory tokens."""
    side = grid_side(num_latents_2d)
    if feature_side < side or feature_side % side:
        raise GridError(
            f"a {feature_side}x{feature_side} memory feature map cannot be split into the perceiver's "
            f"{side}x{side} grid (the side must be a multiple of {side})"
        )


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    """LayerNorm, bias-free expansion, GELU, bias-free projection (indices 0..3 as in the checkpoint)."""
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(),
                         nn.Linear(dim * mult, dim, bias=False))


class _Attention(nn.Module):
    """Bias-free query, key-value and output projections (`to_q`, `to_kv`, `to_out`) around dot-product attention."""

    def __init__(self, shape: PerceiverShape):
        super().__init__()
        inner = shape.dim_head * shape.heads
        self.heads = shape.heads
        self.head_dim = shape.dim_head
        self.to_q = nn.Linear(shape.dim, inner, bias=False)
        self.to_kv = nn.Linear(shape.dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, shape.dim, bias=False)

    def attend(self, queries: torch.Tensor, tokens: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        """(B, Nq, C) queries over (B, N, C) tokens; `pos` is added to keys and values after projection."""
        k, v = self.to_kv(tokens).chunk(2, dim=-1)
        if pos is not None:
            k, v = k + pos, v + pos
        q = self.to_q(queries)
        b, nq, c = q.shape
        q = q.reshape(b, nq, self.heads, self.head_dim).transpose(1, 2)
        k = k.reshape(b, -1, self.heads, self.head_dim).transpose(1, 2)
        v = v.reshape(b, -1, self.heads, self.head_dim).transpose(1, 2)
        weights = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim), dim=-1)
        return self.to_out(torch.matmul(weights, v).transpose(1, 2).reshape(b, nq, c))


class CrossAttention(_Attention):
    """Latents (normalised) query the frame tokens (normalised); a position encoding joins keys and values."""

    def __init__(self, shape: PerceiverShape):
        super().__init__(shape)
        self.norm_x = nn.LayerNorm(shape.dim)
        self.norm_latents = nn.LayerNorm(shape.dim)

    def forward(self, latents: torch.Tensor, x: torch.Tensor, pos: torch.Tensor | None) -> torch.Tensor:
        return self.attend(self.norm_latents(latents), self.norm_x(x), pos)


class SelfAttention(_Attention):
    """Pre-norm self-attention among the latents."""

    def __init__(self, shape: PerceiverShape):
        super().__init__(shape)
        self.norm = nn.LayerNorm(shape.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return self.attend(x, x)


class PerceiverLayer(nn.Module):
    """Cross-attention to the frame, MLP, self-attention, MLP; each residual."""

    def __init__(self, shape: PerceiverShape):
        super().__init__()
        self.attn = CrossAttention(shape)
        self.ff = feed_forward(shape.dim, shape.ff_mult)
        self.self_attn = SelfAttention(shape)
        self.self_ff = feed_forward(shape.dim, shape.ff_mult)

    def forward(self, latents: torch.Tensor, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        latents = latents + self.attn(latents, x, pos)
        latents = latents + self.ff(latents)
        latents = latents + self.self_attn(latents)
        return latents + self.self_ff(latents)


class SpatialPerceiver(nn.Module):
    """(B, C, h, w) memory + its (B, C, h, w) position encoding -> (B, L, C) latents + (B, L, C) position encoding."""

    def __init__(self, shape: PerceiverShape):
        super().__init__()
        self.shape = shape
        self.grid = grid_side(shape.num_latents_2d)
        self.latents = nn.Parameter(torch.zeros(shape.num_latents, shape.dim))
        self.latents_2d = nn.Parameter(torch.zeros(shape.num_latents_2d, shape.dim))
        self.layers = nn.ModuleList(PerceiverLayer(shape) for _ in range(shape.depth))
        self.norm = nn.LayerNorm(shape.dim)
        self.grid_encoding = PositionEmbeddingSine(num_pos_feats=shape.dim, normalize=True)

    @property
    def num_tokens(self) -> int:
        """Tokens per memory frame after the perceiver."""
        return self.shape.num_latents + self.shape.num_latents_2d

    def position_encoding(self, batch: int = 1) -> torch.Tensor:
        """(B, L, C): zeros for the global latents, then the grid's sine encoding in row-major order."""
        grid = torch.zeros(batch, self.shape.dim, self.grid, self.grid)
        grid_pos = self.grid_encoding(grid).flatten(2).transpose(1, 2)
        return torch.cat((torch.zeros(batch, self.shape.num_latents, self.shape.dim), grid_pos), dim=1)

    def _global(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2).transpose(1, 2)
        pos_tokens = pos.flatten(2).transpose(1, 2)
        latents = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, tokens, pos_tokens)
        return self.norm(latents)

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        cell = h // self.grid
        # (B, C, g, cell, g, cell) -> one row of cell² tokens per grid cell, cells in row-major order.
        cells = x.reshape(b, c, self.grid, cell, self.grid, cell).permute(0, 2, 4, 3, 5, 1)
        cells = cells.reshape(b * self.grid * self.grid, cell * cell, c)
        latents = self.latents_2d.reshape(-1, 1, c).repeat(b, 1, 1)
        for layer in self.layers:
            latents = layer(latents, cells)
        return self.norm(latents.reshape(b, self.grid * self.grid, c))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x's side must fit the grid (`check_grid`; the model builder checks the image size)."""
        latents = torch.cat((self._global(x, pos), self._grid(x)), dim=1)
        return latents, self.position_encoding(x.shape[0]).to(x.dtype)
