"""Tracker configuration: a frozen dataclass read from `configs/*.yaml`.

Every key of the file is checked for its type and range when it is read, so a
wrong value is one `ConfigError` line naming the key, the value and what is
accepted, before any model loads, never a traceback in the middle of a run.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from app.samurai.motion_selection import SamuraiParams
from app.samurai.preprocess import RESIZES

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "samurai.yaml"
MODES = ("samurai", "sam2")
# SAM 2.1's four model sizes, the keys of `model_size_overrides` (the manifest's `model_size`).
MODEL_SIZES = ("t", "s", "b+", "l")
MODE, RESIZE, SAMURAI, OVERRIDES = "mode", "resize", "samurai", "model_size_overrides"
PROMPT_HISTORY, MAX_COND_FRAMES = "prompt_history", "max_cond_frames_in_attn"
TOP_KEYS = (MODE, RESIZE, PROMPT_HISTORY, MAX_COND_FRAMES, SAMURAI, OVERRIDES)
# Frames back (the newest included) a prompt may refer to when the file does not say.
DEFAULT_PROMPT_HISTORY = 16
# The conditioning frames the memory-attention graph holds: one, each object's start. Under the official default
# add_all_frames_to_correct_as_cond=False a correction is not a conditioning frame, so no object has more.
GRAPH_COND_FRAMES = 1
# Each held frame keeps every object's state and logits alive; a longer history is a leak, not a feature.
MAX_PROMPT_HISTORY = 1000
# How much of a wrong value a message quotes: enough to recognise it, never a pasted file.
SHOWN_CHARS = 60
_OTHER_FILE = "pass --config FILE, a YAML mapping like configs/samurai.yaml, or leave --config out"
_CORRECT = "correct it, or pass another file with --config"


class ConfigError(ValueError):
    """A configuration value is out of range; the message names it."""


@dataclass(frozen=True)
class TrackerConfig:
    mode: str = "samurai"
    resize: str = "pil_bicubic"
    samurai: SamuraiParams = field(default_factory=SamuraiParams)
    # The newest frames (it included) whose object states the tracker keeps so a prompt can refine them.
    prompt_history: int = DEFAULT_PROMPT_HISTORY
    # The official predictor's cap on the conditioning frames memory attention reads (the temporally closest).
    max_cond_frames_in_attn: int = GRAPH_COND_FRAMES

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode {_shown(self.mode)} is not one of {', '.join(MODES)}")
        if (isinstance(self.prompt_history, bool) or not isinstance(self.prompt_history, int)
                or not 1 <= self.prompt_history <= MAX_PROMPT_HISTORY):
            raise ConfigError(f"prompt_history {_shown(self.prompt_history)} is not a whole number of frames from 1 "
                              f"to {MAX_PROMPT_HISTORY}")
        if self.max_cond_frames_in_attn != GRAPH_COND_FRAMES or isinstance(self.max_cond_frames_in_attn, bool):
            raise ConfigError(f"max_cond_frames_in_attn {_shown(self.max_cond_frames_in_attn)} is not "
                              f"{GRAPH_COND_FRAMES}: the graphs hold one conditioning frame and corrections are none "
                              "(official add_all_frames_to_correct_as_cond=False)")
        if self.resize not in RESIZES:
            raise ConfigError(f"resize {_shown(self.resize)} is not one of {', '.join(RESIZES)}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "..."


def _kind(value: object) -> str:
    """What YAML made of a value, in the file's words."""
    kinds = {type(None): "nothing", bool: "true/false", int: "a number", float: "a number", str: "a string",
             list: "a list", dict: "a mapping"}
    return kinds.get(type(value), f"a {type(value).__name__}")


def _read(path: Path) -> dict:
    """The file's top-level mapping, with its sections checked to be mappings and every key known."""
    fix = _OTHER_FILE
    if not path.exists():
        raise ConfigError(f"config file {path} not found; {fix}")
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder, not a YAML file; {fix}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not a text file (UTF-8 YAML); {fix}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror or exc}); {fix}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML ({str(exc).splitlines()[0]}); {_CORRECT}") from None
    except RecursionError:
        raise ConfigError(f"config file {path} nests too deeply to be a config; {fix}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} holds {_kind(raw)}, not a mapping of {', '.join(TOP_KEYS)}; {fix}")
    _known_keys(path, "", raw, TOP_KEYS)
    for section in (SAMURAI, OVERRIDES):
        raw[section] = _mapping(path, section, raw.get(section))
    known = tuple(f.name for f in fields(SamuraiParams))
    _known_keys(path, SAMURAI, raw[SAMURAI], known)
    _known_keys(path, OVERRIDES, raw[OVERRIDES], MODEL_SIZES)
    for size, values in raw[OVERRIDES].items():
        raw[OVERRIDES][size] = _mapping(path, f"{OVERRIDES}.{size}", values)
        _known_keys(path, f"{OVERRIDES}.{size}", raw[OVERRIDES][size], known)
    return raw


def _mapping(path: Path, where: str, value: object) -> dict:
    """A section's keys and values; an empty section (`samurai:` with nothing under it) is an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"config file {path}: {where} is {_kind(value)} ({_shown(value)}), not a mapping of keys "
                          f"to values; indent its keys under it, or pass another file with --config")
    return dict(value)


def _known_keys(path: Path, where: str, values: dict, known: tuple[str, ...]) -> None:
    unknown = sorted(str(key) for key in values if key not in known)
    if unknown:
        place = f"{where} keys" if where else "keys"
        raise ConfigError(f"unknown {place} in {path}: {', '.join(unknown)}; the known ones are {', '.join(known)}; "
                          f"{_CORRECT}")


def _samurai_params(path: Path, values: dict, where: str) -> SamuraiParams:
    """`SamuraiParams` from YAML values: each of the type its field declares (no booleans, no strings)."""
    types = typing.get_type_hints(SamuraiParams)
    checked = {}
    for key, value in values.items():
        wanted = types[key]
        allowed, kind = ((int,), "an integer") if wanted is int else ((int, float), "a number")
        if isinstance(value, bool) or not isinstance(value, allowed):
            raise ConfigError(f"config file {path}: {where}.{key} is {_shown(value)}, not {kind} (the default is "
                              f"{getattr(SamuraiParams, key)}); {_CORRECT}")
        try:
            checked[key] = wanted(value)
        except OverflowError:
            raise ConfigError(f"config file {path}: {where}.{key} is too large to be {kind}; {_CORRECT}") from None
    try:
        return SamuraiParams(**checked)
    except ValueError as exc:
        raise ConfigError(f"config file {path}: {where}.{exc}; {_CORRECT}") from None


def load_config(path: Path | None, model_size: str, mode: str | None = None) -> TrackerConfig:
    """Read YAML, apply the per-model-size overrides, then an explicit mode."""
    path = Path(path or DEFAULT_CONFIG)
    raw = _read(path)
    return _config(path, raw, model_size, mode)


def check_config(path: Path | None) -> None:
    """Check the whole file, every model size's overrides included, before the model size is known."""
    path = Path(path or DEFAULT_CONFIG)
    raw = _read(path)
    for size in MODEL_SIZES:
        _config(path, raw, size, None)


def _config(path: Path, raw: dict, model_size: str, mode: str | None) -> TrackerConfig:
    samurai = _samurai_params(path, raw[SAMURAI], SAMURAI)
    overrides = raw[OVERRIDES].get(model_size, {})
    if overrides:
        samurai = _samurai_params(path, {**raw[SAMURAI], **overrides}, f"{OVERRIDES}.{model_size}")
    for key in (MODE, RESIZE):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"config file {path}: {key} is {_shown(raw[key])}, not a name; write one of "
                              f"{', '.join(MODES if key == MODE else RESIZES)}, or pass another file with --config")
    try:
        return TrackerConfig(mode=mode or raw.get(MODE, "samurai"), resize=raw.get(RESIZE, "pil_bicubic"),
                             samurai=samurai, prompt_history=raw.get(PROMPT_HISTORY, DEFAULT_PROMPT_HISTORY),
                             max_cond_frames_in_attn=raw.get(MAX_COND_FRAMES, GRAPH_COND_FRAMES))
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}; {_CORRECT}") from None
