"""NPU precision: the ONNX Runtime imitation of each mode, and the default that keeps the tracker's decisions.

The full study (scripts/precision_study.py, table in docs/ascend.md) runs every
mode on the demo and a random-weight clip; here the demo checkpoint at a small
size is tracked with the imitation of the default precision and must choose
the same mask on every frame as float32, which makes that default the
cheapest mode that keeps the decisions (convert/atc_args.DEFAULT_PRECISION).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from convert.atc_args import DEFAULT_PRECISION
from convert.precision import ATC_PRECISION, KEEP_SENSITIVE_FP32, MODES, imitate, sensitive_nodes
from scripts.precision_study import MIN_BOX_IOU, cheapest_keeping, clip_frames, study

# The colour model does not depend on resolution; 128 px keeps this test to about a minute.
IMAGE_SIZE = 128
NUM_FRAMES = 40
THREADS = 1


@pytest.fixture(scope="module")
def demo_export(demo_checkpoint, tmp_path_factory) -> Path:
    from convert.export_onnx import export

    folder = tmp_path_factory.mktemp("demo_precision")
    export(demo_checkpoint, folder, image_size=IMAGE_SIZE)
    return folder


def test_default_precision_keeps_every_decision_on_the_demo_clip(demo_export):
    frames, box = clip_frames("demo", NUM_FRAMES)
    default_mode = next(mode for mode, atc in ATC_PRECISION.items() if atc == DEFAULT_PRECISION)
    cheaper = list(MODES[: MODES.index(default_mode) + 1])
    reports = study(demo_export, frames, box, modes=cheaper, threads=THREADS)
    chosen = reports[-1]
    assert chosen.keeps_decisions, (chosen.flips, chosen.min_box_iou)
    assert chosen.min_box_iou >= MIN_BOX_IOU and not chosen.flips
    # No cheaper mode keeps them (the default is the first of MODES, or the cheaper ones failed).
    assert ATC_PRECISION[cheapest_keeping(reports)] == DEFAULT_PRECISION
    # The imitation did round: a float16 mode is not float32 in disguise.
    assert max(err for err, _ in chosen.errors.values()) > 0


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
        got = ort.InferenceSession(str(tmp_path / f"{mode}.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
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
