"""Backend/precision pairs as the benchmark names them ("openvino:bf16", "onnx:fp32+overlap") and their models."""

from __future__ import annotations

from pathlib import Path

from acl_models.bundle import ModelBundle, open_bundle
from acl_models.select import pair_problem

# The exact pair every other pair's decisions are compared with.
REFERENCE_PAIR = "onnx:fp32"
DEFAULT_PAIRS = ("onnx:fp32,onnx:int8,openvino:f32,openvino:bf16,openvino:int8,"
                 "onnx:fp32+overlap,openvino:f32+overlap,openvino:bf16+overlap")
# --overlap: the pairs timed both ways; a pair's suffix that asks for overlapped frames.
OVERLAP_PAIRS = "onnx:fp32,openvino:f32,openvino:bf16"
OVERLAP_SUFFIX = "+overlap"


def parse_pair(pair: str) -> tuple[str, str, bool]:
    """"openvino:bf16+overlap" -> ("openvino", "bf16", True)."""
    overlap = pair.endswith(OVERLAP_SUFFIX)
    backend, _, precision = pair.removesuffix(OVERLAP_SUFFIX).partition(":")
    return backend, precision, overlap


def open_pair(model_dir: Path, backend: str, precision: str, overlap: bool = False) -> ModelBundle:
    """The models of one backend/precision pair: ONNX Runtime takes an exported variant, OpenVINO a precision.

    Overlapped, the image encoder and the other sub-models share the cores (acl_models.select.split_threads).
    """
    if backend == "onnx":
        return open_bundle(model_dir, backend, variant=precision, overlap=overlap)
    return open_bundle(model_dir, backend, precision=precision, overlap=overlap)


def available_pairs(requested: str, model_dir: Path) -> list[str]:
    """The requested pairs this machine and this export can run; says which it leaves out."""
    pairs = []
    for pair in requested.split(","):
        backend, precision, _ = parse_pair(pair)
        problem = pair_problem(model_dir, backend, precision)
        if problem is None:
            pairs.append(pair)
        else:
            print(f"skipping {pair}: {problem}")
    return pairs
