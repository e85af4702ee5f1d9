"""NPU precision modes: which nodes stay float32, and ONNX Runtime graphs that imitate each mode.

ATC's default `force_fp16` runs every op in float16. The mode this project
converts with by default (`fp16_fp32_sensitive`, see convert/atc_args.py) keeps
the numerically sensitive nodes in float32 with `--keep_dtype`: normalisation
(LayerNormalization and the ReduceMean/Pow/Sqrt of the hand-written LayerNorm2d),
Softmax, and the rotary-encoding arithmetic of memory attention. The node list
is read from each graph (`sensitive_nodes`), never typed by hand.

`imitate` writes an ONNX graph that rounds values to float16 where the NPU
would hold them in float16: every float initializer and graph input a
float16 node reads, and every float output of a float16 node. Nodes kept in
float32 read those rounded values and compute and emit float32, as ATC's
inserted casts do. Arithmetic inside one op runs in float32 here (the NPU's
matrix unit also accumulates in float32; its vector unit may not), and ATC
fuses ops that this rounds separately, so the imitation rounds at least as
often as the NPU between ops but not inside them. scripts/precision_study.py
runs the tracker on these graphs and compares its decisions with float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Op types whose float16 error grows with their reduction length or exponent range.
SENSITIVE_OP_TYPES = ("LayerNormalization", "ReduceMean", "Pow", "Sqrt", "Softmax")
# convert/submodels.py puts the rotary encoding in a module named `rotary`; the exporter scopes its nodes so.
ROTARY_SCOPE = "/rotary/"
ROTARY_ARITHMETIC = ("Mul", "Sub", "Add")
# What each mode keeps in float32: nothing, the sensitive nodes, or everything; cheapest first.
KEEP_SENSITIVE_FP32 = "fp16_fp32_sensitive"
MODES = ("fp16", KEEP_SENSITIVE_FP32, "fp32")
# The convert/atc_all.sh --precision each mode imitates.
ATC_PRECISION = {"fp16": "force_fp16", KEEP_SENSITIVE_FP32: KEEP_SENSITIVE_FP32, "fp32": "must_keep_origin_dtype"}
_ROUNDED = "__fp16"


def sensitive_nodes(model) -> list[str]:
    """Names of the nodes of an onnx.ModelProto that the `fp16_fp32_sensitive` mode keeps in float32."""
    return [
        node.name
        for node in model.graph.node
        if node.op_type in SENSITIVE_OP_TYPES or (ROTARY_SCOPE in node.name and node.op_type in ROTARY_ARITHMETIC)
    ]


def _float_tensors(model) -> set[str]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    graph = inferred.graph
    values = [*graph.value_info, *graph.input, *graph.output]
    names = {v.name for v in values if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    names |= {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    return names


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
    floats = _float_tensors(model)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
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
        nodes.append(node)
        for i, name in enumerate(node.output):
            if name in floats and node.op_type != "Cast":
                raw = name + "_fp32"
                node.output[i] = raw
                nodes.append(helper.make_node("Cast", [raw], [raw + "_half"], to=onnx.TensorProto.FLOAT16))
                nodes.append(helper.make_node("Cast", [raw + "_half"], [name], to=onnx.TensorProto.FLOAT))
    del graph.node[:]
    graph.node.extend(casts + nodes)
    graph.initializer.extend(new_initializers)
    onnx.save(model, str(dst))
