"""The one interface every backend implements: load a sub-model, run it on named arrays, close."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np


class BackendError(RuntimeError):
    """A runtime call failed; the message names the call and what to do."""


def import_problem(module: str, label: str) -> str | None:
    """Why `module` (an optional runtime) cannot be imported here, or None when it can."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"{label} is not importable ({exc})"
    return None


class ModelRunner(ABC):
    """One loaded sub-model. Stateless about the video: the tracker owns all state.

    `run` takes and returns float32/int32 numpy arrays by graph name, whatever
    precision the device computes in. Usable as a context manager; `close()`
    may be called more than once.
    """

    # True for an image encoder that normalises on the device (Ascend AIPP): it
    # takes the resized frame as uint8 RGB, NHWC, instead of normalised float32 NCHW.
    takes_pixels: bool = False

    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    @abstractmethod
    def input_names(self) -> list[str]: ...

    @property
    @abstractmethod
    def output_names(self) -> list[str]: ...

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "ModelRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
