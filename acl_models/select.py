"""Which backend runs the sub-models: pyACL on an Ascend NPU when possible, else ONNX Runtime."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

from acl_models.base import BackendError, ModelRunner
from acl_models.onnx_runner import OnnxRunner

BACKENDS = ("auto", "onnx", "acl")


def acl_available() -> bool:
    return importlib.util.find_spec("acl") is not None


def choose_backend(model_dir: Path, requested: str) -> tuple[str, str]:
    """(backend, reason). `auto` takes acl only when pyACL imports and `.om` files exist."""
    has_om = any(Path(model_dir).glob("*.om"))
    if requested == "onnx":
        return "onnx", "requested"
    if requested == "acl":
        if not acl_available():
            raise BackendError("--backend acl needs pyACL: source /usr/local/Ascend/ascend-toolkit/set_env.sh first")
        if not has_om:
            raise BackendError(f"--backend acl needs .om files in {model_dir}: run `bash convert/atc_all.sh`")
        return "acl", "requested"
    if not acl_available():
        return "onnx", "pyACL not importable"
    if not has_om:
        return "onnx", f"pyACL present but no .om files in {model_dir}"
    return "acl", "pyACL importable and .om files present"


def runner_factory(backend: str, model_dir: Path) -> Callable[[Path], ModelRunner]:
    """A function from a sub-model's ONNX path to its runner."""
    if backend == "onnx":
        return OnnxRunner
    raise BackendError(f"backend '{backend}' is not available in this build")
