"""Multiply-accumulate work of an exported graph, counted from its nodes and the shapes shape inference gives.

A board's time per frame is bounded below by the work its cube unit must do; the
graphs' MatMul, Gemm, Conv and ConvTranspose nodes are nearly all of it (the
element-wise ops, softmax and norms are memory-bound, not counted). One
multiply-accumulate counts as two FLOPs. Dynamic dimensions (the mask decoder's
number of prompt points) are fixed first with `dims`. The shapes come from
ONNX Runtime's symbolic shape inference, which (unlike `onnx.shape_inference`)
follows the Shape/Gather/Concat chains the exporter writes before each Reshape;
the tensors it still leaves unknown (hiera's window partitions) are measured by
one ONNX Runtime run on zero inputs that returns them. Nodes whose shapes stay
unknown are listed, never guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

COUNTED_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")
FLOPS_PER_MAC = 2
# A box prompt is two corner points.
DEFAULT_DIMS = {"num_points": 2}


@dataclass
class GraphFlops:
    """FLOPs per op type of one graph and the nodes whose shapes were unknown."""

    by_op: dict[str, int] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.by_op.values())


def _fix_dims(model: onnx.ModelProto, dims: dict[str, int]) -> None:
    for value in model.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in dims:
                dim.dim_value = dims[dim.dim_param]


def _shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Every tensor's static shape that shape inference resolves (initialisers, inputs, values, outputs)."""
    inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    shapes = {init.name: list(init.dims) for init in inferred.graph.initializer}
    graph = inferred.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if value.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    return shapes


def _measured_shapes(model: onnx.ModelProto, names: list[str]) -> dict[str, list[int]]:
    """The shapes of `names` from one ONNX Runtime run of the graph on zero inputs (every input dim fixed)."""
    known = {value.name for value in model.graph.output}
    extra = model.__class__()
    extra.CopyFrom(model)
    extra.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in names if n not in known)
    session = ort.InferenceSession(extra.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {}
    for value in model.graph.input:
        tensor = value.type.tensor_type
        shape = [d.dim_value for d in tensor.shape.dim]
        feeds[value.name] = np.zeros(shape, dtype=onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    outputs = [o.name for o in session.get_outputs()]
    return {name: list(array.shape) for name, array in zip(outputs, session.run(outputs, feeds)) if name in names}


def _attribute(node: onnx.NodeProto, name: str, default):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def _matmul_macs(a: list[int], out: list[int]) -> int:
    """Each output element of a (batched) MatMul is a dot product over the shared dimension."""
    shared = a[-1] if len(a) > 1 else a[0]
    return math.prod(out) * shared


def _gemm_macs(node: onnx.NodeProto, a: list[int], out: list[int]) -> int:
    shared = a[0] if _attribute(node, "transA", 0) else a[1]
    return math.prod(out) * shared


def _conv_macs(weight: list[int], out: list[int]) -> int:
    """Conv weight (C_out, C_in / group, k...): each output element sums C_in / group x kernel products."""
    return math.prod(out) * math.prod(weight[1:])


def _conv_transpose_macs(x: list[int], weight: list[int]) -> int:
    """ConvTranspose weight (C_in, C_out / group, k...): each input element scatters into C_out / group x kernel."""
    return math.prod(x) * math.prod(weight[1:])


def node_macs(node: onnx.NodeProto, shapes: dict[str, list[int]]) -> int | None:
    """Multiply-accumulates of one counted node, or None when a shape it needs is unknown."""
    needed = [*node.input[:2], node.output[0]]
    if any(name not in shapes for name in needed):
        return None
    a, b, out = shapes[node.input[0]], shapes[node.input[1]], shapes[node.output[0]]
    if node.op_type == "MatMul":
        return _matmul_macs(a, out)
    if node.op_type == "Gemm":
        return _gemm_macs(node, a, out)
    if node.op_type == "Conv":
        return _conv_macs(b, out)
    return _conv_transpose_macs(a, b)


def count_flops(path: Path, dims: dict[str, int] | None = None) -> GraphFlops:
    """FLOPs of one call of the graph at `path` (control-flow branches are not entered: the exports have none)."""
    model = onnx.load(str(path))
    _fix_dims(model, {**DEFAULT_DIMS, **(dims or {})})
    shapes = _shapes(model)
    counted = [node for node in model.graph.node if node.op_type in COUNTED_OPS]
    missing = sorted({n for node in counted for n in (*node.input[:2], node.output[0]) if n not in shapes})
    if missing:
        shapes.update(_measured_shapes(model, missing))
    result = GraphFlops()
    for node in counted:
        macs = node_macs(node, shapes)
        if macs is None:
            result.unknown.append(node.name or node.op_type)
            continue
        result.by_op[node.op_type] = result.by_op.get(node.op_type, 0) + FLOPS_PER_MAC * macs
    return result
