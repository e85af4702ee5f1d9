"""Which runtime runs the sub-models: pyACL on an Ascend NPU, or ONNX Runtime anywhere.

"auto" takes pyACL when `import acl` works and every sub-model in the folder
has its `.om`; otherwise ONNX Runtime, saying why. Asking for "acl" where it
cannot work is an error, never a silent fallback.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Callable

from loguru import logger

from acl_models.acl_runner import SET_ENV, AclResource, AclRunner
from acl_models.base import BackendError, ModelRunner
from acl_models.onnx_runner import OnnxRunner

BACKENDS = ("auto", "onnx", "acl")


def _pyacl_problem() -> str | None:
    """Why pyACL cannot be used here, or None when `import acl` works."""
    try:
        importlib.import_module("acl")
    except ImportError as exc:
        return f"pyACL is not importable ({exc})"
    return None


def _missing_om(model_dir: Path) -> list[str]:
    manifest = model_dir / "manifest.json"
    if not manifest.is_file():
        raise BackendError(f"{manifest} not found; export with `python convert/export_onnx.py --out {model_dir}`")
    names = json.loads(manifest.read_text())["models"]
    return [f"{name}.om" for name in names if not (model_dir / f"{name}.om").is_file()]


def choose_backend(model_dir: Path, requested: str) -> tuple[str, str]:
    """("acl" | "onnx", why) for the sub-models in `model_dir`; raises BackendError when "acl" cannot work."""
    if requested not in BACKENDS:
        raise BackendError(f"unknown backend {requested!r}; use one of {', '.join(BACKENDS)}")
    model_dir = Path(model_dir)
    if requested == "onnx":
        backend, reason = "onnx", "requested"
    else:
        problem = _pyacl_problem()
        missing = _missing_om(model_dir)
        if problem is None and not missing:
            backend, reason = "acl", "requested" if requested == "acl" else "pyACL importable and every .om present"
        elif requested == "acl" and problem:
            raise BackendError(f"--backend acl: {problem}; run `source {SET_ENV}` or use --backend onnx")
        elif requested == "acl":
            raise BackendError(
                f"--backend acl: {', '.join(missing)} missing in {model_dir}; "
                f"run `convert/atc_all.sh --model-dir {model_dir}`"
            )
        else:
            backend = "onnx"
            reason = problem or f"{', '.join(missing)} missing in {model_dir} (convert/atc_all.sh makes them)"
    logger.info("backend {} for {}: {}", backend, model_dir, reason)
    return backend, reason


class _AclFactory:
    """Opens `.om` runners next to the `.onnx` paths it is given, all on one AclResource.

    Without a resource from the caller it opens one on first use, which closes
    itself when the last of its runners closes.
    """

    def __init__(self, resource: AclResource | None):
        self._resource = resource
        self._owned = resource is None

    def __call__(self, onnx_path: Path) -> ModelRunner:
        if self._owned and (self._resource is None or self._resource.closed):
            self._resource = AclResource(close_with_last_runner=True)
        return AclRunner(Path(onnx_path).with_suffix(".om"), self._resource)


def runner_factory(
    backend: str, model_dir: Path, resource: AclResource | None = None
) -> Callable[[Path], ModelRunner]:
    """path of a sub-model's .onnx -> its runner on `backend` (as app.model_bundle.open_runners expects)."""
    chosen = choose_backend(model_dir, backend)[0] if backend == "auto" else backend
    if chosen == "acl":
        return _AclFactory(resource)
    if chosen == "onnx":
        return OnnxRunner
    raise BackendError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}")


def open_runner(
    model_dir: Path, name: str, backend: str = "auto", resource: AclResource | None = None
) -> ModelRunner:
    """The runner for sub-model `name` of `model_dir`; pyACL needs the process's AclResource.

    All sub-models must share one resource (one acl.init, one context), so the
    caller creates it when choose_backend() answers "acl" and passes it here.
    """
    model_dir = Path(model_dir)
    chosen, _ = choose_backend(model_dir, backend)
    if chosen == "acl" and resource is None:
        raise BackendError(
            f"open_runner({name!r}) chose pyACL but got no resource; create one AclResource() for all "
            "sub-models when choose_backend() answers 'acl' and pass it as resource="
        )
    return runner_factory(chosen, model_dir, resource)(model_dir / f"{name}.onnx")
