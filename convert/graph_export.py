"""Tracing one sub-network to ONNX, its fp16/int8 variants, and checking a graph in ONNX Runtime.

Shared by both model families' exports (convert/export_onnx.py for SAM 2.1,
convert/edgetam/export.py for EdgeTAM): the graphs differ, the way each is
traced, converted, described in the manifest and compared with PyTorch does not.
The example inputs of the mask decoder and memory encoder are here too, since
both families share those two graphs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from loguru import logger

from acl_models.manifest import MANIFEST_FILE, MANIFEST_FORMAT
from convert import op_audit, submodels
from convert.checkpoint import file_sha256

OPSET = 17
# Max |ORT - PyTorch| allowed, relative to max |PyTorch| of that output (floor 1).
# fp32: the same float32 arithmetic in a different order; errors of a few ulps
# through ~20 normalised layers stay near 1e-5, so 1e-4 has 10x headroom.
# fp16: an 11-bit mantissa (rel. 5e-4 per op) compounded through the Hiera trunk
# and attention softmaxes. int8: per-tensor dynamic quantisation of every
# MatMul/Gemm weight; both are reported and only guarded against breakage.
TOLERANCES: dict[str, float] = {"fp32": 1e-4, "fp16": 5e-2, "int8": 2.5e-1}
VARIANT_SUFFIX: dict[str, str] = {"fp32": "", "fp16": "_fp16", "int8": "_int8"}


@dataclass
class SubModel:
    name: str
    module: torch.nn.Module
    example: dict[str, torch.Tensor]
    dynamic_axes: dict[str, dict[int, str]]

    def __post_init__(self) -> None:
        # torch.onnx.export restores the wrapper's train/eval flag on exit, and that
        # flag propagates into the shared official modules: a wrapper left in
        # training mode would switch dropout on in the reference computations.
        self.module.eval()


class ExportError(RuntimeError):
    """An export or verification failure; the message is printed as one line."""


def feature_shapes(model) -> dict[str, tuple[int, ...]]:
    side = model.image_size // model.backbone_stride
    c = model.hidden_dim
    return {
        "image": (1, 3, model.image_size, model.image_size),
        "high_res_feat0": (1, model.sam_mask_decoder.conv_s0.out_channels, 4 * side, 4 * side),
        "high_res_feat1": (1, model.sam_mask_decoder.conv_s1.out_channels, 2 * side, 2 * side),
        "vision_feat": (1, c, side, side),
        "memory": (1, model.mem_dim, side, side),
        "mask_logits": (1, 1, 4 * side, 4 * side),
    }

def mask_decoder_inputs(
    model, num_points: int, generator, min_obj_score: float = 0.0, mask_prompt: bool = False
) -> dict[str, torch.Tensor]:
    """Tracking (one padding point), a box (two corners) or clicks (`num_points` labels 0/1), with or without
    a mask prompt of low-res logits."""
    shapes = feature_shapes(model)
    size = model.image_size
    if num_points == 1:  # tracking: one padding point
        coords, labels = torch.zeros(1, 1, 2), -torch.ones(1, 1, dtype=torch.int32)
    elif num_points == 2:  # a box as two corners
        corners = torch.sort(torch.rand((2, 2), generator=generator) * size, dim=0).values
        coords, labels = corners.reshape(1, 2, 2), torch.tensor([[2, 3]], dtype=torch.int32)
    else:  # positive and negative clicks
        coords = torch.rand((1, num_points, 2), generator=generator) * size
        labels = (torch.arange(num_points, dtype=torch.int32) % 2).reshape(1, num_points)
    return {
        "pix_feat": torch.randn(shapes["vision_feat"], generator=generator),
        "high_res_feat0": torch.randn(shapes["high_res_feat0"], generator=generator),
        "high_res_feat1": torch.randn(shapes["high_res_feat1"], generator=generator),
        "point_coords": coords,
        "point_labels": labels,
        "mask_input": 8 * torch.randn(shapes["mask_logits"], generator=generator),
        "mask_valid": torch.tensor([1.0 if mask_prompt else 0.0]),
        "min_obj_score": torch.tensor([min_obj_score]),
    }


def memory_encoder_inputs(model, binarize: bool, generator) -> dict[str, torch.Tensor]:
    shapes = feature_shapes(model)
    return {
        "vision_feat": torch.randn(shapes["vision_feat"], generator=generator),
        "mask_logits": 4 * torch.randn(shapes["mask_logits"], generator=generator),
        "object_score_logits": torch.randn((1, 1), generator=generator),
        "binarize": torch.tensor([1.0 if binarize else 0.0]),
    }


def max_errors(session, inputs, expected, output_names) -> dict[str, tuple[float, float]]:
    """Per output: (max abs error, max abs of the reference)."""
    feeds = {k: v.numpy() for k, v in inputs.items()}
    got = session.run(output_names, feeds)
    result = {}
    for name, ours, ref in zip(output_names, got, expected):
        ref = ref.detach().numpy()
        result[name] = (float(np.max(np.abs(ours.astype(np.float64) - ref))), float(np.max(np.abs(ref))))
    return result


def export_one(sub: SubModel, path: Path) -> None:
    module = type(sub.module)
    with torch.no_grad():
        torch.onnx.export(
            sub.module,
            tuple(sub.example[n] for n in module.input_names),
            str(path),
            input_names=module.input_names,
            output_names=module.output_names,
            dynamic_axes=sub.dynamic_axes or None,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        outputs = sub.module(**sub.example)
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs,)
    # The tracer leaves some output dims symbolic (e.g. after Hiera's window
    # un-padding) although they are fixed for a fixed image size; write the real
    # values so that the manifest and ATC see static shapes.
    graph = onnx.load(str(path))
    for value, tensor in zip(graph.graph.output, outputs):
        for dim, size in zip(value.type.tensor_type.shape.dim, tensor.shape):
            if dim.dim_param:
                dim.dim_value = int(size)
    onnx.save(graph, str(path))


def simplify(path: Path) -> None:
    import onnxslim

    onnx.save(onnxslim.slim(onnx.load(str(path))), str(path))


def to_fp16(src: Path, dst: Path) -> None:
    """float16 weights and arithmetic with float32 inputs/outputs.

    Two gaps of the converter are closed here, both of which ONNX Runtime
    rejects at load time: Cast nodes the exporter emitted keep `to=float32`
    although their outputs are now declared float16, and a float32 value (a
    graph input or a scalar Constant) that meets float16 values in one node is
    left without a cast.
    """
    from onnxconverter_common import float16

    converted = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    graph = converted.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.output, *graph.input]}
    types.update({t.name: t.data_type for t in graph.initializer})
    for node in graph.node:
        if node.op_type == "Constant":
            types[node.output[0]] = node.attribute[0].t.data_type
    half, single = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    casts: set[str] = set()
    for node in graph.node:
        if node.op_type == "Cast" and types.get(node.output[0]) == half:
            for attribute in node.attribute:
                if attribute.name == "to":
                    attribute.i = half
        input_types = [types.get(name) for name in node.input]
        if node.op_type != "Cast" and half in input_types and single in input_types:
            for i, name in enumerate(node.input):
                if types.get(name) == single:
                    node.input[i] = f"{name}_as_fp16"
                    casts.add(name)
    for name in sorted(casts):
        graph.node.insert(0, onnx.helper.make_node("Cast", [name], [f"{name}_as_fp16"], to=half))
    onnx.save(converted, str(dst))


def to_int8(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8)


_ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT32: "int32", onnx.TensorProto.INT64: "int64"}


def describe(path: Path) -> dict:
    """Names, shapes (dynamic axes by name) and dtypes, read back from the saved graph."""
    graph = onnx.load(str(path), load_external_data=False).graph

    def values(items):
        return [
            {
                "name": v.name,
                "shape": [d.dim_param if d.dim_param else d.dim_value for d in v.type.tensor_type.shape.dim],
                "dtype": _ONNX_DTYPES[v.type.tensor_type.elem_type],
            }
            for v in items
        ]

    return {"inputs": values(graph.input), "outputs": values(graph.output)}


# Points the mask decoder is built for on one frame (ATC compiles one gear per count): a box's two corners
# and clicks, or clicks alone. The tracker refuses more on one frame.
MAX_PROMPT_POINTS = 8


def hyper_parameters(model) -> dict:
    decoder = model.sam_mask_decoder
    return {
        "max_prompt_points": MAX_PROMPT_POINTS,
        "image_size": model.image_size,
        "backbone_stride": model.backbone_stride,
        "hidden_dim": model.hidden_dim,
        "mem_dim": model.mem_dim,
        "num_maskmem": model.num_maskmem,
        "max_obj_ptrs_in_encoder": model.max_obj_ptrs_in_encoder,
        "num_multimask_outputs": decoder.num_multimask_outputs,
        "dynamic_multimask_stability_delta": decoder.dynamic_multimask_stability_delta,
        "dynamic_multimask_stability_thresh": decoder.dynamic_multimask_stability_thresh,
        "fill_hole_area": model.fill_hole_area,
        "sigmoid_scale_for_mem_enc": model.sigmoid_scale_for_mem_enc,
        "sigmoid_bias_for_mem_enc": model.sigmoid_bias_for_mem_enc,
        "no_obj_score": submodels.NO_OBJ_SCORE,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
    }


def variants(fp16: bool, int8: bool) -> list[str]:
    """The precisions to write: fp32 always, first."""
    return ["fp32"] + (["fp16"] if fp16 else []) + (["int8"] if int8 else [])


def export_graphs(
    subs: list[SubModel],
    out: Path,
    precisions: list[str],
    simplify_graphs: bool,
    verify: Callable[[Path, SubModel, str], dict[str, float]],
) -> tuple[dict[str, dict], dict[str, dict[str, dict[str, float]]]]:
    """Trace, audit, convert and verify every sub-model into `out`: (manifest entries, errors per variant)."""
    models: dict[str, dict] = {}
    errors: dict[str, dict[str, dict[str, float]]] = {}
    for index, sub in enumerate(subs, 1):
        logger.info("[{}/{}] exporting {}", index, len(subs), sub.name)
        path = out / f"{sub.name}.onnx"
        export_one(sub, path)
        try:
            op_audit.check(path)
        except op_audit.UnsupportedOpError as exc:
            raise ExportError(str(exc)) from exc
        entry: dict = {"file": path.name, "variants": {}}
        errors[sub.name] = {}
        # Variants are converted from the traced graph: the fp16 converter does not
        # cope with every pattern onnxslim produces.
        for variant in precisions[1:]:
            extra = out / f"{sub.name}{VARIANT_SUFFIX[variant]}.onnx"
            (to_fp16 if variant == "fp16" else to_int8)(path, extra)
            errors[sub.name][variant] = verify(extra, sub, variant)
            entry["variants"][variant] = extra.name
        if simplify_graphs:
            simplify(path)
        entry.update(describe(path))
        errors[sub.name]["fp32"] = verify(path, sub, "fp32")
        models[sub.name] = entry
    return models, errors


def write_folder(out: Path, checkpoint: Path, model, consts: dict[str, np.ndarray], models: dict, errors: dict,
                 **fields) -> dict:
    """Save the constants and `manifest.json` (family-specific `fields` among the common ones); the manifest."""
    for name, value in consts.items():
        np.save(out / f"{name}.npy", value)
    manifest = {
        "format": MANIFEST_FORMAT,
        **{k: fields.pop(k) for k in ("family", "model_size")},
        "image_size": model.image_size,
        "opset": OPSET,
        "checkpoint": {"file": checkpoint.name, "sha256": file_sha256(checkpoint)},
        "image_input": {"dtype": "float32", "layout": "NCHW", "colour": "RGB", "normalised": "(x/255 - mean) / std"},
        "models": models,
        "constants": {
            name: {"file": f"{name}.npy", "shape": list(v.shape), "dtype": str(v.dtype)} for name, v in consts.items()
        },
        "hyper": hyper_parameters(model),
        **fields,
        "max_abs_errors": errors,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return manifest
