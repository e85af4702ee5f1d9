"""Tracker configuration: a frozen dataclass read from `configs/*.yaml`."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from app.samurai.motion_selection import SamuraiParams
from app.samurai.preprocess import RESIZES

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "samurai.yaml"
MODES = ("samurai", "sam2")


class ConfigError(ValueError):
    """A configuration value is out of range; the message names it."""


@dataclass(frozen=True)
class TrackerConfig:
    mode: str = "samurai"
    resize: str = "pil_bicubic"
    samurai: SamuraiParams = field(default_factory=SamuraiParams)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode '{self.mode}' is not one of {', '.join(MODES)}")
        if self.resize not in RESIZES:
            raise ConfigError(f"resize '{self.resize}' is not one of {', '.join(RESIZES)}")


def load_config(path: Path | None, model_size: str, mode: str | None = None) -> TrackerConfig:
    """Read YAML, apply the per-model-size overrides, then an explicit mode."""
    path = Path(path or DEFAULT_CONFIG)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; pass --config FILE or omit it for {DEFAULT_CONFIG.name}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    samurai = dict(raw.get("samurai", {}))
    samurai.update((raw.get("model_size_overrides") or {}).get(model_size, {}))
    known = {f.name for f in fields(SamuraiParams)}
    unknown = set(samurai) - known
    if unknown:
        raise ConfigError(f"unknown samurai keys in {path}: {', '.join(sorted(unknown))}")
    return TrackerConfig(
        mode=mode or raw.get("mode", "samurai"),
        resize=raw.get("resize", "pil_bicubic"),
        samurai=SamuraiParams(**samurai),
    )
