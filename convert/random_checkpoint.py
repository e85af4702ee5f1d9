"""Seeded random-weight checkpoints in the official formats (`scripts/make_random_checkpoint.py` writes one).

Real SAM 2.1 and EdgeTAM weights cannot be fetched on CI or development
machines, so tests build the official architecture (SAM 2.1 from the configs
inside the `sam2` package, EdgeTAM from configs/models/edgetam.yaml), perturb
every parameter (cloned layers such as the memory-attention layers start
identical and an exporter would deduplicate them) and save `{"model": sd}`
exactly like `sam2.1_hiera_*.pt` and `edgetam.pt`. The IoU and hypernetwork
heads are scaled up and the object-score head is biased positive so that
decoded masks and scores are not all sitting at zero.
"""

from __future__ import annotations


import torch

from convert.checkpoint import CHECKPOINT_NAMES, MODEL_SIZES, build_model

# Image size only shapes buffers that are not saved; the state dict is size-free.
_BUILD_IMAGE_SIZE = 512


def perturbed_state_dict(model: torch.nn.Module, seed: int, noise: float) -> dict[str, torch.Tensor]:
    """The model's state dict with seeded noise on every float tensor and livelier decoder heads."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.clone()
        if tensor.is_floating_point():
            tensor += noise * torch.randn(tensor.shape, generator=generator)
            if name.startswith("sam_mask_decoder.iou_prediction_head.layers.2.") or (
                name.startswith("sam_mask_decoder.output_hypernetworks_mlps.") and ".layers.2." in name
            ):
                tensor *= 4.0
            if name.startswith("sam_mask_decoder.pred_obj_score_head.layers.2.bias"):
                tensor += 2.0
        state[name] = tensor
    return state


def random_state_dict(model_size: str, seed: int, noise: float = 0.02) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return perturbed_state_dict(build_model(model_size, _BUILD_IMAGE_SIZE), seed, noise)


def random_edgetam_state_dict(seed: int, noise: float = 0.02) -> dict[str, torch.Tensor]:
    """An `edgetam.pt`-format state dict (RepViT-M1 trunk, spatial perceiver, two v2 memory-attention layers)."""
    from convert.edgetam.model import build_edgetam

    torch.manual_seed(seed)
    return perturbed_state_dict(build_edgetam(_BUILD_IMAGE_SIZE), seed, noise)
