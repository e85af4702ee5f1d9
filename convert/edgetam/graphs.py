"""EdgeTAM's four exportable graphs and its frame-independent constants.

The mask decoder is SAM 2's and is exported by the SAM 2.1 wrapper; the image
encoder needs no trunk patching (RepViT has no position embedding); the memory
encoder graph ends with the spatial perceiver, so a memory frame leaves it as
tokens (1, T, mem_dim); memory attention is `EdgeMemoryAttention` itself.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from convert import submodels


class ImageEncoder(nn.Module):
    """RepViT-M1 trunk + FPN neck + the decoder's conv_s0/conv_s1 projections."""

    input_names = ["image"]
    output_names = ["high_res_feat0", "high_res_feat1", "vision_feat"]

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor):
        """image: (1, 3, S, S) float32, RGB, normalised with the SAM mean/std."""
        fpn = self.model.forward_image(image)["backbone_fpn"]
        return fpn[0], fpn[1], fpn[2]


class MemoryEncoder(nn.Module):
    """SAM 2's memory encoder (mask upsampling, no-object embedding if the model has one), then the perceiver."""

    input_names = submodels.MemoryEncoder.input_names
    output_names = ["maskmem_feat"]

    def __init__(self, model: nn.Module):
        super().__init__()
        self.encoder = submodels.MemoryEncoder(model)
        self.perceiver = model.spatial_perceiver
        side = model.image_size // model.backbone_stride
        with torch.no_grad():
            pos = model.memory_encoder.position_encoding(torch.zeros(1, model.mem_dim, side, side))
        self.register_buffer("feature_pos", pos, persistent=False)

    def forward(self, vision_feat, mask_logits, object_score_logits, binarize):
        """Inputs as SAM 2.1's memory-encoder graph; returns (1, T, mem_dim) perceiver latents."""
        feat = self.encoder(vision_feat, mask_logits, object_score_logits, binarize)
        latents, _ = self.perceiver(feat, self.feature_pos)
        return latents


def constants(model: nn.Module) -> dict[str, np.ndarray]:
    """SAM 2.1's constants, with `memory_pos` the perceiver's (1, T, mem_dim) encoding instead of a feature map's."""
    consts = submodels.constants(model)
    with torch.no_grad():
        consts["memory_pos"] = model.spatial_perceiver.position_encoding().numpy().astype(np.float32)
    return consts
