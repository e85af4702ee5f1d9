"""NPU precision: the ONNX Runtime imitation of each mode, the stress checkpoint, and the default they justify.

The full study (scripts/precision_study.py, table in docs/ascend.md) runs every
mode on the demo, random and stress checkpoints. Here, at 128 px: the stress
checkpoint's LayerNorm inputs are measured (torch hooks, independent of the
exported graphs) and must overflow float16 sums where the random weights do
not; the imitation of force_fp16 must then differ from fp16_fp32_sensitive on
it; and tracking with the imitations must show force_fp16 changing decisions
on the stress clip while the default (convert/atc_args.DEFAULT_PRECISION)
keeps every decision on both clips, which makes it the cheapest that holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from convert.atc_args import DEFAULT_PRECISION
from convert.precision import ATC_PRECISION, KEEP_SENSITIVE_FP32, MODES, imitate, sensitive_nodes
from convert.precision_study import cheapest_keeping, clip_frames, study
from tests.demo_model import IMAGE_SIZE

# The colour model does not depend on resolution, and the stress checkpoint's outliers are
# per channel, not per pixel; 128 px keeps the tracking test to about a minute.
NUM_FRAMES = 40
STRESS_FRAMES = 10
THREADS = 1
# float16's largest finite value; a deviation of 256 or more overflows when squared (256^2 = 65536).
FLOAT16_MAX = 65504.0
FLOAT16_SQUARE_LIMIT = 256.0
# Hiera-t: blocks per stage (sam2.1_hiera_t.yaml); memory attention: 4 layers with norm1..3 and a final norm.
HIERA_T_STAGES = (1, 2, 7, 2)
MEMORY_LAYERS = 4
EDGETAM_SIZE = 256


@pytest.fixture(scope="module")
def edgetam_stress_export(tmp_path_factory) -> Path:
    """EdgeTAM's stress checkpoint exported at 256 px, its smallest size (the perceiver's 16x16 grid)."""
    from convert.export_onnx import export
    from convert.stress_checkpoint import edgetam_stress_state_dict

    folder = tmp_path_factory.mktemp("edgetam_stress")
    checkpoint = folder / "stress_edgetam.pt"
    torch.save({"model": edgetam_stress_state_dict(0)}, checkpoint)
    export(checkpoint, folder / "models", image_size=EDGETAM_SIZE)
    return folder / "models"


@pytest.fixture(scope="module")
def stress_export(stress_checkpoint, tmp_path_factory) -> Path:
    from convert.export_onnx import export

    folder = tmp_path_factory.mktemp("stress_precision")
    export(stress_checkpoint, folder, image_size=IMAGE_SIZE)
    return folder


def _normalised_frame(seed: int) -> np.ndarray:
    """A (1, 3, S, S) textured frame as the image encoder takes it (SAM's mean/std applied)."""
    rng = np.random.default_rng(seed)
    pixels = rng.random((1, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
    mean = np.array([0.485, 0.456, 0.406], np.float32)[None, :, None, None]
    std = np.array([0.229, 0.224, 0.225], np.float32)[None, :, None, None]
    return (pixels - mean) / std


@torch.no_grad()
def _layer_norm_inputs(checkpoint: Path) -> dict[str, tuple[float, float]]:
    """Per nn.LayerNorm of the image encoder and memory attention: (max |x|, max per-token sum of (x - mean)^2)."""
    from convert.checkpoint import load_model

    model = load_model(checkpoint, None, IMAGE_SIZE)[0]
    seen: dict[str, tuple[float, float]] = {}
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.LayerNorm) and name.startswith(("image_encoder.", "memory_attention.")):
            def record(mod, args, name=name):
                x = args[0].double()
                squares = ((x - x.mean(-1, keepdim=True)) ** 2).sum(-1)
                seen[name] = (float(x.abs().max()), float(squares.max()))

            hooks.append(module.register_forward_pre_hook(record))
    out = model.forward_image(torch.from_numpy(_normalised_frame(0)))
    feat = out["backbone_fpn"][-1].flatten(2).permute(2, 0, 1)
    pos = out["vision_pos_enc"][-1].flatten(2).permute(2, 0, 1)
    generator = torch.Generator().manual_seed(0)
    memory = torch.randn(feat.shape[0], 1, model.mem_dim, generator=generator)
    model.memory_attention(curr=feat, curr_pos=pos, memory=memory, memory_pos=torch.zeros_like(memory))
    for hook in hooks:
        hook.remove()
    return seen


def _stated_overflows() -> set[str]:
    """Where convert/stress_checkpoint.py says LayerNorm inputs carry outliers.

    Each Hiera stage's first block adds them and the next stage's projection drops them:
    every norm1 after block 0, and the norm2 of every block that does not start a stage.
    In memory attention, the first layer adds them: every norm of layers 1..3 and the final norm.
    """
    starts = set(np.cumsum((0,) + HIERA_T_STAGES[:-1]).tolist())
    blocks = range(sum(HIERA_T_STAGES))
    trunk = {f"image_encoder.trunk.blocks.{i}.norm1" for i in blocks if i > 0}
    trunk |= {f"image_encoder.trunk.blocks.{i}.norm2" for i in blocks if i not in starts}
    memory = {f"memory_attention.layers.{i}.norm{n}" for i in range(1, MEMORY_LAYERS) for n in (1, 2, 3)}
    return trunk | memory | {"memory_attention.norm"}


def test_stress_checkpoint_overflows_float16_sums_where_stated(stress_checkpoint, checkpoint):
    stress, tame = _layer_norm_inputs(stress_checkpoint), _layer_norm_inputs(checkpoint)
    assert set(stress) == set(tame) and _stated_overflows() <= set(stress)

    def overflowing(stats):
        return {name for name, (peak, sums) in stats.items() if sums > FLOAT16_MAX and peak >= FLOAT16_SQUARE_LIMIT}

    assert overflowing(stress) == _stated_overflows()
    assert not overflowing(tame), overflowing(tame)
    # Hundreds to thousands: every value still fits float16, so rounding between ops alone cannot see the problem.
    peaks = [stress[name][0] for name in _stated_overflows()]
    assert 100 < min(peaks) and max(peaks) < FLOAT16_MAX
    assert max(peak for peak, _ in tame.values()) < FLOAT16_SQUARE_LIMIT / 10


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_stress_script_reports_the_overflowing_layer_norms(stress_export):
    """convert/stress_checkpoint.py's table (2 frames: the second runs memory attention) agrees with the hooks."""
    from convert.stress_checkpoint import activation_report

    rows = [[c.strip() for c in row.strip("|").split("|")] for row in activation_report(stress_export, 2, THREADS)[2:]]
    over = {}
    for model, _, op, peak, _, sums, _ in rows:
        if op == "LayerNormalization" and float(sums.split()[0]) > FLOAT16_MAX:
            over[model] = over.get(model, 0) + 1
            assert FLOAT16_SQUARE_LIMIT <= float(peak) < FLOAT16_MAX
    stated = _stated_overflows()
    assert over == {
        "image_encoder": sum(name.startswith("image_encoder.") for name in stated),
        "memory_attention": sum(name.startswith("memory_attention.") for name in stated),
    }


def _relative_errors(source: Path, feeds: dict, tmp_path: Path) -> dict[str, float]:
    """Largest |difference| from float32 over all outputs, relative to the output's range, per float16 mode."""
    def run(path):
        return _session(path).run(None, feeds)

    expected = run(source)
    errors = {}
    for mode in ("fp16", KEEP_SENSITIVE_FP32):
        imitate(source, tmp_path / f"{source.stem}_{mode}.onnx", mode)
        got = run(tmp_path / f"{source.stem}_{mode}.onnx")
        errors[mode] = max(float(np.abs(g - e).max() / np.abs(e).max()) for g, e in zip(got, expected))
    return errors


def test_force_fp16_imitation_differs_from_sensitive_on_the_stress_checkpoint(stress_export, tmp_path):
    encoder = stress_export / "image_encoder.onnx"
    image_errors = _relative_errors(encoder, {"image": _normalised_frame(1)}, tmp_path)
    session = _session(stress_export / "memory_attention.onnx")
    vision = _session(encoder).run(["vision_feat"], {"image": _normalised_frame(1)})[0]
    rng = np.random.default_rng(0)
    feeds = {}
    for spec in session.get_inputs():
        feeds[spec.name] = rng.standard_normal(spec.shape).astype(np.float32)
        if spec.name.endswith("valid"):
            feeds[spec.name] = np.ones(spec.shape, np.float32)
    feeds["vision_feat"] = vision
    memory_errors = _relative_errors(stress_export / "memory_attention.onnx", feeds, tmp_path)
    for errors in (image_errors, memory_errors):
        # force_fp16's float16 LayerNorm sums overflow: the features are no longer the model's.
        assert errors["fp16"] > 0.5, errors
        assert errors["fp16"] > 10 * errors[KEEP_SENSITIVE_FP32], errors
    # The sensitive mode keeps the features: float16 rounding only.
    assert max(image_errors[KEEP_SENSITIVE_FP32], memory_errors[KEEP_SENSITIVE_FP32]) < 0.25, image_errors


def _layer_norm_graph(path: Path, width: int) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, width])
    scale = helper.make_tensor("scale", TensorProto.FLOAT, [width], np.ones(width).tolist())
    bias = helper.make_tensor("bias", TensorProto.FLOAT, [width], np.full(width, 0.5).tolist())
    node = helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y"], name="ln", axis=-1, epsilon=1e-5)
    graph = helper.make_graph([node], "ln", [x], [y], [scale, bias])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_float16_layer_norm_overflows_where_a_float16_sum_does(tmp_path):
    """One row's squares sum to 35 000 (fits float16), the other's to about 79 000 (does not)."""
    width = 8
    x = np.zeros((2, width), np.float32)
    x[0, 0], x[1, 0] = 200.0, 300.0
    source = _layer_norm_graph(tmp_path / "ln.onnx", width)
    expected = _session(source).run(None, {"x": x})[0]
    got = {}
    for mode in MODES:
        imitate(source, tmp_path / f"{mode}.onnx", mode)
        got[mode] = _session(tmp_path / f"{mode}.onnx").run(None, {"x": x})[0]
    # Reference: the same steps in numpy float16 (mean = sum / n, squared deviations, their mean).
    half = x.astype(np.float16)
    mean = half.sum(axis=1, keepdims=True, dtype=np.float16) / np.float16(width)
    centred = half - mean
    with np.errstate(over="ignore"):
        variance = (centred * centred).sum(axis=1, keepdims=True, dtype=np.float16) / np.float16(width)
        reference = (centred / np.sqrt(variance + np.float16(1e-5)) + np.float16(0.5)).astype(np.float32)
    assert np.isinf(variance[1, 0]) and np.isfinite(variance[0, 0])
    np.testing.assert_allclose(got["fp16"], reference, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(got["fp16"][1], 0.5)  # overflowed: every channel is the bias
    # The kept node computes in float32 from float16-rounded inputs: both rows normalised.
    np.testing.assert_allclose(got[KEEP_SENSITIVE_FP32], expected, rtol=1e-3, atol=1e-3)
    assert got["fp32"].tolist() == expected.tolist()


def test_default_precision_is_the_cheapest_that_keeps_decisions_on_demo_and_stress(demo_models, stress_export):
    default_mode = next(mode for mode, atc in ATC_PRECISION.items() if atc == DEFAULT_PRECISION)
    demo = study(demo_models, *clip_frames("demo", NUM_FRAMES), modes=[default_mode], threads=THREADS)
    stress = study(stress_export, *clip_frames("textured", STRESS_FRAMES), modes=MODES[:2], threads=THREADS)
    by_mode = {r.mode: r for r in stress}
    assert demo[0].keeps_decisions, (demo[0].flips, demo[0].min_box_iou, demo[0].nonfinite)
    # force_fp16 changes what the tracker decides on the stress clip; the sensitive mode does not.
    assert not by_mode["fp16"].keeps_decisions, by_mode["fp16"]
    assert by_mode[KEEP_SENSITIVE_FP32].keeps_decisions, by_mode[KEEP_SENSITIVE_FP32]
    assert ATC_PRECISION[cheapest_keeping(demo + stress)] == DEFAULT_PRECISION
    # The imitation did round: the default is not float32 in disguise.
    assert max(err for err, _ in demo[0].errors.values()) > 0


def test_imitation_rounds_only_outside_the_kept_nodes(export_256_variants, tmp_path):
    source = export_256_variants / "memory_encoder.onnx"
    model = onnx.load(str(source))
    kept = set(sensitive_nodes(model))
    assert kept and all(n.name in kept for n in model.graph.node if n.op_type in ("Sqrt", "ReduceMean", "Pow"))
    rng = np.random.default_rng(0)
    session = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    feeds = {i.name: rng.standard_normal(i.shape).astype(np.float32) for i in session.get_inputs()}
    expected = session.run(None, feeds)[0]
    errors = {}
    for mode in MODES:
        imitate(source, tmp_path / f"{mode}.onnx", mode)
        got = _session(tmp_path / f"{mode}.onnx").run(None, feeds)[0]
        errors[mode] = float(np.abs(got - expected).max())
        casts = sum(n.op_type == "Cast" for n in onnx.load(str(tmp_path / f"{mode}.onnx")).graph.node)
        assert (casts > len(model.graph.node)) == (mode != "fp32")
    assert errors["fp32"] == 0.0
    # float16 rounding: errors well above float32 noise, below the output's scale (random inputs put many
    # values near the encoder's mask threshold, so they reach ~10 % of it here; on tracked frames ~1 %).
    scale = float(np.abs(expected).max())
    for mode in ("fp16", KEEP_SENSITIVE_FP32):
        assert 1e-5 * scale < errors[mode] < 0.25 * scale
    with pytest.raises(ValueError, match="bf8"):
        imitate(source, tmp_path / "x.onnx", "bf8")


def test_default_precision_holds_on_the_edgetam_stress_checkpoint(edgetam_stress_export):
    """EdgeTAM's memory attention carries the outliers from its first layer on: force_fp16's float16 LayerNorm sums
    overflow and change decisions, the default keeps them, so the default stays the cheapest that holds."""
    from convert.stress_checkpoint import activation_report

    rows = [[c.strip() for c in row.strip("|").split("|")] for row in activation_report(edgetam_stress_export, 2, THREADS)[2:]]
    over = {node for model, node, op, _, _, sums, _ in rows
            if op == "LayerNormalization" and float(sums.split()[0]) > FLOAT16_MAX}
    # Layer 0 adds the outliers: layer 1's three norms and the final norm read them.
    assert over == {"/norm1_1/LayerNormalization", "/norm2_1/LayerNormalization", "/norm3_1/LayerNormalization",
                    "/norm/LayerNormalization"}, over
    reports = study(edgetam_stress_export, *clip_frames("textured", STRESS_FRAMES), modes=MODES[:2], threads=THREADS)
    by_mode = {r.mode: r for r in reports}
    assert not by_mode["fp16"].keeps_decisions, by_mode["fp16"]
    assert by_mode[KEEP_SENSITIVE_FP32].keeps_decisions, by_mode[KEEP_SENSITIVE_FP32]
    assert ATC_PRECISION[cheapest_keeping(reports)] == DEFAULT_PRECISION
