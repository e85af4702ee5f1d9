"""OpenVINO backend: the same ONNX graphs, compiled once for the CPU, in f32, bf16 or fp16, or int8.

OpenVINO reads ONNX directly, so there is no extra export step. Its CPU plugin
picks bf16 by default on CPUs that have it, which would change the numbers
silently: the runner always sets the inference precision it was asked for, and
refuses a reduced precision the CPU does not report (a one-line error naming
what it does report) rather than measuring f32 under a bf16 label.

int8 runs the image encoder and memory attention that `convert/quantize_int8.py`
quantised (listed in manifest.json), the other graphs at f32. It is an
experiment that scripts/bench.py runs and app/run.py does not offer: it changes
decisions on the demo clip (docs/speed.md). OpenVINO reports
INT8 on every x86 CPU, but without VNNI dot products its kernels take another
route (u8 x s8 products summed pairwise in saturating int16) whose decisions the tests
have not seen: int8 needs VNNI (or AMX) in the CPU's flags as well.

`import openvino` happens on first use, so this module imports where the
optional `[openvino]` extra is not installed.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
from loguru import logger

from acl_models.base import BackendError, ModelRunner, Pending, import_problem
from acl_models.manifest import MANIFEST_FILE, load_manifest

DEVICE = "CPU"
# --precision -> (OpenVINO element type name, the OPTIMIZATION_CAPABILITIES entry the CPU must report).
# int8's float parts (the graphs and ops left unquantised) compute in f32.
PRECISIONS: dict[str, tuple[str, str]] = {
    "f32": ("f32", "FP32"), "bf16": ("bf16", "BF16"), "fp16": ("f16", "FP16"), "int8": ("f32", "INT8"),
}
# Precisions only the benchmark runs (app/run.py does not offer them): int8 changes decisions on the demo clip.
EXPERIMENTAL_PRECISIONS = ("int8",)
# Graphs --precision int8 runs quantised (convert/quantize_int8.py makes them); the others run at f32 under it.
INT8_GRAPHS = ("image_encoder", "memory_attention")
# manifest.json key of a quantised graph's IR file (per model) and of the quantisation record (top level).
INT8_KEY = "openvino_int8"
# /proc/cpuinfo flags of int8 dot products (AVX512-VNNI, AVX-VNNI, AMX); int8 is refused without one.
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
CPUINFO = Path("/proc/cpuinfo")
# Reduced precisions docs/usage.md recommends: the tests check that each keeps every chosen mask on the test clips.
RECOMMENDED_REDUCED = ("bf16",)
# Graphs that always run at f32: the mask decoder's IoU and object-score heads make the
# tracking decisions, and bf16's 8-bit mantissa ties IoUs 0.01 apart (measured: the demo
# clip's near-tie frames flipped in sam2 mode). The decoder is ~2 % of the frame time.
F32_GRAPHS = frozenset({"mask_decoder"})
INSTALL_HINT = "install it with `pip install -e .[openvino]` or use --backend onnx"


def openvino_problem() -> str | None:
    """Why OpenVINO cannot be used here, or None when `import openvino` works."""
    return import_problem("openvino", "OpenVINO")


def _core():
    try:
        ov = importlib.import_module("openvino")
    except ImportError as exc:
        raise BackendError(f"--backend openvino: OpenVINO is not importable ({exc}); {INSTALL_HINT}") from exc
    return ov, ov.Core()


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux lists them (empty where /proc/cpuinfo has none)."""
    text = CPUINFO.read_text() if CPUINFO.is_file() else ""
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def supported_precisions() -> list[str]:
    """The --precision values this machine's CPU can run (f32 always)."""
    _, core = _core()
    capabilities = set(core.get_property(DEVICE, "OPTIMIZATION_CAPABILITIES"))
    if not INT8_DOT_FLAGS & cpu_flags():
        capabilities.discard("INT8")
    return [name for name, (_, capability) in PRECISIONS.items() if capability in capabilities]


def check_precision(precision: str) -> None:
    """Raise BackendError when `precision` is unknown or this CPU does not report it."""
    if precision not in PRECISIONS:
        raise BackendError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    supported = supported_precisions()
    if precision not in supported:
        needs = "VNNI int8 dot products" if precision == "int8" else f"{PRECISIONS[precision][1]} to OpenVINO"
        raise BackendError(
            f"--precision {precision}: this CPU does not report {needs} "
            f"(it supports {', '.join(supported)}); use --precision f32"
        )


def int8_file_name(name: str) -> str:
    """The IR file convert/quantize_int8.py writes for sub-model `name`."""
    return f"{name}_ov_int8.xml"


def int8_graph(path: Path) -> Path:
    """The quantised IR of the ONNX graph `path`, as its folder's manifest.json lists it."""
    listed = (path.parent / MANIFEST_FILE).is_file()
    entry = load_manifest(path.parent).models.get(path.stem, {}) if listed else {}
    graph = path.parent / entry[INT8_KEY] if INT8_KEY in entry else None
    if graph is None or not graph.is_file():
        raise BackendError(
            f"--precision int8: {path.parent} has no quantised {path.stem}; "
            f"make it with `python convert/quantize_int8.py --models {path.parent}`"
        )
    return graph


class _Started(Pending):
    """An infer request started with `start_async`; it holds the inputs OpenVINO reads without a copy."""

    def __init__(self, runner: OpenVinoRunner, feeds: dict[int, np.ndarray]):
        self._runner, self._feeds = runner, feeds

    def _collect(self) -> dict[str, np.ndarray]:
        return self._runner._finish()


class OpenVinoRunner(ModelRunner):
    """One ONNX graph compiled for the CPU, with one infer request reused for every call.

    Inputs are handed to OpenVINO without a copy; outputs are copied out of the
    request's own buffers, because the tracker keeps some of them (features,
    pointers) while the same request runs again. `submit` starts the request
    asynchronously (OpenVINO computes on its own threads); a `run` while it is
    in flight first finishes it, keeping its outputs for its `wait()`.
    """

    def __init__(self, path: Path, precision: str = "f32", threads: int | None = None):
        super().__init__(path)
        if not self.path.is_file():
            raise BackendError(f"model file {self.path} not found; run `python convert/export_onnx.py` first")
        check_precision(precision)
        _, core = _core()
        quantised = precision == "int8" and self.path.stem in INT8_GRAPHS
        graph = int8_graph(self.path) if quantised else self.path
        unquantised_int8 = precision == "int8" and not quantised
        self.precision = "f32" if self.path.stem in F32_GRAPHS or unquantised_int8 else precision
        cores = os.cpu_count() or 1
        threads = threads or cores
        config = {
            "INFERENCE_PRECISION_HINT": PRECISIONS[self.precision][0],
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            "INFERENCE_NUM_THREADS": str(threads),
            # A graph given part of the cores runs beside another (overlapped frames): pinned, both
            # one-thread graphs of a 2-core CPU landed on the same core (0.52x instead of 0.80x, docs/speed.md).
            "ENABLE_CPU_PINNING": "YES" if threads >= cores else "NO",
        }
        try:
            model = core.read_model(str(graph))
            # Names come from the graph as read: compiling may merge an input's tensor with
            # the node after it and report that node's name. Ports keep their order.
            self._inputs = [port.get_node().get_friendly_name() for port in model.inputs]
            self._outputs = [port.get_any_name() for port in model.outputs]
            self._compiled = core.compile_model(model, DEVICE, config)
        except RuntimeError as exc:  # OpenVINO raises RuntimeError for unreadable or unsupported graphs
            raise BackendError(f"OpenVINO cannot load {graph}: {str(exc).strip().splitlines()[0]}") from exc
        self._request = self._compiled.create_infer_request()
        self._in_flight: _Started | None = None
        logger.debug("compiled {} for OpenVINO {} at {}", graph.name, DEVICE, self.precision)

    @property
    def input_names(self) -> list[str]:
        return self._inputs

    @property
    def output_names(self) -> list[str]:
        return self._outputs

    def _feeds(self, inputs: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
        if self._request is None:
            raise BackendError(f"{self.path.name} was closed")
        missing = set(self._inputs) - set(inputs)
        if missing:
            raise BackendError(f"{self.path.name}: missing inputs {sorted(missing)}")
        if self._in_flight is not None:
            self._in_flight.wait()
        return {index: inputs[name] for index, name in enumerate(self._inputs)}

    def _outputs_of(self, results) -> dict[str, np.ndarray]:
        return {name: np.array(results[index]) for index, name in enumerate(self._outputs)}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feeds = self._feeds(inputs)
        return self._outputs_of(self._request.infer(feeds, share_inputs=True, share_outputs=True))

    def submit(self, inputs: dict[str, np.ndarray]) -> Pending:
        feeds = self._feeds(inputs)
        self._request.start_async(feeds, share_inputs=True)
        self._in_flight = _Started(self, feeds)
        return self._in_flight

    def _finish(self) -> dict[str, np.ndarray]:
        self._request.wait()
        self._in_flight = None
        return self._outputs_of(self._request.results)

    def close(self) -> None:
        if self._in_flight is not None:
            self._in_flight.wait()
        self._request = None
        self._compiled = None
