"""A model bundle: one exported folder opened on one runtime (manifest, constants, a runner per sub-model).

This is the single door to a model folder. A process names the folder, the
backend, the exported variant and the precision; `open_bundle` checks them
together (an ONNX Runtime variant asks for ONNX Runtime), opens every runner
and checks each graph declares what the manifest says. The tracker takes the
bundle and reads every size from it, so a second model family plugs in here:
its own manifest entries and runners, nothing in the algorithm's constants.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from loguru import logger

from acl_models.base import BackendError, ModelRunner
from acl_models.manifest import (
    DEFAULT_FAMILY,
    EXPORT_COMMAND,
    SUBMODELS,
    Manifest,
    ModelFolderError,
    load_constants,
    load_manifest,
    model_file,
)
from acl_models.select import DEFAULT_PRECISION, check_backend_precision, choose_backend, runner_factory

# The exported graphs as they are; `--onnx-variant fp16|int8` names the others, which only ONNX Runtime runs.
FULL_VARIANT = "fp32"
# The backend of a bundle whose runners a caller made itself (recordings, replays, captures).
CUSTOM_BACKEND = "custom"


@dataclass(frozen=True)
class ModelBundle:
    """The opened folder; closing it (or leaving its `with`) closes every runner."""

    manifest: Manifest
    constants: dict[str, np.ndarray]
    runners: dict[str, ModelRunner]
    backend: str = CUSTOM_BACKEND

    def wrap(self, wrapper: Callable[[ModelRunner], ModelRunner]) -> ModelBundle:
        """The same bundle with every runner inside `wrapper` (to count, time or record its calls)."""
        return replace(self, runners={name: wrapper(runner) for name, runner in self.runners.items()})

    def close(self) -> None:
        """Close every runner, the last opened first; each one is closed even when another one fails."""
        with ExitStack() as stack:
            for runner in self.runners.values():
                stack.callback(runner.close)

    def __enter__(self) -> ModelBundle:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check_runner(manifest: Manifest, name: str, runner: ModelRunner) -> None:
    """Raise ModelFolderError unless the graph takes and gives the names the manifest lists, in its order."""
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


def open_runners(
    manifest: Manifest, factory: Callable[[Path], ModelRunner], variant: str = FULL_VARIANT
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
        "models: {} at {} px from {} (checkpoint {})",
        f"hiera-{manifest.model_size}" if manifest.family == DEFAULT_FAMILY else manifest.family,
        manifest.image_size,
        manifest.folder,
        manifest.checkpoint_sha256[:12],
    )
    return runners


def open_bundle_with(
    model_dir: Path, factory: Callable[[Path], ModelRunner], variant: str = FULL_VARIANT,
    backend: str = CUSTOM_BACKEND,
) -> ModelBundle:
    """The folder with every sub-model opened by `factory` (path of its graph -> runner): a caller's own runners."""
    manifest = load_manifest(model_dir)
    constants = load_constants(manifest)
    return ModelBundle(manifest, constants, open_runners(manifest, factory, variant), backend)


@dataclass(frozen=True)
class BundleChoice:
    """A folder and the runtime chosen for it, every choice checked, nothing loaded yet.

    A process checks its choices before it opens a source or an output, and
    opens the runners once it knows how it will run them (`open`).
    """

    manifest: Manifest
    constants: dict[str, np.ndarray]
    backend: str
    reason: str
    variant: str
    precision: str

    def open(self, threads: int | None = None, overlap: bool = False) -> ModelBundle:
        """Every runner on the chosen backend; `overlap` splits the CPU threads between the encoder and the rest."""
        factory = runner_factory(
            self.backend, self.manifest.folder, precision=self.precision, threads=threads, overlap=overlap
        )
        return ModelBundle(self.manifest, self.constants, open_runners(self.manifest, factory, self.variant), self.backend)


def choose_bundle(
    model_dir: Path, backend: str = "auto", variant: str = FULL_VARIANT, precision: str = DEFAULT_PRECISION
) -> BundleChoice:
    """Check the folder, pick the backend and check the variant and precision against it.

    An ONNX Runtime variant asks for ONNX Runtime (auto would otherwise take
    OpenVINO), as an OpenVINO precision asks for OpenVINO; with another backend
    named it is a BackendError.
    """
    manifest = load_manifest(model_dir)
    constants = load_constants(manifest)
    requested = "onnx" if backend == "auto" and variant != FULL_VARIANT else backend
    chosen, reason = choose_backend(model_dir, requested)
    if chosen != "onnx" and variant != FULL_VARIANT:
        raise BackendError(f"--onnx-variant applies to ONNX Runtime, not {chosen}; use --backend onnx")
    check_backend_precision(chosen, precision)
    return BundleChoice(manifest, constants, chosen, reason, variant, precision)


def open_bundle(
    model_dir: Path, backend: str = "auto", variant: str = FULL_VARIANT, precision: str = DEFAULT_PRECISION,
    threads: int | None = None, overlap: bool = False,
) -> ModelBundle:
    """`model_dir` opened on `backend` ("auto" picks one): the one call a process makes to get its models."""
    return choose_bundle(model_dir, backend, variant, precision).open(threads, overlap)
