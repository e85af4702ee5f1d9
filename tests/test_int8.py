"""OpenVINO --precision int8: the quantised graphs keep every decision; a CPU without VNNI is refused in one line.

Design. convert/quantize_int8.py quantises the image encoder and memory attention of two exports once per session
(the demo colour checkpoint and random weights, 256 px), calibrated on clips drawn with another seed than the ones
tracked here. The tracker then runs each test clip - the demo clip and the leave-and-return clip on the demo
checkpoint, the textured random clip on random weights - in both modes, with int8 and with ONNX Runtime f32: the same
chosen mask on every frame and mask IoU >= 0.95 per frame (tests/backends.assert_same_decisions, as for bf16). The
mutation check quantises the mask decoder as well, whose IoU and object-score heads decide: the same comparison must
then fail, so these tests can see an int8 that changes decisions.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from acl_models import openvino_runner
from acl_models.base import BackendError
from acl_models.onnx_runner import OnnxRunner
from app.samurai.config import load_config
from app.samurai.model_bundle import load_manifest
from convert import quantize_int8
from scripts.make_demo_clip import make_frames as make_demo_frames
from tests.ascend_helpers import linked_copy
from tests.backends import REDUCED_MIN_MASK_IOU, assert_same_decisions, mask_iou, track_clip
from tests.demo_model import TEST_THREADS
from tests.installed import require_module
from tests.synthetic import make_frames

require_module(openvino_runner.openvino_problem())
require_module(quantize_int8.nncf_problem())

MODES = ("sam2", "samurai")
# Frames of each calibration clip the session's quantisation uses (the command's default is every frame).
CALIBRATION_FRAMES = 12
RANDOM_CLIP_FRAMES = 32


def _int8_mark() -> list[pytest.MarkDecorator]:
    """A CPU without VNNI skips the decision tests, naming why (the hardware decides, as for bf16)."""
    supported = openvino_runner.supported_precisions()
    if "int8" in supported:
        return []
    return [pytest.mark.skip(reason=f"this CPU has no VNNI int8 dot products (OpenVINO runs {', '.join(supported)})")]


INT8 = _int8_mark()


def _quantised(models: Path, dest: Path) -> Path:
    folder = linked_copy(models, dest)
    quantize_int8.quantize(folder, CALIBRATION_FRAMES, TEST_THREADS)
    return folder


@pytest.fixture(scope="session")
def int8_demo(demo_models, tmp_path_factory) -> Path:
    return _quantised(demo_models, tmp_path_factory.mktemp("int8") / "demo")


@pytest.fixture(scope="session")
def int8_random(export_256_variants, tmp_path_factory) -> Path:
    return _quantised(export_256_variants, tmp_path_factory.mktemp("int8") / "random")


def _clip(name: str, leave_clip) -> tuple[list[np.ndarray], tuple[float, float, float, float]]:
    if name == "leave":
        _, images, boxes = leave_clip
    else:
        images, boxes = make_demo_frames() if name == "demo" else make_frames(RANDOM_CLIP_FRAMES)
    x, y, w, h = boxes[0]
    return images, (x, y, x + w, y + h)


def _runs(models: Path, clip, mode: str, int8_factory) -> tuple[list, list]:
    """(int8 run, f32 ONNX Runtime run) of one clip in one mode."""
    images, box = clip
    config = load_config(None, load_manifest(models).model_size, mode)
    exact = track_clip(models, images, box, config, partial(OnnxRunner, threads=TEST_THREADS))
    return track_clip(models, images, box, config, int8_factory), exact


def _int8(threads: int = TEST_THREADS):
    return partial(openvino_runner.OpenVinoRunner, precision="int8", threads=threads)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("clip", "checkpoint_kind"), [("demo", "demo"), ("leave", "demo"), ("random", "random")])
def test_int8_keeps_every_decision(int8_demo, int8_random, leave_clip, clip, checkpoint_kind, mode):
    """int8 chooses the same mask as f32 on every frame of the clip, distractor and absence included."""
    if INT8:
        pytest.skip(INT8[0].kwargs["reason"])
    models = int8_demo if checkpoint_kind == "demo" else int8_random
    ours, exact = _runs(models, _clip(clip, leave_clip), mode, _int8())
    assert [r.state for r in ours] == [r.state for r in exact]
    assert_same_decisions(ours, exact)
    # The quantised graphs ran: int8 rounding moves some mask pixel.
    assert any(not np.array_equal(a.mask, b.mask) for a, b in zip(ours, exact))


def test_int8_runs_only_the_quantised_graphs_in_int8(int8_demo):
    manifest = json.loads((int8_demo / "manifest.json").read_text())
    assert manifest[openvino_runner.INT8_KEY]["graphs"] == list(openvino_runner.INT8_GRAPHS)
    for name in ("image_encoder", "memory_attention", "memory_encoder", "mask_decoder"):
        with _int8()(int8_demo / f"{name}.onnx") as runner:
            assert runner.precision == ("int8" if name in openvino_runner.INT8_GRAPHS else "f32"), name


def test_quantising_the_decoder_breaks_the_decision_check(int8_demo, leave_clip, tmp_path, monkeypatch):
    """Mutation: with the mask decoder quantised too (its heads decide), the check above fails on the demo clips."""
    if INT8:
        pytest.skip(INT8[0].kwargs["reason"])
    folder = linked_copy(int8_demo, tmp_path / "decoder_int8")
    for item in int8_demo.glob("*_ov_int8.*"):
        (folder / item.name).symlink_to(item)
    quantize_int8.quantize(folder, CALIBRATION_FRAMES, TEST_THREADS, graphs=("mask_decoder",))
    monkeypatch.setattr(openvino_runner, "INT8_GRAPHS", (*openvino_runner.INT8_GRAPHS, "mask_decoder"))
    monkeypatch.setattr(openvino_runner, "F32_GRAPHS", frozenset())
    changed = []
    for clip in ("demo", "leave"):
        for mode in MODES:
            ours, exact = _runs(folder, _clip(clip, leave_clip), mode, _int8())
            flips = sum(a.mask_index != b.mask_index for a, b in zip(ours, exact))
            low = min(mask_iou(a.mask, b.mask) for a, b in zip(ours, exact))
            if flips or low < REDUCED_MIN_MASK_IOU:
                changed.append((clip, mode, flips, round(low, 3)))
    assert changed


def test_cpu_without_vnni_gets_one_line(export_512, tmp_path, monkeypatch, capsys):
    """OpenVINO reports INT8 on every x86 CPU; without a VNNI flag in /proc/cpuinfo int8 is refused, in one line."""
    from app import run

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx2 avx512f avx512bw\n")
    monkeypatch.setattr(openvino_runner, "CPUINFO", cpuinfo)
    assert "int8" not in openvino_runner.supported_precisions()
    with pytest.raises(BackendError, match="--precision int8: this CPU does not report VNNI int8 dot products"):
        openvino_runner.check_precision("int8")
    code = run.main(["--video", str(tmp_path), "--bbox", "1,1,4,4", "--model-dir", str(export_512),
                     "--output", str(tmp_path / "out"), "--no-display", "--backend", "openvino", "--precision", "int8"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ERROR")]
    assert code == run.EXIT_BAD_INPUT and "Traceback" not in err and len(errors) == 1, err
    assert "--precision int8: this cpu does not report vnni int8 dot products" in errors[0].lower(), errors[0]
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert "int8" in openvino_runner.supported_precisions()


def test_int8_without_quantised_graphs_is_one_line(export_512, tmp_path, capsys):
    """A folder nobody quantised (or exported again since) names the command that makes the graphs."""
    from app import run

    if INT8:
        pytest.skip(INT8[0].kwargs["reason"])
    code = run.main(["--video", str(tmp_path), "--bbox", "1,1,4,4", "--model-dir", str(export_512),
                     "--output", str(tmp_path / "out"), "--no-display", "--backend", "openvino", "--precision", "int8"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ERROR")]
    assert code == run.EXIT_BAD_INPUT and len(errors) == 1, err
    assert f"python convert/quantize_int8.py --models {export_512}" in errors[0], errors[0]
