"""Build EdgeTAM from configs/models/edgetam.yaml and load an official `edgetam.pt` checkpoint into it.

SAM 2's parts (FPN neck, prompt encoder, mask decoder, memory encoder and the
video predictor's flags) come from the `sam2` package, whose SAM2Base EdgeTAM
extends only by a spatial perceiver after the memory encoder; the trunk,
perceiver and memory attention are this package's own modules. The perceiver
is attached as `spatial_perceiver`, so every parameter has the name it has in
the official checkpoint.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import torch
import yaml
from loguru import logger
from sam2.modeling.backbones.image_encoder import FpnNeck, ImageEncoder
from sam2.modeling.memory_encoder import CXBlock, Fuser, MaskDownSampler, MemoryEncoder
from sam2.modeling.position_encoding import PositionEmbeddingSine
from sam2.sam2_video_predictor import SAM2VideoPredictor

from convert.checkpoint import CheckpointError, load_into
from convert.edgetam.memory_attention import EdgeMemoryAttention, MemoryAttentionShape
from convert.edgetam.perceiver import GridError, PerceiverShape, SpatialPerceiver, check_grid, grid_side
from convert.edgetam.repvit import RepViTShape, RepViTTrunk

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "models" / "edgetam.yaml"
FAMILY = "edgetam"
CHECKPOINT_NAME = "edgetam.pt"
# The image encoder's top feature is 1/16 of the image side.
BACKBONE_STRIDE = 16
# Keys only an EdgeTAM checkpoint has (its RepViT stem and the perceiver's latents).
SIGNATURE_KEYS = ("image_encoder.trunk.body.stem.conv1.c.weight", "spatial_perceiver.latents_2d")
# The official flags this package's modules implement one value of (EdgeTAM's): (config section, key) -> value.
IMPLEMENTED = {
    ("spatial_perceiver", "pos_enc_at_key_value"): True,
    ("spatial_perceiver", "concat_kv_latents"): False,
    ("spatial_perceiver", "use_self_attn"): True,
    ("memory_attention", "activation"): "relu",
    ("memory_attention", "downsample_rate"): 1,
    ("model", "add_tpos_enc_to_obj_ptrs"): False,
}
# Dropout probabilities: read, and the identity in eval mode whatever their value in [0, 1).
DROPOUTS = (("spatial_perceiver", "hidden_dropout_p"), ("spatial_perceiver", "attention_dropout_p"),
            ("memory_attention", "dropout"))


def load_config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def is_edgetam_state_dict(state_dict: dict[str, torch.Tensor]) -> bool:
    return all(key in state_dict for key in SIGNATURE_KEYS)


def check_image_size(image_size: int, config: dict | None = None) -> None:
    """The frame's 1/16 feature map must split into the perceiver's grid (16×16: a multiple of 256 px)."""
    config = config or load_config()
    grid = grid_side(config["spatial_perceiver"]["num_latents_2d"])
    if image_size <= 0 or image_size % BACKBONE_STRIDE:
        raise CheckpointError(f"image size {image_size} is not a multiple of {BACKBONE_STRIDE}; try 512 or 1024")
    try:
        check_grid(image_size // BACKBONE_STRIDE, grid * grid)
    except GridError as exc:
        raise CheckpointError(
            f"EdgeTAM cannot take image size {image_size}: {exc}; use a multiple of {grid * BACKBONE_STRIDE} "
            f"such as 512 or 1024"
        ) from exc


def check_implemented(config: dict, path: Path = CONFIG) -> None:
    """Every flag the modules implement one value of holds that value; a missing one is not assumed."""
    for (section, key), value in IMPLEMENTED.items():
        found = config[section].get(key)
        if found != value:
            raise CheckpointError(f"{path}: {section}.{key} is {found!r}, but this project's EdgeTAM modules "
                                  f"implement only {value!r} (EdgeTAM's own value): set it back")
    for section, key in DROPOUTS:
        found = config[section].get(key)
        if not isinstance(found, (int, float)) or not 0 <= found < 1:
            raise CheckpointError(f"{path}: {section}.{key} is {found!r}; a dropout probability is in [0, 1)")


def _shape(shape_type: type, config: dict, section: str):
    """`shape_type` from the section's keys that are its fields; the others must be checked flags (no key that
    nothing reads)."""
    names = {f.name for f in fields(shape_type)}
    flags = {key for where, key in (*IMPLEMENTED, *DROPOUTS) if where == section}
    unknown = sorted(set(config[section]) - names - flags)
    if unknown:
        raise CheckpointError(f"{CONFIG}: {section} has keys nothing reads: {', '.join(unknown)}; remove them")
    return shape_type(**{k: tuple(v) if isinstance(v, list) else v for k, v in config[section].items() if k in names})


def build_edgetam(image_size: int) -> SAM2VideoPredictor:
    """EdgeTAM with freshly initialised weights, in eval mode on CPU."""
    config = load_config()
    check_image_size(image_size, config)
    check_implemented(config)
    trunk = RepViTTrunk(_shape(RepViTShape, config, "trunk"))
    neck_cfg = dict(config["neck"])
    scalp = neck_cfg.pop("scalp")
    neck = FpnNeck(
        position_encoding=PositionEmbeddingSine(**neck_cfg.pop("position_encoding")),
        backbone_channel_list=trunk.channel_list,
        **neck_cfg,
    )
    enc_cfg = config["memory_encoder"]
    memory_encoder = MemoryEncoder(
        out_dim=enc_cfg["out_dim"],
        mask_downsampler=MaskDownSampler(**enc_cfg["mask_downsampler"]),
        fuser=Fuser(CXBlock(**enc_cfg["fuser_layer"]), num_layers=enc_cfg["fuser_layers"]),
        position_encoding=PositionEmbeddingSine(**enc_cfg["position_encoding"]),
    )
    perceiver_shape = _shape(PerceiverShape, config, "spatial_perceiver")
    memory_attention = EdgeMemoryAttention(
        _shape(MemoryAttentionShape, config, "memory_attention"),
        feat_side=image_size // BACKBONE_STRIDE,
        key_grid_side=grid_side(perceiver_shape.num_latents_2d),
    )
    model = SAM2VideoPredictor(
        image_encoder=ImageEncoder(trunk=trunk, neck=neck, scalp=scalp),
        memory_attention=memory_attention,
        memory_encoder=memory_encoder,
        image_size=image_size,
        **config["model"],
    )
    model.spatial_perceiver = SpatialPerceiver(perceiver_shape)
    return model.eval()


def load_edgetam(state_dict: dict[str, torch.Tensor], path: Path, image_size: int) -> torch.nn.Module:
    """The checkpoint's weights in EdgeTAM's architecture; every key must fit both ways."""
    check_image_size(image_size)
    model = build_edgetam(image_size)
    load_into(model, state_dict, path, "EdgeTAM")
    logger.info("loaded {} as EdgeTAM at image size {}", path, image_size)
    return model.eval()
