"""Export SAM 2.1 as four ONNX sub-models plus `.npy` constants and a manifest.

    python convert/export_onnx.py --checkpoint checkpoints/sam2.1_hiera_tiny.pt [--image-size 512]
        [--model-size t|s|b+|l] [--out om_model] [--simplify] [--fp16] [--int8]

Every graph is run in ONNX Runtime right after export and compared with the
official PyTorch computation on random inputs; the script exits non-zero when
an error exceeds its tolerance (see `TOLERANCES`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from loguru import logger

from acl_models.manifest import MANIFEST_FILE, MANIFEST_FORMAT
from convert import op_audit, reference, submodels
from convert.checkpoint import CheckpointError, check_image_size, file_sha256, load_model

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


def _feature_shapes(model) -> dict[str, tuple[int, ...]]:
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


def memory_attention_inputs(model, consts, num_frames: int, num_ptrs: int, generator) -> dict[str, torch.Tensor]:
    """Random memory-attention inputs shaped as the tracker builds them, before padding (the official call's view)."""
    shapes = _feature_shapes(model)
    memory_pos = torch.from_numpy(consts["memory_pos"]) + torch.from_numpy(consts["maskmem_tpos_enc"])[
        :num_frames, :, None, None
    ]
    return {
        "vision_feat": torch.randn(shapes["vision_feat"], generator=generator),
        "vision_pos": torch.from_numpy(consts["vision_pos"]),
        "memory": torch.randn((num_frames, *shapes["memory"][1:]), generator=generator),
        "memory_pos": memory_pos,
        "obj_ptrs": torch.randn((num_ptrs, model.hidden_dim), generator=generator),
        "obj_ptr_offsets": torch.arange(num_ptrs, dtype=torch.float32) / (model.max_obj_ptrs_in_encoder - 1),
    }


def static_memory_attention_inputs(model, inputs: dict[str, torch.Tensor], generator) -> dict[str, torch.Tensor]:
    """`inputs` padded to the graph's static shape with random filler, plus the validity inputs.

    The filler is random rather than zero so that a check proves absent entries are masked out.
    """
    sizes = {"memory": model.num_maskmem, "obj_ptrs": model.max_obj_ptrs_in_encoder}
    owner = {"memory": "memory", "memory_pos": "memory", "obj_ptrs": "obj_ptrs", "obj_ptr_offsets": "obj_ptrs"}
    padded = dict(inputs)
    for name, group in owner.items():
        value = inputs[name]
        filler = torch.randn((sizes[group] - value.shape[0], *value.shape[1:]), generator=generator)
        padded[name] = torch.cat((value, filler))
    for group, valid_name in (("memory", "memory_valid"), ("obj_ptrs", "obj_ptr_valid")):
        valid = torch.zeros(sizes[group])
        valid[: inputs[group].shape[0]] = 1.0
        padded[valid_name] = valid
    return padded


def mask_decoder_inputs(
    model, num_points: int, generator, min_obj_score: float = 0.0, mask_prompt: bool = False
) -> dict[str, torch.Tensor]:
    """Tracking (one padding point), a box (two corners) or clicks (`num_points` labels 0/1), with or without
    a mask prompt of low-res logits."""
    shapes = _feature_shapes(model)
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
    shapes = _feature_shapes(model)
    return {
        "vision_feat": torch.randn(shapes["vision_feat"], generator=generator),
        "mask_logits": 4 * torch.randn(shapes["mask_logits"], generator=generator),
        "object_score_logits": torch.randn((1, 1), generator=generator),
        "binarize": torch.tensor([1.0 if binarize else 0.0]),
    }


def build_submodels(model, consts) -> list[SubModel]:
    g = torch.Generator().manual_seed(0)
    side = model.image_size // model.backbone_stride
    return [
        SubModel(
            "image_encoder",
            submodels.ImageEncoder(model),
            {"image": torch.randn(_feature_shapes(model)["image"], generator=g)},
            {},
        ),
        SubModel(
            "memory_attention",
            submodels.MemoryAttention(model, side),
            static_memory_attention_inputs(model, memory_attention_inputs(model, consts, 3, 5, g), g),
            {},
        ),
        SubModel("memory_encoder", submodels.MemoryEncoder(model), memory_encoder_inputs(model, False, g), {}),
        SubModel(
            "mask_decoder",
            submodels.MaskDecoder(model),
            mask_decoder_inputs(model, 2, g),
            {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}},
        ),
    ]


def official_outputs(model, name: str, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """What the official code computes for these inputs."""
    with torch.no_grad():
        if name == "image_encoder":
            return list(model.forward_image(inputs["image"])["backbone_fpn"])
        if name == "memory_attention":
            return [reference.memory_attention(model, **inputs)]
        if name == "memory_encoder":
            return [reference.memory_encoder(model, **inputs)]
        return list(reference.mask_decoder(model, **inputs))


def verification_cases(model, consts, name: str) -> list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
    """(graph inputs, official inputs) pairs; they differ only for memory attention, which the graph takes padded."""
    g = torch.Generator().manual_seed(1)
    if name == "image_encoder":
        cases = [{"image": torch.randn(_feature_shapes(model)["image"], generator=g)}]
    elif name == "memory_attention":
        # The smallest memory the tracker feeds (mostly padding) and the largest (none).
        pairs = []
        for frames, ptrs in ((1, 1), (model.num_maskmem, model.max_obj_ptrs_in_encoder)):
            official = memory_attention_inputs(model, consts, frames, ptrs, g)
            pairs.append((static_memory_attention_inputs(model, official, g), official))
        return pairs
    elif name == "memory_encoder":
        cases = [memory_encoder_inputs(model, b, g) for b in (False, True)]
    else:
        # Both presence gates the tracker feeds (SAM 2's 0 and SAMURAI's -1), and a correction: clicks with
        # the previous logits as a mask prompt.
        cases = [mask_decoder_inputs(model, n, g, gate, prompt) for n, gate, prompt in ((1, 0.0, False),
                                                                                     (2, -1.0, False), (3, 0.0, True))]
    return [(case, case) for case in cases]


def max_errors(session, inputs, expected, output_names) -> dict[str, tuple[float, float]]:
    """Per output: (max abs error, max abs of the reference)."""
    feeds = {k: v.numpy() for k, v in inputs.items()}
    got = session.run(output_names, feeds)
    result = {}
    for name, ours, ref in zip(output_names, got, expected):
        ref = ref.detach().numpy()
        result[name] = (float(np.max(np.abs(ours.astype(np.float64) - ref))), float(np.max(np.abs(ref))))
    return result


def verify(path: Path, sub: SubModel, model, consts, variant: str) -> dict[str, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = type(sub.module).output_names
    worst: dict[str, float] = {}
    ranges: dict[str, float] = {}
    for feeds, official in verification_cases(model, consts, sub.name):
        expected = official_outputs(model, sub.name, official)
        for out, (err, scale) in max_errors(session, feeds, expected, names).items():
            rel = err / max(scale, 1.0)
            worst[out] = max(worst.get(out, 0.0), err)
            ranges[out] = max(ranges.get(out, 0.0), scale)
            if rel > TOLERANCES[variant]:
                raise ExportError(
                    f"{path.name}: output '{out}' differs from PyTorch by {err:.3g} "
                    f"({rel:.3g} of its range {scale:.3g}), above the {variant} tolerance {TOLERANCES[variant]}"
                )
    for out, err in worst.items():
        logger.info(
            "  {:<28} {:<20} max abs diff {:.3e}  (output range {:.3g}, relative {:.1e})",
            path.name, out, err, ranges[out], err / max(ranges[out], 1.0),
        )
    return worst


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


def export(
    checkpoint: Path,
    out: Path,
    image_size: int = 512,
    model_size: str | None = None,
    simplify_graphs: bool = False,
    fp16: bool = False,
    int8: bool = False,
) -> dict:
    """Export everything into `out`; returns the manifest. Raises CheckpointError / ExportError."""
    check_image_size(image_size)
    started = time.perf_counter()
    model, size = load_model(checkpoint, model_size, image_size)
    out.mkdir(parents=True, exist_ok=True)
    consts = submodels.constants(model)
    variants = ["fp32"] + (["fp16"] if fp16 else []) + (["int8"] if int8 else [])
    models: dict[str, dict] = {}
    errors: dict[str, dict[str, dict[str, float]]] = {}
    subs = build_submodels(model, consts)
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
        for variant in variants[1:]:
            extra = out / f"{sub.name}{VARIANT_SUFFIX[variant]}.onnx"
            (to_fp16 if variant == "fp16" else to_int8)(path, extra)
            errors[sub.name][variant] = verify(extra, sub, model, consts, variant)
            entry["variants"][variant] = extra.name
        if simplify_graphs:
            simplify(path)
        entry.update(describe(path))
        errors[sub.name]["fp32"] = verify(path, sub, model, consts, "fp32")
        models[sub.name] = entry
    for name, value in consts.items():
        np.save(out / f"{name}.npy", value)
    manifest = {
        "format": MANIFEST_FORMAT,
        "model_size": size,
        "image_size": image_size,
        "opset": OPSET,
        "checkpoint": {"file": checkpoint.name, "sha256": file_sha256(checkpoint)},
        "image_input": {"dtype": "float32", "layout": "NCHW", "colour": "RGB", "normalised": "(x/255 - mean) / std"},
        "models": models,
        "constants": {
            name: {"file": f"{name}.npy", "shape": list(v.shape), "dtype": str(v.dtype)} for name, v in consts.items()
        },
        "hyper": hyper_parameters(model),
        "max_abs_errors": errors,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    logger.info("exported hiera-{} at {} px to {} in {:.1f}s", size, image_size, out, time.perf_counter() - started)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export SAM 2.1 to ONNX sub-models for the tracker")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--model-size", choices=["t", "s", "b+", "l"], help="default: from file name or weights")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("om_model"))
    parser.add_argument("--simplify", action="store_true", help="run onnxslim on the fp32 graphs")
    parser.add_argument("--fp16", action="store_true", help="also write *_fp16.onnx (float32 I/O)")
    parser.add_argument("--int8", action="store_true", help="also write *_int8.onnx (dynamic MatMul/Gemm quantisation)")
    args = parser.parse_args(argv)
    try:
        export(args.checkpoint, args.out, args.image_size, args.model_size, args.simplify, args.fp16, args.int8)
    except (CheckpointError, ExportError) as exc:
        logger.error("{}", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
