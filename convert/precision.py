"""NPU precision modes: which nodes stay float32, and ONNX Runtime graphs that imitate each mode.

ATC's `force_fp16` runs every op in float16. `fp16_fp32_sensitive`, the mode
convert/atc_all.sh converts with by default (DEFAULT_PRECISION in
convert/atc_args.py, chosen by scripts/precision_study.py), keeps the
numerically sensitive nodes in float32 with `--keep_dtype`: normalisation
(LayerNormalization and the ReduceMean/Pow/Sqrt of the hand-written
LayerNorm2d), Softmax, and the rotary-encoding arithmetic of memory attention.
The node list is read from each graph (`sensitive_nodes`), never typed by hand;
`keep_cost` counts what keeping them costs (float32 nodes and inserted casts).

`imitate` writes an ONNX graph that rounds values to float16 where the NPU
would hold them in float16: every float initializer and graph input a float16
node reads, and every float output of a float16 node. Nodes kept in float32
read those rounded values and compute and emit float32, as ATC's inserted casts
do. Inside one op ONNX Runtime computes in float32, which is right for the
matrix unit (MatMul, Conv accumulate in float32) but hides what a float16
vector unit does inside a reduction. So the float16 modes also decompose the
reducing ops they do not keep (`FP16_REDUCTIONS`: LayerNormalization,
ReduceMean, Softmax) into their steps and round after each one, the sums
included: a sum of squares above 65504 becomes inf, as in a float16
accumulator. Whether ATC fuses LayerNorm into a kernel that accumulates in
float32 depends on the CANN version and chip and cannot be known here, so this
is the worse case for `force_fp16`; nodes named in `--keep_dtype` compute in
float32 (op level). The order of the float16 additions is not imitated: a sum
is rounded once, after summing in float32. For the sums that matter (squares,
exponentials: non-negative terms) every partial sum is at most the total, so a
float16 accumulator overflows exactly when this rounding does.
scripts/precision_study.py runs the tracker on these graphs and compares its
decisions with float32.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Op types whose float16 error grows with their reduction length or exponent range.
SENSITIVE_OP_TYPES = ("LayerNormalization", "ReduceMean", "Pow", "Sqrt", "Softmax")
# The reducing ones among them, which the float16 imitation computes step by step (Pow and Sqrt are elementwise).
FP16_REDUCTIONS = ("LayerNormalization", "ReduceMean", "Softmax")
# convert/submodels.py puts SAM 2.1's rotary encoding in a module named `rotary`, convert/edgetam's memory
# attention in `query_rotary` and `key_rotary`; the exporter scopes their nodes so ("/key_rotary_1/Mul").
ROTARY_SCOPE = re.compile(r"/(?:\w+_)?rotary(?:_\d+)?/")
ROTARY_ARITHMETIC = ("Mul", "Sub", "Add")
# What each mode keeps in float32: nothing, the sensitive nodes, or everything; cheapest first.
KEEP_SENSITIVE_FP32 = "fp16_fp32_sensitive"
MODES = ("fp16", KEEP_SENSITIVE_FP32, "fp32")
# The convert/atc_all.sh --precision each mode imitates.
ATC_PRECISION = {"fp16": "force_fp16", KEEP_SENSITIVE_FP32: KEEP_SENSITIVE_FP32, "fp32": "must_keep_origin_dtype"}
_ROUNDED = "__fp16"
# ONNX moved the axes of ReduceMean / ReduceMax from an attribute to an input at this opset.
_REDUCE_AXES_INPUT_OPSET = 18
# LayerNormalization's default epsilon (ONNX operator spec).
_LAYER_NORM_EPSILON = 1e-5


def sensitive_nodes(model) -> list[str]:
    """Names of the nodes of an onnx.ModelProto that the `fp16_fp32_sensitive` mode keeps in float32."""
    return [
        node.name
        for node in model.graph.node
        if node.op_type in SENSITIVE_OP_TYPES or (ROTARY_SCOPE.search(node.name) and node.op_type in ROTARY_ARITHMETIC)
    ]


@dataclass
class KeepCost:
    """What `--keep_dtype` adds to one graph: nodes run in float32 and the casts ATC inserts around them."""

    nodes: int  # all nodes of the graph
    kept: Counter = field(default_factory=Counter)  # op type -> nodes kept in float32 that run on the device
    folded: int = 0  # kept nodes on constants only (shape arithmetic), which ATC folds at compile time
    casts_in: int = 0  # float16 tensors cast to float32 for a kept node
    casts_out: int = 0  # float32 results of kept nodes cast back to float16 for the next node


def _constant_tensors(model) -> set[str]:
    """Tensors that ATC can compute at compile time: initializers, Constant and Shape outputs, and what follows."""
    graph = model.graph
    const = {t.name for t in graph.initializer}
    for node in graph.node:
        if node.op_type in ("Constant", "Shape") or all(name in const for name in node.input if name):
            const.update(node.output)
    return const


def keep_cost(model) -> KeepCost:
    """Count the float32 nodes and the float16<->float32 casts that keeping `sensitive_nodes(model)` implies."""
    keep = set(sensitive_nodes(model))
    floats = _float_tensors(model)[0]
    const = _constant_tensors(model)
    graph = model.graph
    producer = {out: node.name for node in graph.node for out in node.output}
    cost = KeepCost(nodes=len(graph.node))
    cast_in, cast_out = set(), set()
    for node in graph.node:
        if node.name not in keep:
            for name in node.input:
                if producer.get(name) in keep and name in floats and name not in const:
                    cast_out.add(name)
            continue
        if all(name in const for name in node.input if name):
            cost.folded += 1
            continue
        cost.kept[node.op_type] += 1
        for name in node.input:
            if name in floats and name not in const and producer.get(name) not in keep:
                cast_in.add(name)
    cast_out |= {o.name for o in graph.output if producer.get(o.name) in keep}
    cost.casts_in, cost.casts_out = len(cast_in), len(cast_out)
    return cost


def _float_tensors(model) -> tuple[set[str], dict[str, list[int | str]]]:
    """Names of the float32 tensors of `model` and the inferred shape of every tensor that has one."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    values = [*graph.value_info, *graph.input, *graph.output]
    names = {v.name for v in values if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    names |= {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    shapes = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in values
        if v.type.tensor_type.HasField("shape")
    }
    shapes |= {t.name: list(t.dims) for t in graph.initializer}
    return names, shapes


class _Float16Steps:
    """Builds a reducing op as float32 nodes, each result rounded to float16 (Cast there and back)."""

    def __init__(self, node, opset: int, constants: list):
        self.node, self.opset, self.constants, self.nodes = node, opset, constants, []
        self._count = 0

    def _name(self, step: str) -> str:
        self._count += 1
        return f"{self.node.name}/fp16_{step}_{self._count}"

    def op(self, op_type: str, inputs: list[str], round_result: bool = True, **attrs) -> str:
        from onnx import helper

        name = self._name(op_type)
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return self.round(name) if round_result else name

    def round(self, name: str) -> str:
        from onnx import TensorProto, helper

        half, back = self._name("half"), self._name("rounded")
        self.nodes.append(helper.make_node("Cast", [name], [half], name=half, to=TensorProto.FLOAT16))
        self.nodes.append(helper.make_node("Cast", [half], [back], name=back, to=TensorProto.FLOAT))
        return back

    def constant(self, value: float) -> str:
        """A scalar constant as float16 would hold it."""
        from onnx import numpy_helper

        name = self._name("const")
        self.constants.append(numpy_helper.from_array(np.array(value, np.float16).astype(np.float32), name))
        return name

    def ints(self, values: list[int]) -> str:
        from onnx import numpy_helper

        name = self._name("ints")
        self.constants.append(numpy_helper.from_array(np.array(values, np.int64), name))
        return name

    def reduce_max(self, x: str, axis: int) -> str:
        """An unrounded ReduceMax over `axis`, dims kept (the maximum of float16 values is one of them)."""
        if self.opset >= _REDUCE_AXES_INPUT_OPSET:
            return self.op("ReduceMax", [x, self.ints([axis])], round_result=False, keepdims=1)
        return self.op("ReduceMax", [x], round_result=False, axes=[axis], keepdims=1)

    def sum(self, x: str, axes: list[int]) -> str:
        """The sum over `axes` as a float16 accumulator ends it: rounded once, inf above 65504."""
        return self.op("ReduceSum", [x, self.ints(axes)], keepdims=1)

    def mean(self, x: str, axes: list[int]) -> str:
        """Sum-then-divide, as a float16 vector unit computes a mean: it overflows where the sum does."""
        from onnx import TensorProto

        dims = self.op("Gather", [self.op("Shape", [x], False), self.ints(axes)], False)
        count = self.op("ReduceProd", [dims], False, keepdims=0)
        reciprocal = self.op("Reciprocal", [self.op("Cast", [count], False, to=TensorProto.FLOAT)])
        return self.op("Mul", [self.sum(x, axes), reciprocal])


def _attr(node, name: str, default):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _float16_steps(node, opset: int, ranks: dict[str, int], constants: list, initial: dict) -> list | None:
    """`node` (one of FP16_REDUCTIONS) as rounded steps writing its output; None where its axes are not known."""
    from onnx import helper

    if len([o for o in node.output if o]) > 1:
        return None
    steps = _Float16Steps(node, opset, constants)
    x = node.input[0]
    if node.op_type == "ReduceMean":
        axes = _attr(node, "axes", None)
        if len(node.input) > 1 and node.input[1]:  # axes as an input (opset 18)
            axes = initial.get(node.input[1])
        if axes is None:
            return None
        axes = [int(a) for a in axes]
        y = steps.mean(x, axes)
        if not _attr(node, "keepdims", 1):
            y = steps.op("Squeeze", [y, steps.ints(axes)], round_result=False)
    elif node.op_type == "Softmax":
        axis = _attr(node, "axis", -1)
        exps = steps.op("Exp", [steps.op("Sub", [x, steps.reduce_max(x, axis)])])
        y = steps.op("Div", [exps, steps.sum(exps, [axis])])
    else:  # LayerNormalization over axis .. last
        axis = _attr(node, "axis", -1)
        if axis >= 0 and x not in ranks:
            return None
        axes = list(range(axis, 0)) if axis < 0 else list(range(axis, ranks[x]))
        centred = steps.op("Sub", [x, steps.mean(x, axes)])
        variance = steps.mean(steps.op("Mul", [centred, centred]), axes)
        epsilon = steps.constant(_attr(node, "epsilon", _LAYER_NORM_EPSILON))
        std = steps.op("Sqrt", [steps.op("Add", [variance, epsilon])])
        y = steps.op("Mul", [steps.op("Div", [centred, std]), node.input[1]])
        if len(node.input) > 2 and node.input[2]:
            y = steps.op("Add", [y, node.input[2]])
    steps.nodes.append(helper.make_node("Identity", [y], [node.output[0]], name=f"{node.name}/fp16_out"))
    return steps.nodes


def imitate(src: Path, dst: Path, mode: str) -> None:
    """Write `src` as ONNX Runtime would see it under NPU precision `mode` (one of MODES)."""
    import onnx
    from onnx import helper, numpy_helper

    if mode not in MODES:
        raise ValueError(f"unknown precision mode {mode!r}; use one of {', '.join(MODES)}")
    model = onnx.load(str(src))
    if mode == "fp32":
        onnx.save(model, str(dst))
        return
    keep = set(sensitive_nodes(model)) if mode == KEEP_SENSITIVE_FP32 else set()
    floats, shapes = _float_tensors(model)
    ranks = {name: len(shape) for name, shape in shapes.items()}
    graph = model.graph
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    initializers = {t.name: t for t in graph.initializer}
    initial = {
        name: numpy_helper.to_array(t) for name, t in initializers.items() if t.data_type == onnx.TensorProto.INT64
    }
    sources = {v.name for v in graph.input} | set(initializers)
    new_initializers, casts, rounded_sources = [], [], set()

    def rounded(name: str) -> str:
        """A float16-rounded copy of a graph input or initializer, made once."""
        copy = name + _ROUNDED
        if name not in rounded_sources:
            rounded_sources.add(name)
            if name in initializers:
                value = numpy_helper.to_array(initializers[name])
                new_initializers.append(numpy_helper.from_array(value.astype(np.float16).astype(np.float32), copy))
            else:
                casts.append(helper.make_node("Cast", [name], [name + "_half"], to=onnx.TensorProto.FLOAT16))
                casts.append(helper.make_node("Cast", [name + "_half"], [copy], to=onnx.TensorProto.FLOAT))
        return copy

    nodes = []
    for node in graph.node:
        if node.name in keep:
            nodes.append(node)
            continue
        for i, name in enumerate(node.input):
            if name in sources and name in floats:
                node.input[i] = rounded(name)
        raw = {name: name + "_fp32" for name in node.output if name in floats and node.op_type != "Cast"}
        for i, name in enumerate(node.output):
            node.output[i] = raw.get(name, name)
        steps = None
        if node.op_type in FP16_REDUCTIONS:
            steps = _float16_steps(node, opset, ranks, new_initializers, initial)
        nodes.extend(steps if steps is not None else [node])
        for name, fp32 in raw.items():
            nodes.append(helper.make_node("Cast", [fp32], [fp32 + "_half"], to=onnx.TensorProto.FLOAT16))
            nodes.append(helper.make_node("Cast", [fp32 + "_half"], [name], to=onnx.TensorProto.FLOAT))
    del graph.node[:]
    graph.node.extend(casts + nodes)
    graph.initializer.extend(new_initializers)
    onnx.save(model, str(dst))
