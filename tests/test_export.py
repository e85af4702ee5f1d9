"""Export of SAM 2.1 to ONNX: parity with the official PyTorch modules, manifest, constants, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from sam2.modeling.sam2_base import NO_OBJ_SCORE

from convert import reference, submodels
from convert.checkpoint import load_model, read_state_dict
from convert.export_onnx import (
    TOLERANCES,
    ExportError,
    build_submodels,
    mask_decoder_inputs,
    memory_attention_inputs,
    memory_encoder_inputs,
    official_outputs,
    static_memory_attention_inputs,
    verification_cases,
    verify,
)

# fp32 graphs redo the same float32 arithmetic in another order; 1e-4 absolute on
# outputs of magnitude ~1-10 is about 100 ulps of headroom (see export_onnx.TOLERANCES).
FP32_ATOL = 1e-4
SUBMODELS = ["image_encoder", "memory_attention", "memory_encoder", "mask_decoder"]
EXPORT_DOC = Path(__file__).resolve().parent.parent / "docs" / "export.md"
# docs/export.md: "fails above `1e-4` of the output's range for fp32 (`5e-2` fp16, `2.5e-1` int8, ..."
DOCUMENTED_TOLERANCES = re.compile(
    r"fails above `([^`]+)` of the output's range for\s+fp32 \(`([^`]+)` fp16, `([^`]+)` int8")


def _session(folder, name):
    return ort.InferenceSession(str(folder / f"{name}.onnx"), providers=["CPUExecutionProvider"])


def _run(folder, name, inputs):
    return _session(folder, name).run(None, {k: v.numpy() for k, v in inputs.items()})


@pytest.fixture(scope="module")
def consts_512(export_512):
    return {p.stem: np.load(p) for p in export_512.glob("*.npy")}


def test_image_encoder_matches_official(export_512, torch_model_512):
    image = torch.randn(1, 3, 512, 512, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = torch_model_512.forward_image(image)["backbone_fpn"]
    got = _run(export_512, "image_encoder", {"image": image})
    for ours, ref in zip(got, expected):
        assert ours.shape == tuple(ref.shape)
        assert np.abs(ours - ref.numpy()).max() <= FP32_ATOL


@pytest.mark.parametrize("num_frames", [1, 4, 7])
@pytest.mark.parametrize("num_ptrs", [1, 8, 16])
def test_memory_attention_matches_complex_rope(export_512, torch_model_512, consts_512, num_frames, num_ptrs):
    g = torch.Generator().manual_seed(10 * num_frames + num_ptrs)
    inputs = memory_attention_inputs(torch_model_512, consts_512, num_frames, num_ptrs, g)
    with torch.no_grad():
        expected = reference.memory_attention(torch_model_512, **inputs).numpy()
    (got,) = _run(export_512, "memory_attention", static_memory_attention_inputs(torch_model_512, inputs, g))
    assert np.abs(got - expected).max() <= FP32_ATOL


# The padding and validity masks of every memory size do not depend on the image size: 128 px (as the evaluation
# tests' demo export) keeps the 112 (frames, pointers) pairs to seconds.
STATIC_ATTENTION_SIZE = 128


@pytest.fixture(scope="module")
def static_attention(checkpoint, tmp_path_factory):
    """The exported memory-attention graph (static shape, lighter value path) and its official model."""
    from convert.checkpoint import load_model
    from convert.export_onnx import build_submodels, export_one

    model = load_model(checkpoint, None, STATIC_ATTENTION_SIZE)[0]
    consts = submodels.constants(model)
    sub = next(s for s in build_submodels(model, consts) if s.name == "memory_attention")
    path = tmp_path_factory.mktemp("attention") / "memory_attention.onnx"
    export_one(sub, path)
    return model, consts, _session(path.parent, "memory_attention")


def test_static_memory_attention_equals_the_official_module_for_every_memory_size(static_attention):
    """Every (memory frames, pointers) pair up to num_maskmem x max_obj_ptrs, padding filled with noise."""
    model, consts, session = static_attention
    g = torch.Generator().manual_seed(7)
    worst = 0.0
    for num_frames in range(1, model.num_maskmem + 1):
        for num_ptrs in range(1, model.max_obj_ptrs_in_encoder + 1):
            inputs = memory_attention_inputs(model, consts, num_frames, num_ptrs, g)
            with torch.no_grad():
                expected = reference.memory_attention(model, **inputs).numpy()
            feeds = static_memory_attention_inputs(model, inputs, g)
            (got,) = session.run(None, {k: v.numpy() for k, v in feeds.items()})
            worst = max(worst, float(np.abs(got - expected).max()))
    assert worst <= FP32_ATOL


def test_value_path_reorder_is_exact_algebra(torch_model_512):
    """softmax(QKᵀ)(X W_vᵀ + b_v) W_oᵀ + b_o = softmax(QKᵀ) X (W_o W_v)ᵀ + (W_o b_v + b_o), rows of A summing to one."""
    attn = torch_model_512.memory_attention.layers[0].cross_attn_image
    weight, bias = submodels._value_output_projection(attn)
    g = torch.Generator().manual_seed(3)
    weights = torch.softmax(torch.randn(1, attn.num_heads, 5, 9, generator=g), dim=-1)
    tokens = torch.randn(1, 9, attn.v_proj.in_features, generator=g)
    with torch.no_grad():
        values = attn._separate_heads(attn.v_proj(tokens), attn.num_heads)
        expected = attn.out_proj(attn._recombine_heads(weights @ values))
        mixed = weights @ tokens.unsqueeze(1)
        got = mixed.transpose(1, 2).reshape(1, 5, -1) @ weight + bias
    assert weight.shape == (attn.num_heads * attn.v_proj.in_features, attn.out_proj.out_features)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("binarize", [False, True])
@pytest.mark.parametrize("object_score", [2.0, -2.0])
def test_memory_encoder_matches_official(export_512, torch_model_512, binarize, object_score):
    inputs = memory_encoder_inputs(torch_model_512, binarize, torch.Generator().manual_seed(5))
    inputs["object_score_logits"] = torch.tensor([[object_score]])
    with torch.no_grad():
        expected = reference.memory_encoder(torch_model_512, **inputs).numpy()
    (got,) = _run(export_512, "memory_encoder", inputs)
    assert np.abs(got - expected).max() <= FP32_ATOL


@pytest.mark.parametrize("num_points", [1, 2])
def test_mask_decoder_matches_official_sam_heads(export_512, torch_model_512, num_points):
    """Tokens 1-3 are the official multimask outputs; token 0 is the single-mask output."""
    inputs = mask_decoder_inputs(torch_model_512, num_points, torch.Generator().manual_seed(num_points))
    masks, ious, ptrs, score = _run(export_512, "mask_decoder", inputs)
    with torch.no_grad():
        official = {k: v for k, v in inputs.items() if k != "min_obj_score"}
        heads = reference.sam_heads(torch_model_512, **official, multimask=True)
        multi, multi_ious, best_mask, best_ptr, ref_score = heads
        predicted = torch_model_512.sam_mask_decoder.predict_masks(
            image_embeddings=inputs["pix_feat"],
            image_pe=torch_model_512.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=torch_model_512.sam_prompt_encoder(
                points=(inputs["point_coords"], inputs["point_labels"]), boxes=None, masks=None
            )[0],
            dense_prompt_embeddings=torch_model_512.sam_prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                1, -1, 32, 32
            ),
            repeat_image=False,
            high_res_features=[inputs["high_res_feat0"], inputs["high_res_feat1"]],
        )
    assert np.abs(masks[:, 1:] - multi.numpy()).max() <= FP32_ATOL
    assert np.abs(ious[:, 1:] - multi_ious.numpy()).max() <= FP32_ATOL
    assert np.abs(score - ref_score.numpy()).max() <= FP32_ATOL
    best = int(np.argmax(ious[0, 1:])) + 1
    assert np.abs(ptrs[0, best] - best_ptr.numpy()[0]).max() <= FP32_ATOL
    # Token 0 is the single mask, replaced by SAM 2's "no object" logit when the object score says absent.
    single = predicted[0][:, :1].numpy() if ref_score.item() > 0 else np.full_like(masks[:, :1], NO_OBJ_SCORE)
    assert np.abs(masks[:, :1] - single).max() <= FP32_ATOL


def test_mask_decoder_mask_prompt_is_the_official_one(export_512, torch_model_512):
    """With `mask_valid` 1 the graph's dense prompt is the prompt encoder's downscaled `mask_input` (a correction
    feeds the previous logits so); its multimask outputs and pointer equal the official heads given that mask."""
    inputs = mask_decoder_inputs(torch_model_512, 3, torch.Generator().manual_seed(11), mask_prompt=True)
    masks, ious, ptrs, score = _run(export_512, "mask_decoder", inputs)
    with torch.no_grad():
        official = {k: v for k, v in inputs.items() if k != "min_obj_score"}
        multi, multi_ious, _, best_ptr, ref_score = reference.sam_heads(torch_model_512, **official, multimask=True)
        unprompted = dict(official, mask_valid=torch.tensor([0.0]))
        plain = reference.sam_heads(torch_model_512, **unprompted, multimask=True)[0]
    assert np.abs(masks[:, 1:] - multi.numpy()).max() <= FP32_ATOL
    assert np.abs(ious[:, 1:] - multi_ious.numpy()).max() <= FP32_ATOL
    assert np.abs(score - ref_score.numpy()).max() <= FP32_ATOL
    assert np.abs(ptrs[0, int(np.argmax(ious[0, 1:])) + 1] - best_ptr.numpy()[0]).max() <= FP32_ATOL
    assert np.abs(multi.numpy() - plain.numpy()).max() > 100 * FP32_ATOL  # the mask prompt matters


@pytest.mark.parametrize("side", ["below", "above"])
def test_mask_decoder_gate_is_its_min_obj_score_input(export_512, torch_model_512, side):
    """SAMURAI counts an object present above score -1, SAM 2 above 0: the graph gates at its input.

    With the gate just under the score every mask and pointer is the ungated one; just over it, every
    mask is SAM 2's "no object" logit and every pointer is the learnt no-object pointer
    (SAM 2.1's fixed_no_obj_ptr: the token's pointer is dropped, not mixed).
    """
    m = torch_model_512
    inputs = mask_decoder_inputs(m, 1, torch.Generator().manual_seed(7))
    score = float(_run(export_512, "mask_decoder", inputs)[3][0, 0])
    inputs["min_obj_score"] = torch.tensor([score - 0.25 if side == "below" else score + 0.25])
    masks, _, ptrs, _ = _run(export_512, "mask_decoder", inputs)
    with torch.no_grad():
        sparse = m.sam_prompt_encoder(points=(inputs["point_coords"], inputs["point_labels"]), boxes=None, masks=None)
        raw_masks, _, tokens, _ = m.sam_mask_decoder.predict_masks(
            image_embeddings=inputs["pix_feat"],
            image_pe=m.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse[0],
            dense_prompt_embeddings=sparse[1],
            repeat_image=False,
            high_res_features=[inputs["high_res_feat0"], inputs["high_res_feat1"]],
        )
        raw_ptrs = m.obj_ptr_proj(tokens).numpy()
    no_obj_ptr = m.no_obj_ptr.detach().numpy()
    assert m.fixed_no_obj_ptr
    if side == "below":
        assert np.abs(masks - raw_masks.numpy()).max() <= FP32_ATOL
        assert np.abs(ptrs - raw_ptrs).max() <= FP32_ATOL
    else:
        assert np.all(masks == NO_OBJ_SCORE)
        assert np.abs(ptrs - np.broadcast_to(no_obj_ptr, ptrs.shape)).max() <= FP32_ATOL


def test_manifest_matches_graphs(export_512):
    manifest = json.loads((export_512 / "manifest.json").read_text())
    assert manifest["opset"] == 17 and manifest["image_size"] == 512 and manifest["model_size"] == "t"
    types = {"tensor(float)": "float32", "tensor(int32)": "int32"}
    for name in SUBMODELS:
        entry = manifest["models"][name]
        session = _session(export_512, name)
        for declared, actual in [(entry["inputs"], session.get_inputs()), (entry["outputs"], session.get_outputs())]:
            assert [d["name"] for d in declared] == [a.name for a in actual]
            assert [d["shape"] for d in declared] == [list(a.shape) for a in actual]
            assert [d["dtype"] for d in declared] == [types[a.type] for a in actual]
    for name, meta in manifest["constants"].items():
        assert list(np.load(export_512 / meta["file"]).shape) == meta["shape"]
    attention_inputs = {i["name"]: i["shape"] for i in manifest["models"]["memory_attention"]["inputs"]}
    assert attention_inputs["memory"][0] == manifest["hyper"]["num_maskmem"] == attention_inputs["memory_valid"][0]
    assert attention_inputs["obj_ptrs"][0] == manifest["hyper"]["max_obj_ptrs_in_encoder"] == attention_inputs["obj_ptr_valid"][0]
    assert manifest["models"]["mask_decoder"]["inputs"][3]["shape"][1] == "num_points"


def test_mask_prompt_constants_match_pytorch(consts_512, torch_model_512):
    m = torch_model_512
    np.testing.assert_array_equal(consts_512["mask_downsample_weight"], m.mask_downsample.weight.detach().numpy()[0, 0])
    np.testing.assert_array_equal(consts_512["mask_downsample_bias"], m.mask_downsample.bias.detach().numpy())
    np.testing.assert_array_equal(consts_512["no_obj_ptr"], m.no_obj_ptr.detach().numpy().ravel())


def test_constants_match_pytorch(export_512, torch_model_512, consts_512):
    m = torch_model_512
    with torch.no_grad():
        vision_pos = m.image_encoder(torch.zeros(1, 3, 512, 512))["vision_pos_enc"][-1]
        memory = m.memory_encoder(torch.zeros(1, 256, 32, 32), torch.zeros(1, 1, 512, 512), skip_mask_sigmoid=True)
    np.testing.assert_array_equal(consts_512["vision_pos"], vision_pos.numpy())
    np.testing.assert_array_equal(consts_512["memory_pos"], memory["vision_pos_enc"][-1].numpy())
    np.testing.assert_array_equal(consts_512["maskmem_tpos_enc"], m.maskmem_tpos_enc.detach().numpy()[:, 0, 0])
    np.testing.assert_array_equal(consts_512["no_mem_embed"], m.no_mem_embed.detach().numpy().ravel())


def test_second_size_and_variants(export_256_variants):
    manifest = json.loads((export_256_variants / "manifest.json").read_text())
    assert manifest["image_size"] == 256
    assert manifest["models"]["image_encoder"]["outputs"][2]["shape"] == [1, 256, 16, 16]
    for name in SUBMODELS:
        errors = manifest["max_abs_errors"][name]
        assert set(errors) == {"fp32", "fp16", "int8"}
        assert max(errors["fp32"].values()) <= FP32_ATOL
        for variant in ("fp16", "int8"):
            assert (export_256_variants / manifest["models"][name]["variants"][variant]).is_file()
            # Bounded against each output's range at export time; here: finite, and not the fp32 graph again.
            assert all(np.isfinite(v) for v in errors[variant].values())
            assert max(errors[variant].values()) > max(errors["fp32"].values()), (name, variant, errors)


def _export_cli(*args):
    return subprocess.run(
        [sys.executable, "convert/export_onnx.py", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def resized_checkpoint(checkpoint, tmp_path_factory) -> Path:
    """The hiera-t checkpoint with one more IoU token: every key right, one shape wrong."""
    state_dict = read_state_dict(checkpoint)
    state_dict["sam_mask_decoder.iou_token.weight"] = torch.zeros(2, 256)
    path = tmp_path_factory.mktemp("resized") / "sam2.1_hiera_tiny.pt"
    torch.save({"model": state_dict}, path)
    return path


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d, ck, resized: ["--checkpoint", str(d / "missing.pt")], "not found"),
        (lambda d, ck, resized: ["--checkpoint", str(d / "corrupt.pt")], "corrupt"),
        (lambda d, ck, resized: ["--checkpoint", str(ck), "--model-size", "s"], "holds hiera-t weights"),
        (lambda d, ck, resized: ["--checkpoint", str(ck), "--image-size", "500"], "not a multiple of 32"),
        (lambda d, ck, resized: ["--checkpoint", str(resized)],
         "'sam_mask_decoder.iou_token.weight' has shape (2, 256), SAM 2.1 hiera-t expects (1, 256)"),
    ],
)
def test_bad_inputs_give_one_line_errors(tmp_path, checkpoint, resized_checkpoint, make_args, message):
    (tmp_path / "corrupt.pt").write_bytes(b"not a checkpoint")
    result = _export_cli(*make_args(tmp_path, checkpoint, resized_checkpoint), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and message in errors[0]


def _documented_tolerances() -> dict[str, float]:
    found = DOCUMENTED_TOLERANCES.findall(EXPORT_DOC.read_text())
    assert len(found) == 1, f"docs/export.md should state the verification tolerances once: {found}"
    return dict(zip(("fp32", "fp16", "int8"), map(float, found[0])))


def test_the_documented_tolerances_are_the_constants():
    assert TOLERANCES == _documented_tolerances()


@pytest.fixture(scope="module")
def mask_decoder_128(checkpoint):
    """The mask decoder as export() verifies it at 128 px (export_128's size), and the range of its first output."""
    model = load_model(checkpoint, None, 128)[0]
    consts = submodels.constants(model)
    sub = next(s for s in build_submodels(model, consts) if s.name == "mask_decoder")
    scale = max(float(official_outputs(model, sub.name, official)[0].abs().max())
                for _, official in verification_cases(model, consts, sub.name))
    return model, consts, sub, scale


def _offset_output(src: Path, dst: Path, output: str, offset: float) -> None:
    """The graph with `offset` added to one output: a deliberate error of known size."""
    graph = onnx.load(str(src))
    exact = f"{output}_exact"
    (producer,) = [node for node in graph.graph.node if output in node.output]
    producer.output[list(producer.output).index(output)] = exact
    graph.graph.initializer.append(onnx.numpy_helper.from_array(np.array(offset, np.float32), "deliberate_error"))
    graph.graph.node.append(onnx.helper.make_node("Add", [exact, "deliberate_error"], [output]))
    onnx.save(graph, str(dst))


@pytest.mark.parametrize("times_tolerance, refused", [(10.0, True), (0.3, False)])
def test_an_error_beyond_the_documented_tolerance_is_refused(export_128, mask_decoder_128, tmp_path,
                                                              times_tolerance, refused):
    """Through the export's own verification: an output off by 10x the documented fp32 tolerance (relative to its
    range) stops the export; one off by a third of it passes, with that error reported."""
    model, consts, sub, scale = mask_decoder_128
    output = type(sub.module).output_names[0]
    offset = times_tolerance * _documented_tolerances()["fp32"] * max(scale, 1.0)
    graph = tmp_path / "mask_decoder.onnx"
    _offset_output(export_128 / "mask_decoder.onnx", graph, output, offset)
    if refused:
        with pytest.raises(ExportError, match=f"output '{output}' differs from PyTorch"):
            verify(graph, sub, model, consts, "fp32")
    else:
        worst = verify(graph, sub, model, consts, "fp32")
        assert worst[output] == pytest.approx(offset, rel=0.2)
