"""Replay backend ("null models"): record what the four sub-models return on a real run, then replay it instantly.

With replays in place of the models, a tracker run costs only the CPU work
around them (preprocessing, memory bank, selection, post-processing), which
is what a board's slow cores must afford next to the NPU. A recording holds
every call of each sub-model over a few frames; a replay returns them in
order and then cycles over the tracked frames' calls (the mask decoder's and
memory encoder's first call belongs to the prompt frame).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acl_models.base import ModelRunner, WrappedRunner
from acl_models.bundle import ModelBundle
from acl_models.manifest import SUBMODELS, Manifest, load_constants

# The backend name of a replayed bundle.
REPLAY_BACKEND = "replay"
_META_KEY = "meta"
_SEPARATOR = "."


class RecordingError(ValueError):
    """A recording that does not fit the model folder; the message says how to make a new one."""


class RecordingRunner(WrappedRunner):
    """Runs a real runner and keeps a copy of every output it returns."""

    def __init__(self, runner: ModelRunner):
        super().__init__(runner)
        self.calls: list[dict[str, np.ndarray]] = []

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.runner.run(inputs)
        self.calls.append({name: value.copy() for name, value in outputs.items()})
        return outputs


class ReplayRunner(ModelRunner):
    """Returns recorded outputs without computing anything: calls 0, 1, …, n−1, then 1, …, n−1 again."""

    def __init__(self, path: Path, input_names: list[str], calls: list[dict[str, np.ndarray]], takes_pixels: bool):
        super().__init__(path)
        if not calls:
            raise RecordingError(f"the recording holds no call of {self.path.name}; record again")
        self._inputs = list(input_names)
        self._calls = calls
        self.takes_pixels = takes_pixels
        self.count = 0

    @property
    def input_names(self) -> list[str]:
        return self._inputs

    @property
    def output_names(self) -> list[str]:
        return list(self._calls[0])

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(self._calls)
        index = self.count if self.count < n or n == 1 else 1 + (self.count - 1) % (n - 1)
        self.count += 1
        return self._calls[index]

    def close(self) -> None:
        self._calls = []


@dataclass
class Recording:
    """Every sub-model's outputs, call by call, and the model folder they came from."""

    checkpoint_sha256: str
    image_size: int
    takes_pixels: bool
    calls: dict[str, list[dict[str, np.ndarray]]]

    @classmethod
    def from_runners(cls, manifest: Manifest, runners: dict[str, RecordingRunner]) -> Recording:
        return cls(
            manifest.checkpoint_sha256,
            manifest.image_size,
            runners["image_encoder"].takes_pixels,
            {name: runner.calls for name, runner in runners.items()},
        )

    def save(self, path: Path) -> None:
        arrays = {
            _SEPARATOR.join((model, str(i), output)): value
            for model, calls in self.calls.items()
            for i, outputs in enumerate(calls)
            for output, value in outputs.items()
        }
        meta = {"checkpoint_sha256": self.checkpoint_sha256, "image_size": self.image_size,
                "takes_pixels": self.takes_pixels}
        with open(path, "wb") as handle:
            np.savez(handle, **arrays, **{_META_KEY: np.array(json.dumps(meta))})

    @classmethod
    def load(cls, path: Path, manifest: Manifest) -> Recording:
        try:
            with np.load(path) as data:
                meta = json.loads(str(data[_META_KEY]))
                calls: dict[str, list[dict[str, np.ndarray]]] = {}
                for key in data.files:
                    if key == _META_KEY:
                        continue
                    model, index, output = key.split(_SEPARATOR)
                    per_model = calls.setdefault(model, [])
                    while len(per_model) <= int(index):
                        per_model.append({})
                    per_model[int(index)][output] = data[key]
        except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise RecordingError(
                f"{path} is not a recording of scripts/bench.py --null-models ({exc}); delete it to record again"
            ) from exc
        if meta["checkpoint_sha256"] != manifest.checkpoint_sha256 or meta["image_size"] != manifest.image_size:
            raise RecordingError(
                f"{path} was recorded with another export than {manifest.folder}; delete it to record again"
            )
        return cls(meta["checkpoint_sha256"], meta["image_size"], meta["takes_pixels"], calls)

    def bundle(self, manifest: Manifest) -> ModelBundle:
        """The folder's manifest and constants with a replay in place of each sub-model."""
        return ModelBundle(manifest, load_constants(manifest), self.runners(manifest), REPLAY_BACKEND)

    def runners(self, manifest: Manifest) -> dict[str, ReplayRunner]:
        """One replay per sub-model, named and shaped like the model folder's graphs."""
        runners = {}
        for name in SUBMODELS:
            entry = manifest.models[name]
            if name not in self.calls:
                raise RecordingError(f"the recording holds no call of {name}; delete it to record again")
            takes_pixels = self.takes_pixels and name == "image_encoder"
            inputs = [i["name"] for i in entry["inputs"]]
            runners[name] = ReplayRunner(manifest.folder / entry["file"], inputs, self.calls[name], takes_pixels)
        return runners
