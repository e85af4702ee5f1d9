"""The one interface every backend implements: load a sub-model, run it on named arrays, close.

`submit` starts a run and returns at once where the backend can compute in the
background (a second stream on the NPU, a worker thread, an asynchronous infer
request); the caller reads the outputs with `Pending.wait()`. That is how the
tracker overlaps the next frame's image encoder with this frame's per-object
stages without a thread of its own.
"""

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


class Pending(ABC):
    """A submitted run; `wait()` blocks until its outputs are ready and returns them (the same dict on later calls)."""

    _outputs: dict[str, np.ndarray] | None = None

    def wait(self) -> dict[str, np.ndarray]:
        if self._outputs is None:
            self._outputs = self._collect()
        return self._outputs

    @property
    def done(self) -> bool:
        """Whether the outputs were collected (`wait` returns without blocking)."""
        return self._outputs is not None

    @abstractmethod
    def _collect(self) -> dict[str, np.ndarray]:
        """Block until the run ends and return its outputs; called once."""


class Done(Pending):
    """A run that finished before `submit` returned: the backend has no background execution."""

    def __init__(self, outputs: dict[str, np.ndarray]):
        self._outputs = outputs

    def _collect(self) -> dict[str, np.ndarray]:
        return self._outputs


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

    def submit(self, inputs: dict[str, np.ndarray]) -> Pending:
        """Start `run(inputs)`; its outputs come from `.wait()`. Same arithmetic as `run`, other schedule.

        The caller keeps `inputs` unchanged until then. This default runs at once;
        backends that can run in the background override it.
        """
        return Done(self.run(inputs))

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "ModelRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class WrappedRunner(ModelRunner):
    """A runner around another one (to record, log or capture its calls): names, pixels and close are the inner's."""

    def __init__(self, runner: ModelRunner):
        super().__init__(runner.path)
        self.runner = runner
        self.takes_pixels = runner.takes_pixels

    @property
    def input_names(self) -> list[str]:
        return self.runner.input_names

    @property
    def output_names(self) -> list[str]:
        return self.runner.output_names

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.runner.run(inputs)

    def close(self) -> None:
        self.runner.close()
