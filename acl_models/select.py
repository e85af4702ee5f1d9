"""Which runtime runs the sub-models: pyACL on an Ascend NPU, OpenVINO or ONNX Runtime on a CPU.

"auto" takes pyACL when `import acl` works and every sub-model in the folder
has its `.om`; otherwise OpenVINO when it is installed (the faster CPU
runtime for these graphs), otherwise ONNX Runtime, saying why. Asking for
"acl" or "openvino" where it cannot work is an error, never a silent fallback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from loguru import logger

from acl_models.acl_device import SET_ENV, AclResource
from acl_models.acl_runner import AclRunner
from acl_models.base import BackendError, ModelRunner, import_problem
from acl_models.manifest import MANIFEST_FILE, load_manifest
from acl_models.onnx_runner import OnnxRunner
from acl_models.openvino_runner import (
    INSTALL_HINT,
    INT8_GRAPHS,
    INT8_KEY,
    OpenVinoRunner,
    check_precision,
    openvino_problem,
    supported_precisions,
)

BACKENDS = ("auto", "onnx", "openvino", "acl")
# What the backends compute in: OpenVINO takes a precision at load time; ONNX
# Runtime takes exported variants (--onnx-variant); the NPU its ATC conversion.
DEFAULT_PRECISION = "f32"
# The sub-model that overlaps the others (the next frame's image encoder); variants add a suffix to its file name.
OVERLAPPED_GRAPH = "image_encoder"


def _pyacl_problem() -> str | None:
    """Why pyACL cannot be used here, or None when `import acl` works."""
    return import_problem("acl", "pyACL")


def _missing_om(model_dir: Path) -> list[str]:
    manifest = model_dir / MANIFEST_FILE
    if not manifest.is_file():
        raise BackendError(f"{manifest} not found; export with `python convert/export_onnx.py --out {model_dir}`")
    names = load_manifest(model_dir).models
    return [f"{name}.om" for name in names if not (model_dir / f"{name}.om").is_file()]


def _cpu_backend(not_acl: str) -> tuple[str, str]:
    """OpenVINO when installed, else ONNX Runtime; `not_acl` says why the NPU is not used."""
    problem = openvino_problem()
    if problem is None:
        return "openvino", f"{not_acl}; OpenVINO installed"
    return "onnx", f"{not_acl}; {problem}"


def choose_backend(model_dir: Path, requested: str) -> tuple[str, str]:
    """("acl" | "openvino" | "onnx", why) for the sub-models in `model_dir`.

    Raises BackendError when an explicitly requested backend cannot work.
    """
    if requested not in BACKENDS:
        raise BackendError(f"unknown backend {requested!r}; use one of {', '.join(BACKENDS)}")
    model_dir = Path(model_dir)
    if requested == "onnx":
        backend, reason = "onnx", "requested"
    elif requested == "openvino":
        problem = openvino_problem()
        if problem:
            raise BackendError(f"--backend openvino: {problem}; {INSTALL_HINT}")
        backend, reason = "openvino", "requested"
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
            backend, reason = _cpu_backend(
                problem or f"{', '.join(missing)} missing in {model_dir} (convert/atc_all.sh makes them)"
            )
    logger.info("backend {} for {}: {}", backend, model_dir, reason)
    return backend, reason


def pair_problem(model_dir: Path, backend: str, precision: str) -> str | None:
    """Why this machine and the export in `model_dir` cannot run `backend` at `precision`, or None when they can.

    For "onnx" the precision is an exported variant (fp32 always is); for "openvino" it is the runtime's
    precision, which needs OpenVINO, a CPU that computes in it and, for int8, the quantised graphs.
    """
    manifest = load_manifest(model_dir)
    if backend == "onnx":
        if precision == "fp32" or precision in manifest.models[OVERLAPPED_GRAPH].get("variants", {}):
            return None
        return f"no {precision} export (convert/export_onnx.py --{precision})"
    problem = openvino_problem()
    if problem is None and precision not in supported_precisions():
        problem = f"this CPU does not run {precision} in OpenVINO"
    if problem is None and precision == "int8" and not all(INT8_KEY in manifest.models[n] for n in INT8_GRAPHS):
        problem = f"no quantised graphs (python convert/quantize_int8.py --models {model_dir})"
    return problem


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


def split_threads(threads: int | None, overlap: bool) -> tuple[int, int]:
    """CPU threads for (the image encoder, the other sub-models) out of `threads` (default: every core).

    Overlapped, the next frame's encoder runs beside this frame's per-object
    graphs, so the cores are halved between them (the encoder, the larger graph,
    takes the odd one) instead of two full pools oversubscribing a many-core CPU.
    On 2 shared cores at 512 px halving and not splitting were within 7 % of each
    other (docs/speed.md); both runtimes give bit-identical results with 1 or 2
    threads per graph, so the split changes no figure. Sequential, every graph takes them all.
    """
    total = threads or os.cpu_count() or 1
    if not overlap or total < 2:
        return total, total
    return total - total // 2, total // 2


class _CpuFactory:
    """Opens a CPU runner per sub-model path with that sub-model's share of the threads."""

    def __init__(self, make: Callable[..., ModelRunner], threads: tuple[int, int], **options):
        self._make, self._threads, self._options = make, threads, options

    def __call__(self, path: Path) -> ModelRunner:
        encoder = Path(path).stem.startswith(OVERLAPPED_GRAPH)
        return self._make(path, threads=self._threads[0 if encoder else 1], **self._options)


def check_backend_precision(backend: str, precision: str) -> None:
    """Raise BackendError unless `backend` (a chosen one, not "auto") computes in `precision`: only OpenVINO takes one."""
    if backend == "openvino":
        check_precision(precision)
    elif precision != DEFAULT_PRECISION:
        raise BackendError(
            f"--precision {precision} is OpenVINO's; on {backend} use "
            + ("--onnx-variant" if backend == "onnx" else "convert/atc_all.sh --precision")
        )


def runner_factory(
    backend: str, model_dir: Path, resource: AclResource | None = None, precision: str = DEFAULT_PRECISION,
    threads: int | None = None, overlap: bool = False,
) -> Callable[[Path], ModelRunner]:
    """path of a sub-model's .onnx -> its runner on `backend` (as acl_models.bundle.open_runners expects).

    `precision` (f32, bf16, fp16) is OpenVINO's; the other backends only take f32 here.
    `threads` (default: every core) is what the CPU runtimes use, split between
    the image encoder and the rest when the run overlaps frames (`split_threads`).
    """
    chosen = choose_backend(model_dir, backend)[0] if backend == "auto" else backend
    check_backend_precision(chosen, precision)
    if chosen == "openvino":
        return _CpuFactory(OpenVinoRunner, split_threads(threads, overlap), precision=precision)
    if chosen == "acl":
        return _AclFactory(resource)
    if chosen == "onnx":
        return _CpuFactory(OnnxRunner, split_threads(threads, overlap))
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
