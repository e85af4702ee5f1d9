"""The exported model folder's `manifest.json`: its format, the sub-models it lists, their files and constants.

The exporter writes this format and everything else reads the folder through
this module (`acl_models.bundle` opens it), so a stale or mixed-up folder fails
at start-up with one message naming the fix instead of producing wrong masks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SUBMODELS = ("image_encoder", "memory_attention", "memory_encoder", "mask_decoder")
# manifest.json layout; 2: memory attention takes a static number of frames and pointers plus validity flags;
# 3: the mask decoder takes the presence gate (min_obj_score) as an input; 4: it takes a mask prompt
# (mask_input, mask_valid), one gear per point count up to hyper max_prompt_points, mask-prompt constants.
MANIFEST_FORMAT = 4
MANIFEST_FILE = "manifest.json"
DEFAULT_FAMILY = "sam2.1"
EXPORT_COMMAND = "python convert/export_onnx.py --checkpoint checkpoints/sam2.1_hiera_tiny.pt --out {folder}"


class ModelFolderError(ValueError):
    """The model folder is missing, incomplete or inconsistent; the message says how to fix it."""


@dataclass(frozen=True)
class Manifest:
    """What the export wrote: sizes, the graphs' files and declared inputs and outputs, constants, hyper-parameters."""

    folder: Path
    model_size: str
    image_size: int
    models: dict
    constants: dict
    hyper: dict
    checkpoint_sha256: str
    raw: dict = field(repr=False)
    # "sam2.1" or "edgetam"; exports made before EdgeTAM was added name no family and are SAM 2.1.
    family: str = DEFAULT_FAMILY
    # EdgeTAM: how a memory frame is laid out (tokens per frame, their position encoding, layer count).
    memory_layout: dict = field(default_factory=dict)


def load_manifest(folder: Path) -> Manifest:
    """The folder's manifest, checked for this format and every sub-model; ModelFolderError says how to fix it."""
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ModelFolderError(f"{path} not found; export the models with `{EXPORT_COMMAND.format(folder=folder)}`")
    try:
        raw = json.loads(path.read_text())
        manifest = Manifest(
            folder=folder,
            model_size=raw["model_size"],
            image_size=int(raw["image_size"]),
            models=raw["models"],
            constants=raw["constants"],
            hyper=raw["hyper"],
            checkpoint_sha256=raw["checkpoint"]["sha256"],
            raw=raw,
            family=raw.get("family", DEFAULT_FAMILY),
            memory_layout=raw.get("memory_layout", {}),
        )
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelFolderError(f"{path} is not a valid manifest ({exc}); export the models again") from exc
    if raw.get("format") != MANIFEST_FORMAT:
        raise ModelFolderError(
            f"{path} has format {raw.get('format')}, this tracker reads format {MANIFEST_FORMAT} "
            f"(the mask decoder's presence gate is an input); "
            f"export again with `{EXPORT_COMMAND.format(folder=folder)}`"
        )
    for name in SUBMODELS:
        if name not in manifest.models:
            raise ModelFolderError(f"{path} lists no '{name}'; export the models again")
    return manifest


def load_constants(manifest: Manifest) -> dict[str, np.ndarray]:
    """The `.npy` constants the manifest lists, each checked against its declared shape."""
    constants = {}
    for name, meta in manifest.constants.items():
        path = manifest.folder / meta["file"]
        if not path.is_file():
            raise ModelFolderError(
                f"constant {path} is missing; export the models with `{EXPORT_COMMAND.format(folder=manifest.folder)}`"
            )
        value = np.load(path)
        if list(value.shape) != meta["shape"]:
            raise ModelFolderError(f"{path} has shape {list(value.shape)}, manifest says {meta['shape']}; export again")
        constants[name] = value.astype(np.float32)
    return constants


def model_file(manifest: Manifest, name: str, variant: str = "fp32") -> Path:
    """The graph of sub-model `name`: the fp32 export or its `--fp16`/`--int8` variant."""
    entry = manifest.models[name]
    if variant == "fp32":
        return manifest.folder / entry["file"]
    if variant not in entry.get("variants", {}):
        raise ModelFolderError(
            f"{manifest.folder} has no {variant} variant of {name}; export with "
            f"`{EXPORT_COMMAND.format(folder=manifest.folder)} --{variant}`"
        )
    return manifest.folder / entry["variants"][variant]
