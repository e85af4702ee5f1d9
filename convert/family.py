"""Which model family a checkpoint holds, told from its keys: SAM 2.1 (Hiera trunk) or EdgeTAM (RepViT trunk).

The export dispatches on this, and refuses a checkpoint whose keys fit neither
or that contradicts the family asked for on the command line, with one line.
"""

from __future__ import annotations

from pathlib import Path

import torch

from convert.checkpoint import CheckpointError

SAM21 = "sam2.1"
EDGETAM = "edgetam"
FAMILIES = (SAM21, EDGETAM)
# A key that only that family's checkpoints have.
_SIGNATURE = {
    SAM21: "image_encoder.trunk.patch_embed.proj.weight",
    EDGETAM: "spatial_perceiver.latents_2d",
}


def family_of(state_dict: dict[str, torch.Tensor], path: Path) -> str:
    found = [family for family, key in _SIGNATURE.items() if key in state_dict]
    if len(found) != 1:
        raise CheckpointError(
            f"checkpoint {path} fits neither SAM 2.1 (no '{_SIGNATURE[SAM21]}') nor EdgeTAM "
            f"(no '{_SIGNATURE[EDGETAM]}'); give an official sam2.1_hiera_*.pt or edgetam.pt"
        )
    return found[0]


def check_family(asked: str | None, found: str, path: Path) -> str:
    """`found` unless the command line asked for the other family."""
    if asked is not None and asked != found:
        raise CheckpointError(
            f"checkpoint {path} holds {found} weights but --family {asked} was asked for; pass --family {found}"
        )
    return found
