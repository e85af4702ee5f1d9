"""RepViT-M1, EdgeTAM's image-encoder trunk, with the parameter names of the official checkpoint.

The official code builds it through `timm` as a features-only network (the
stem, then four stages whose outputs at strides 4, 8, 16 and 32 go to the FPN
neck); the checkpoint stores it under `image_encoder.trunk.body.` with the
stages flattened to `stages_0` ... `stages_3`. The layers are written here so
that exporting EdgeTAM needs neither `timm` nor `torchvision` (docs/export.md).
Every layer runs in eval mode: batch norms use their running statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# Squeeze-excitation: channels reduced by 4, rounded to a multiple of 8 (nearest, at least 8).
_SE_REDUCTION = 4
_SE_DIVISOR = 8


@dataclass(frozen=True)
class RepViTShape:
    """Channels and block counts per stage, the hidden width of each MLP, the depth-wise kernel."""

    channels: tuple[int, ...]
    depths: tuple[int, ...]
    mlp_ratio: int
    kernel_size: int


class ConvNorm(nn.Sequential):
    """A bias-free convolution followed by a batch norm (`c`, `bn`)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1):
        super().__init__()
        self.add_module("c", nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_ch))


class TokenMixer(nn.Module):
    """Re-parameterisable depth-wise mixing: k×k branch + 1×1 branch + identity."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.conv = ConvNorm(channels, channels, kernel, groups=channels)
        self.conv1 = ConvNorm(channels, channels, 1, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.conv1(x) + x


def se_channels(channels: int) -> int:
    """The squeeze width: channels / 4 rounded to the nearest multiple of 8, never below 8."""
    return max(_SE_DIVISOR, int(channels / _SE_REDUCTION + _SE_DIVISOR / 2) // _SE_DIVISOR * _SE_DIVISOR)


class SqueezeExcite(nn.Module):
    """Channel gating from the global mean: 1×1 conv, ReLU, 1×1 conv, sigmoid."""

    def __init__(self, channels: int):
        super().__init__()
        hidden = se_channels(channels)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(gate)


class ChannelMlp(nn.Module):
    """1×1 conv-norm, GELU, 1×1 conv-norm."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.conv1 = ConvNorm(channels, hidden)
        self.act = nn.GELU()
        self.conv2 = ConvNorm(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class Block(nn.Module):
    """Token mixer, optional squeeze-excitation, then a residual channel MLP."""

    def __init__(self, channels: int, shape: RepViTShape, squeeze: bool):
        super().__init__()
        self.token_mixer = TokenMixer(channels, shape.kernel_size)
        self.se = SqueezeExcite(channels) if squeeze else nn.Identity()
        self.channel_mixer = ChannelMlp(channels, channels * shape.mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.se(self.token_mixer(x))
        return x + self.channel_mixer(x)


class Downsample(nn.Module):
    """A block, a stride-2 depth-wise conv, a 1×1 channel change, then a residual MLP."""

    def __init__(self, in_ch: int, out_ch: int, shape: RepViTShape):
        super().__init__()
        self.pre_block = Block(in_ch, shape, squeeze=False)
        self.spatial_downsample = ConvNorm(in_ch, in_ch, shape.kernel_size, stride=2, groups=in_ch)
        self.channel_downsample = ConvNorm(in_ch, out_ch)
        self.ffn = ChannelMlp(out_ch, out_ch * shape.mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.channel_downsample(self.spatial_downsample(self.pre_block(x)))
        return x + self.ffn(x)


class Stage(nn.Module):
    """An optional downsample, then blocks whose squeeze-excitation alternates on, off, on ..."""

    def __init__(self, in_ch: int, out_ch: int, depth: int, shape: RepViTShape, downsample: bool):
        super().__init__()
        self.downsample = Downsample(in_ch, out_ch, shape) if downsample else nn.Identity()
        self.blocks = nn.Sequential(*(Block(out_ch, shape, squeeze=i % 2 == 0) for i in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class Stem(nn.Module):
    """Two stride-2 3×3 conv-norms with a GELU between them (stride 4 in all)."""

    def __init__(self, out_ch: int):
        super().__init__()
        self.conv1 = ConvNorm(3, out_ch // 2, 3, stride=2)
        self.act1 = nn.GELU()
        self.conv2 = ConvNorm(out_ch // 2, out_ch, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act1(self.conv1(x)))


class RepViTBody(nn.Module):
    """Stem and stages named as the checkpoint names them; returns every stage's output, finest first."""

    def __init__(self, shape: RepViTShape):
        super().__init__()
        self.stem = Stem(shape.channels[0])
        previous = shape.channels[0]
        self.stage_names: list[str] = []
        for index, (channels, depth) in enumerate(zip(shape.channels, shape.depths)):
            name = f"stages_{index}"
            self.add_module(name, Stage(previous, channels, depth, shape, downsample=index > 0))
            self.stage_names.append(name)
            previous = channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for name in self.stage_names:
            x = getattr(self, name)(x)
            features.append(x)
        return features


class RepViTTrunk(nn.Module):
    """The trunk SAM 2's `ImageEncoder` expects: `channel_list` coarsest first, features finest first."""

    def __init__(self, shape: RepViTShape):
        super().__init__()
        self.body = RepViTBody(shape)
        self.channel_list = list(shape.channels[::-1])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.body(x)
