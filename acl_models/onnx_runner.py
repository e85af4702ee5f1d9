"""ONNX Runtime backend: CPU everywhere, CANN or CUDA execution providers where installed."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from loguru import logger

from acl_models.base import BackendError, ModelRunner, Pending

# Preferred order; only providers this onnxruntime build offers are used.
PREFERRED_PROVIDERS = ["CANNExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


class _Submitted(Pending):
    def __init__(self, future: Future):
        self._future = future

    def _collect(self) -> dict[str, np.ndarray]:
        return self._future.result()


class OnnxRunner(ModelRunner):
    """One ONNX Runtime session. `submit` runs it on a worker thread of the runner (ONNX Runtime
    releases the GIL while it computes); sessions allow concurrent runs, so `run` need not wait for it.
    """

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        super().__init__(path)
        if not self.path.is_file():
            raise BackendError(f"model file {self.path} not found; run `python convert/export_onnx.py` first")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        # Idle worker threads sleep instead of spinning: on a CPU shared with other processes
        # (the board's own cores, a busy host) spinning threads steal each other's time.
        # Measured on 2 shared cores, 8 tracked frames at 512 px: 99-128 s instead of 117-156 s.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = ort.get_available_providers()
        providers = [p for p in PREFERRED_PROVIDERS if p in available]
        try:
            self._session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise BackendError(f"ONNX Runtime cannot load {self.path}: {str(exc).splitlines()[0]}") from exc
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._outputs = [o.name for o in self._session.get_outputs()]
        self._worker: ThreadPoolExecutor | None = None
        logger.debug("loaded {} with {}", self.path.name, self._session.get_providers()[0])

    @property
    def input_names(self) -> list[str]:
        return self._inputs

    @property
    def output_names(self) -> list[str]:
        return self._outputs

    def input_specs(self) -> list[tuple[str, list, str]]:
        """(name, shape with symbolic axes as strings, ONNX type string) per input."""
        return [(i.name, list(i.shape), i.type) for i in self._session.get_inputs()]

    def output_specs(self) -> list[tuple[str, list, str]]:
        return [(o.name, list(o.shape), o.type) for o in self._session.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self._session is None:
            raise BackendError(f"{self.path.name} was closed")
        return dict(zip(self._outputs, self._session.run(self._outputs, inputs)))

    def submit(self, inputs: dict[str, np.ndarray]) -> Pending:
        if self._session is None:
            raise BackendError(f"{self.path.name} was closed")
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.path.stem}-submit")
        return _Submitted(self._worker.submit(self.run, inputs))

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        self._session = None
