"""Activation statistics where float16 is at risk: normalisation inputs and softmax logits of an exported graph.

`ActivationProbe` adds the input of every LayerNormalization, LayerNorm2d
(the ReduceMean that reads the raw tensor) and Softmax node of an ONNX graph
to its outputs, and records over every call:
- the largest |x| and the channels that reach it (the residual stream's
  outliers, since these blocks normalise their residual stream first);
- the largest sum of squared deviations from the mean over the normalised
  axis: what a float16 accumulator would hold before the variance is divided
  out (65504 is float16's largest finite value);
- for Softmax, the largest range (max − min) of one row of logits, masked keys
  (memory attention's −30000 bias) left out.
scripts/make_stress_checkpoint.py prints them per node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FLOAT16_MAX = 65504.0
# Memory attention adds -30000 to the logits of absent keys (convert/submodels.py); they are not logits.
MASKED_LOGIT = -1.0e4
TOP_CHANNELS = 3


@dataclass
class NodeStats:
    node: str
    op_type: str
    tensor: str
    axes: tuple[int, ...]  # the normalised axes
    max_abs: float = 0.0
    channel_max: dict[int, float] = field(default_factory=dict)  # channel -> largest |x| seen, normalised axis
    max_sum_sq: float = 0.0  # largest per-row sum of (x - mean)^2 over the normalised axes
    max_logit_range: float = 0.0  # Softmax only

    def top_channels(self) -> list[tuple[int, float]]:
        return sorted(self.channel_max.items(), key=lambda kv: -kv[1])[:TOP_CHANNELS]

    def update(self, x: np.ndarray) -> None:
        x = x.astype(np.float64)
        self.max_abs = max(self.max_abs, float(np.abs(x).max()))
        rank = x.ndim
        axes = tuple(a % rank for a in self.axes)
        if self.op_type == "Softmax":
            kept = np.where(x > MASKED_LOGIT, x, np.nan)
            spread = np.nanmax(kept, axis=axes) - np.nanmin(kept, axis=axes)
            self.max_logit_range = max(self.max_logit_range, float(np.nanmax(spread)))
            return
        centred = x - x.mean(axis=axes, keepdims=True)
        self.max_sum_sq = max(self.max_sum_sq, float((centred**2).sum(axis=axes).max()))
        channel_axis = axes[0]
        others = tuple(a for a in range(rank) if a != channel_axis)
        for channel, peak in enumerate(np.abs(x).max(axis=others)):
            self.channel_max[channel] = max(self.channel_max.get(channel, 0.0), float(peak))


def _attr(node, name: str, default):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def probed_nodes(model) -> list[NodeStats]:
    """One NodeStats per normalisation or softmax node of an onnx.ModelProto (LayerNorm2d: its first ReduceMean)."""
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    stats = []
    for node in graph.node:
        if node.op_type == "LayerNormalization":
            rank_hint = _attr(node, "axis", -1)
            stats.append(NodeStats(node.name, node.op_type, node.input[0], (rank_hint,)))
        elif node.op_type == "Softmax":
            stats.append(NodeStats(node.name, node.op_type, node.input[0], (_attr(node, "axis", -1),)))
        elif node.op_type == "ReduceMean":
            source = producers.get(node.input[0])
            if source is not None and source.op_type == "Pow":
                continue  # the variance's mean; its input is the square of the first one's
            stats.append(NodeStats(node.name, "LayerNorm2d", node.input[0], tuple(_attr(node, "axes", [1]))))
    return stats


class ActivationProbe:
    """Runs a copy of one graph whose outputs are the probed tensors and keeps their statistics."""

    def __init__(self, path: Path, threads: int | None = None):
        import onnx
        import onnxruntime as ort

        model = onnx.load(str(path))
        self.stats = probed_nodes(model)
        ranks = self._ranks(model)
        for stat in self.stats:
            if stat.op_type == "LayerNormalization":  # normalised axes: axis .. last
                first = stat.axes[0] % ranks[stat.tensor]
                stat.axes = tuple(range(first, ranks[stat.tensor]))
        known = {o.name for o in model.graph.output}
        for name in dict.fromkeys(s.tensor for s in self.stats):
            if name not in known:
                model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self._names = [s.tensor for s in self.stats]

    @staticmethod
    def _ranks(model) -> dict[str, int]:
        import onnx

        inferred = onnx.shape_inference.infer_shapes(model).graph
        return {v.name: len(v.type.tensor_type.shape.dim) for v in [*inferred.value_info, *inferred.input]}

    def record(self, inputs: dict[str, np.ndarray]) -> None:
        feeds = {i.name: inputs[i.name] for i in self._session.get_inputs()}
        for stat, value in zip(self.stats, self._session.run(self._names, feeds)):
            stat.update(value)


def format_stats(model: str, stats: list[NodeStats]) -> list[str]:
    """Markdown rows: model, node, op, max |x|, top channels, largest sum of squares (× float16 max), logit range."""
    rows = []
    for s in stats:
        top = ", ".join(f"{c}: {v:.0f}" for c, v in s.top_channels())
        sum_sq = f"{s.max_sum_sq:.3g} ({s.max_sum_sq / FLOAT16_MAX:.2g}×)" if s.op_type != "Softmax" else ""
        logits = f"{s.max_logit_range:.1f}" if s.op_type == "Softmax" else ""
        rows.append(f"| {model} | {s.node} | {s.op_type} | {s.max_abs:.4g} | {top} | {sum_sq} | {logits} |")
    return rows
