"""The exported model folder: manifest, constants and one runner per sub-model.

The tracker takes every size from `manifest.json` and checks that the graphs it
loads declare what the manifest says, so a stale or mixed-up folder fails at
start-up with a message instead of producing wrong masks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from loguru import logger

from acl_models.base import ModelRunner

SUBMODELS = ("image_encoder", "memory_attention", "memory_encoder", "mask_decoder")
# manifest.json layout; 2: memory attention takes a static number of frames and pointers plus validity flags;
# 3: the mask decoder takes the presence gate (min_obj_score) as an input.
MANIFEST_FORMAT = 3
EXPORT_COMMAND = "python convert/export_onnx.py --checkpoint checkpoints/sam2.1_hiera_tiny.pt --out {folder}"


class ModelFolderError(ValueError):
    """The model folder is missing, incomplete or inconsistent; the message says how to fix it."""


@dataclass(frozen=True)
class Manifest:
    folder: Path
    model_size: str
    image_size: int
    models: dict
    constants: dict
    hyper: dict
    checkpoint_sha256: str
    raw: dict = field(repr=False)

    @property
    def feat_size(self) -> int:
        return self.image_size // self.hyper["backbone_stride"]

    @property
    def low_res_size(self) -> int:
        return 4 * self.feat_size


def load_manifest(folder: Path) -> Manifest:
    folder = Path(folder)
    path = folder / "manifest.json"
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


def check_runner(manifest: Manifest, name: str, runner: ModelRunner) -> None:
    entry = manifest.models[name]
    for kind, declared, actual in (
        ("inputs", [i["name"] for i in entry["inputs"]], runner.input_names),
        ("outputs", [o["name"] for o in entry["outputs"]], runner.output_names),
    ):
        if list(declared) != list(actual):
            raise ModelFolderError(
                f"{runner.path.name} {kind} {list(actual)} do not match manifest.json {list(declared)}; "
                "the folder mixes files from different exports, export again"
            )


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


def open_runners(
    manifest: Manifest, factory: Callable[[Path], ModelRunner], variant: str = "fp32"
) -> dict[str, ModelRunner]:
    """One runner per sub-model; already opened runners are closed if a later one fails."""
    runners: dict[str, ModelRunner] = {}
    try:
        for name in SUBMODELS:
            path = model_file(manifest, name, variant)
            if not path.is_file():
                raise ModelFolderError(
                    f"{path} is missing; export the models with `{EXPORT_COMMAND.format(folder=manifest.folder)}`"
                )
            runners[name] = factory(path)
            check_runner(manifest, name, runners[name])
    except BaseException:
        for runner in reversed(list(runners.values())):
            runner.close()
        raise
    logger.info(
        "models: hiera-{} at {} px from {} (checkpoint {})",
        manifest.model_size,
        manifest.image_size,
        manifest.folder,
        manifest.checkpoint_sha256[:12],
    )
    return runners
