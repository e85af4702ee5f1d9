"""Export SAM 2.1 as four ONNX sub-models plus `.npy` constants and a manifest.

    python convert/export_onnx.py --checkpoint checkpoints/sam2.1_hiera_tiny.pt [--image-size 512]
        [--family sam2.1|edgetam] [--model-size t|s|b+|l] [--out om_model] [--simplify] [--fp16] [--int8]

The family (SAM 2.1 or EdgeTAM) is read from the checkpoint's keys; EdgeTAM's
export is convert/edgetam/export.py.

Every graph is run in ONNX Runtime right after export and compared with the
official PyTorch computation on random inputs; the script exits non-zero when
an error exceeds its tolerance (see `TOLERANCES`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from loguru import logger

from convert import reference, submodels
from convert.graph_export import (
    MAX_PROMPT_POINTS,
    OPSET,
    TOLERANCES,
    VARIANT_SUFFIX,
    ExportError,
    SubModel,
    export_graphs,
    export_one,
    hyper_parameters,
    mask_decoder_inputs,
    max_errors,
    memory_encoder_inputs,
    variants,
    write_folder,
)
from convert.graph_export import feature_shapes as _feature_shapes
from convert.checkpoint import CheckpointError, check_image_size, load_model, read_state_dict
from convert.family import EDGETAM, FAMILIES, SAM21, check_family, family_of


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


def export(
    checkpoint: Path,
    out: Path,
    image_size: int = 512,
    model_size: str | None = None,
    simplify_graphs: bool = False,
    fp16: bool = False,
    int8: bool = False,
    family: str | None = None,
) -> dict:
    """Export everything into `out`; returns the manifest. Raises CheckpointError / ExportError."""
    if check_family(family, family_of(read_state_dict(checkpoint), checkpoint), checkpoint) == EDGETAM:
        from convert.edgetam import export as edgetam_export

        return edgetam_export.export(checkpoint, out, image_size, family, model_size, simplify_graphs, fp16, int8)
    check_image_size(image_size)
    started = time.perf_counter()
    model, size = load_model(checkpoint, model_size, image_size)
    out.mkdir(parents=True, exist_ok=True)
    consts = submodels.constants(model)
    subs = build_submodels(model, consts)
    models, errors = export_graphs(
        subs, out, variants(fp16, int8), simplify_graphs,
        lambda path, sub, variant: verify(path, sub, model, consts, variant),
    )
    manifest = write_folder(out, checkpoint, model, consts, models, errors, family=SAM21, model_size=size)
    logger.info("exported hiera-{} at {} px to {} in {:.1f}s", size, image_size, out, time.perf_counter() - started)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Export SAM 2.1 to ONNX sub-models for the tracker")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--family", choices=FAMILIES, help="model family; default: from the checkpoint's weights")
    parser.add_argument("--model-size", choices=["t", "s", "b+", "l"], help="SAM 2.1 only; default: from file name or weights")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--out", type=Path, default=Path("om_model"))
    parser.add_argument("--simplify", action="store_true", help="run onnxslim on the fp32 graphs")
    parser.add_argument("--fp16", action="store_true", help="also write *_fp16.onnx (float32 I/O)")
    parser.add_argument("--int8", action="store_true", help="also write *_int8.onnx (dynamic MatMul/Gemm quantisation)")
    args = parser.parse_args(argv)
    try:
        export(
            args.checkpoint, args.out, args.image_size, args.model_size, args.simplify, args.fp16, args.int8, args.family
        )
    except (CheckpointError, ExportError) as exc:
        logger.error("{}", exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
