"""Build SAM 2.1 from the configs shipped in the `sam2` package and load a checkpoint.

Only this module knows how SAM 2.1 model sizes map to config files; the export,
the random-checkpoint script and the tests all go through it, so a random-weight
checkpoint is loaded by exactly the code that loads an official one.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import torch
from loguru import logger

MODEL_SIZES: dict[str, str] = {
    "t": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "s": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "b+": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "l": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
CHECKPOINT_NAMES: dict[str, str] = {
    "t": "sam2.1_hiera_tiny.pt",
    "s": "sam2.1_hiera_small.pt",
    "b+": "sam2.1_hiera_base_plus.pt",
    "l": "sam2.1_hiera_large.pt",
}
# Hiera (embed_dim, number of blocks) per size, as in the sam2.1 configs.
_TRUNK_SIGNATURE: dict[tuple[int, int], str] = {
    (96, 12): "t",
    (96, 16): "s",
    (112, 24): "b+",
    (144, 48): "l",
}
_NAME_PATTERNS: list[tuple[str, str]] = [
    (r"base[_-]?plus|hiera[_-]b\+", "b+"),
    (r"tiny|hiera[_-]t\b", "t"),
    (r"small|hiera[_-]s\b", "s"),
    (r"large|hiera[_-]l\b", "l"),
]
class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says what to do."""


def check_image_size(image_size: int) -> None:
    """Hiera pools by 2 four times and the FPN adds the 1/32 map to the 1/16 one."""
    if image_size <= 0 or image_size % 32:
        raise CheckpointError(
            f"image size {image_size} is not a multiple of 32 (SAM 2 needs a multiple of 16 "
            "for its 1/16 features and Hiera's last 2x pooling makes that 32); try 512 or 1024"
        )


def model_size_from_name(path: Path) -> str | None:
    name = path.name.lower()
    for pattern, size in _NAME_PATTERNS:
        if re.search(pattern, name):
            return size
    return None


def model_size_from_state_dict(state_dict: dict[str, torch.Tensor]) -> str:
    key = "image_encoder.trunk.patch_embed.proj.weight"
    if key not in state_dict:
        raise CheckpointError(f"checkpoint has no '{key}': it is not a SAM 2.1 checkpoint")
    embed_dim = int(state_dict[key].shape[0])
    blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"image_encoder\.trunk\.blocks\.(\d+)\.", k))}
    size = _TRUNK_SIGNATURE.get((embed_dim, len(blocks)))
    if size is None:
        raise CheckpointError(
            f"checkpoint trunk (embed_dim {embed_dim}, {len(blocks)} blocks) matches no SAM 2.1 size"
        )
    return size


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read `{"model": state_dict}` as the official checkpoints store it."""
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint {path} not found: put an official SAM 2.1 checkpoint there "
            "or make a test one with `python scripts/make_random_checkpoint.py --out PATH`"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise CheckpointError(f"checkpoint {path} is corrupt or not a PyTorch file ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("model"), dict):
        raise CheckpointError(f"checkpoint {path} has no 'model' state dict (official format is {{'model': ...}})")
    return payload["model"]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_model(model_size: str, image_size: int) -> torch.nn.Module:
    """The official video predictor's model, randomly initialised, in eval mode on CPU."""
    from sam2.build_sam import build_sam2_video_predictor

    if model_size not in MODEL_SIZES:
        raise CheckpointError(f"unknown model size '{model_size}'; choose one of {', '.join(MODEL_SIZES)}")
    check_image_size(image_size)
    return build_sam2_video_predictor(
        MODEL_SIZES[model_size],
        ckpt_path=None,
        device="cpu",
        hydra_overrides_extra=[f"++model.image_size={image_size}"],
    )


def load_into(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], path: Path, expected: str) -> None:
    """Load the weights strictly: every key present both ways and every shared key at the model's shape.

    torch's own shape check raises a RuntimeError listing every mismatch; a
    checkpoint of the right family but another build (or a damaged one) is
    bad input, refused with one line naming the first mismatch.
    """
    model_shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    for key, value in state_dict.items():
        want = model_shapes.get(key)
        if want is not None and tuple(value.shape) != want:
            raise CheckpointError(
                f"checkpoint {path} does not fit {expected}: '{key}' has shape {tuple(value.shape)}, "
                f"{expected} expects {want}; give an unmodified checkpoint of that model"
            )
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit {expected}: "
            f"{len(missing)} missing keys (e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})"
        )


def load_model(path: Path, model_size: str | None, image_size: int) -> tuple[torch.nn.Module, str]:
    """Load a checkpoint into the official architecture; returns (model, model size)."""
    state_dict = read_state_dict(path)
    weights_size = model_size_from_state_dict(state_dict)
    size = model_size or model_size_from_name(path) or weights_size
    if size != weights_size:
        raise CheckpointError(
            f"checkpoint {path} holds hiera-{weights_size} weights but model size '{size}' was asked for; "
            f"pass --model-size {weights_size}"
        )
    model = build_model(size, image_size)
    load_into(model, state_dict, path, f"SAM 2.1 hiera-{size}")
    logger.info("loaded {} as SAM 2.1 hiera-{} at image size {}", path, size, image_size)
    return model.eval(), size
