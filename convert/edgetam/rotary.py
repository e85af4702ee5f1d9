"""2-D rotary position encoding with real cos/sin tensors, for a square grid of tokens.

Pairs of channels (even = real, odd = imaginary part) are rotated by angles
that grow with a token's column (first half of the pairs) and row (second
half), as in SAM 2's axial RoPE; ONNX and ATC have no complex type, so the
rotation is written out. `rotate_tail` rotates only the last grid² tokens of
each frame: EdgeTAM's memory frames start with global latents that carry no
position.
"""

from __future__ import annotations

import torch
from sam2.modeling.position_encoding import compute_axial_cis
from torch import nn


class GridRotary(nn.Module):
    """Rotary encoding of a side×side grid for tokens of `head_dim` channels."""

    def __init__(self, head_dim: int, side: int, theta: float):
        super().__init__()
        cis = compute_axial_cis(dim=head_dim, end_x=side, end_y=side, theta=theta)
        self.register_buffer("cos", cis.real.float().contiguous(), persistent=False)
        self.register_buffer("sin", cis.imag.float().contiguous(), persistent=False)

    @property
    def tokens(self) -> int:
        return self.cos.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, F·grid², d), F whole grids in a row; every token is rotated."""
        b, h, n, d = x.shape
        pairs = x.reshape(b, h, -1, self.tokens, d // 2, 2)
        real, imag = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((real * self.cos - imag * self.sin, real * self.sin + imag * self.cos), dim=-1)
        return rotated.reshape(b, h, n, d)

    def rotate_tail(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x: (B, H, frames·T, d) with T ≥ grid²; the first T − grid² tokens of each frame stay as they are."""
        b, h, n, d = x.shape
        per_frame = x.reshape(b, h, frames, n // frames, d)
        plain = per_frame.shape[3] - self.tokens
        head, tail = per_frame[:, :, :, :plain], per_frame[:, :, :, plain:]
        tail = self(tail.reshape(b, h, frames * self.tokens, d)).reshape(b, h, frames, self.tokens, d)
        return torch.cat((head, tail), dim=3).reshape(b, h, n, d)
