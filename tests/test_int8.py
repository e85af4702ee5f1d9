"""OpenVINO int8 (convert/quantize_int8.py): what it keeps, the decisions it changes, and why the CLI does not offer it.

Design. The quantiser runs once per session on two exports (the demo colour checkpoint and random weights, both at
128 px), calibrated on clips drawn with another seed than the ones tracked here. The tracker then runs each test clip
in both modes with int8 and with ONNX Runtime f32 and compares them as the bf16 tests do (tests/backends.
assert_same_decisions: the same chosen mask on every frame, mask IoU >= 0.95). int8 keeps every decision on the
leave-and-return clip, on the random-weight clip and on the demo clip in samurai mode, but in sam2 mode it flips the
demo clip's near-tie frames after the distractor takeover, where the f32 run picks the green distractor by a small
IoU margin: that is why app/run.py does not offer --precision int8 and only the benchmark runs it. A mutation shows the
check can fail: with the mask decoder quantised too, the random clip's chosen masks change.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest

from acl_models import openvino_runner
from acl_models.base import BackendError
from acl_models.manifest import load_manifest
from acl_models.onnx_runner import OnnxRunner
from app.benchmarks.speed.pairs import available_pairs
from app.media.colour_clip import make_frames as make_demo_frames
from app.samurai.config import load_config
from convert import quantize_int8
from convert.demo_checkpoint import TOKEN_GREEN
from tests.ascend_helpers import linked_copy
from tests.backends import assert_same_decisions, track_clip
from tests.demo_model import TEST_THREADS
from tests.installed import require_module
from tests.script_runs import run_script
from tests.synthetic import make_frames

require_module(openvino_runner.openvino_problem() or quantize_int8.nncf_problem())

# Frames of each calibration clip the session's quantisation uses (the command's default: every frame).
CALIBRATION_FRAMES = 8
RANDOM_CLIP_FRAMES = 32
NO_VNNI = "processor\t: 0\nflags\t\t: fpu sse4_2 avx2 avx512f avx512bw avx512_bf16\n"
WITH_VNNI = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n"


def _needs_int8() -> None:
    """A CPU without VNNI skips the tracking tests, naming why (the hardware decides, as for bf16)."""
    supported = openvino_runner.supported_precisions()
    if "int8" not in supported:
        pytest.skip(f"this CPU has no VNNI int8 dot products (OpenVINO runs {', '.join(supported)} here)")


def _quantised(models: Path, dest: Path) -> Path:
    folder = linked_copy(models, dest)
    quantize_int8.quantize(folder, CALIBRATION_FRAMES, TEST_THREADS)
    return folder


@pytest.fixture(scope="session")
def int8_demo(demo_models, tmp_path_factory) -> Path:
    return _quantised(demo_models, tmp_path_factory.mktemp("int8") / "demo")


@pytest.fixture(scope="session")
def int8_random(export_128, tmp_path_factory) -> Path:
    return _quantised(export_128, tmp_path_factory.mktemp("int8") / "random")


def _clip(name: str, leave_clip) -> tuple[list[np.ndarray], tuple[float, float, float, float]]:
    if name == "leave":
        _, images, boxes = leave_clip
    else:
        images, boxes = make_demo_frames() if name == "demo" else make_frames(RANDOM_CLIP_FRAMES)
    x, y, w, h = boxes[0]
    return images, (x, y, x + w, y + h)


def _runs(models: Path, clip, mode: str) -> tuple[list, list]:
    """(int8 run, f32 ONNX Runtime run) of one clip in one mode."""
    images, box = clip
    config = load_config(None, load_manifest(models).model_size, mode)
    exact = track_clip(models, images, box, config, partial(OnnxRunner, threads=TEST_THREADS))
    int8 = partial(openvino_runner.OpenVinoRunner, precision="int8", threads=TEST_THREADS)
    return track_clip(models, images, box, config, int8), exact


@pytest.mark.parametrize(
    ("clip", "weights", "mode"),
    [("leave", "demo", "sam2"), ("leave", "demo", "samurai"), ("demo", "demo", "samurai"),
     ("random", "random", "sam2"), ("random", "random", "samurai")],
)
def test_int8_keeps_every_decision(request, leave_clip, clip, weights, mode):
    _needs_int8()
    models = request.getfixturevalue(f"int8_{weights}")
    ours, exact = _runs(models, _clip(clip, leave_clip), mode)
    assert [r.state for r in ours] == [r.state for r in exact]
    assert_same_decisions(ours, exact)
    # The quantised graphs ran: int8 rounding moves some mask pixel.
    assert any(not np.array_equal(a.mask, b.mask) for a, b in zip(ours, exact))


def test_int8_flips_the_demo_clips_near_ties_in_sam2_mode(int8_demo, leave_clip):
    """Why the CLI does not offer int8: after the takeover f32 picks the distractor by a small IoU margin (from
    0.007), and int8 features tip some of those frames back to the target."""
    _needs_int8()
    ours, exact = _runs(int8_demo, _clip("demo", leave_clip), "sam2")
    flips = [i for i, (a, b) in enumerate(zip(ours, exact)) if a.mask_index != b.mask_index]
    assert flips
    assert all(exact[i].mask_index == TOKEN_GREEN for i in flips), flips


def test_quantising_the_decoder_too_breaks_the_decision_check(int8_random, tmp_path, monkeypatch):
    """Mutation: the mask decoder quantised as well (its heads decide) must fail the check int8 passes above."""
    _needs_int8()
    folder = linked_copy(int8_random, tmp_path / "decoder_int8")
    for item in int8_random.glob("*_ov_int8.*"):
        (folder / item.name).symlink_to(item)
    quantize_int8.quantize(folder, CALIBRATION_FRAMES, TEST_THREADS, graphs=("mask_decoder",))
    monkeypatch.setattr(openvino_runner, "INT8_GRAPHS", (*openvino_runner.INT8_GRAPHS, "mask_decoder"))
    monkeypatch.setattr(openvino_runner, "F32_GRAPHS", frozenset())
    ours, exact = _runs(folder, _clip("random", None), "sam2")
    with pytest.raises(AssertionError):
        assert_same_decisions(ours, exact)


def test_only_the_quantised_graphs_run_in_int8(int8_demo):
    for name in ("image_encoder", "memory_attention", "memory_encoder", "mask_decoder"):
        with openvino_runner.OpenVinoRunner(int8_demo / f"{name}.onnx", precision="int8", threads=TEST_THREADS) as r:
            assert r.precision == ("int8" if name in openvino_runner.INT8_GRAPHS else "f32"), name
            # The quantised IR keeps the graph's names, which acl_models.bundle.check_runner compares with the manifest.
            assert r.input_names == [i["name"] for i in load_manifest(int8_demo).models[name]["inputs"]]


def test_the_cli_does_not_offer_int8(tmp_path, capsys):
    from app import run

    with pytest.raises(SystemExit) as exit_info:
        run.main(["--video", str(tmp_path), "--bbox", "1,1,4,4", "--precision", "int8"])
    assert exit_info.value.code == run.EXIT_BAD_INPUT
    assert "argument --precision: invalid choice: 'int8'" in capsys.readouterr().err


def test_cpu_without_vnni_is_refused_in_one_line(export_256_variants, tmp_path, monkeypatch, capsys):
    """OpenVINO reports INT8 on every x86 CPU; without a VNNI flag in /proc/cpuinfo int8 is refused, and the
    benchmark skips its row saying why."""
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(NO_VNNI)
    monkeypatch.setattr(openvino_runner, "CPUINFO", cpuinfo)
    assert "int8" not in openvino_runner.supported_precisions()
    with pytest.raises(BackendError) as error:
        openvino_runner.check_precision("int8")
    message = str(error.value)
    assert "\n" not in message and message.startswith("--precision int8: this CPU does not report VNNI int8 dot")
    assert message.endswith("use --precision f32")
    assert available_pairs("onnx:fp32,openvino:int8", export_256_variants) == ["onnx:fp32"]
    assert "skipping openvino:int8: this CPU does not run int8 in OpenVINO" in capsys.readouterr().out
    cpuinfo.write_text(WITH_VNNI)
    assert "int8" in openvino_runner.supported_precisions()


def test_int8_without_quantised_graphs_names_the_command(export_256_variants, capsys):
    """A folder nobody quantised (or exported again since) names the command that makes the graphs."""
    _needs_int8()
    with pytest.raises(BackendError, match=r"has no quantised image_encoder; make it with `python "
                       rf"convert/quantize_int8.py --models {export_256_variants}`"):
        openvino_runner.OpenVinoRunner(export_256_variants / "image_encoder.onnx", precision="int8")
    assert available_pairs("onnx:fp32,openvino:int8", export_256_variants) == ["onnx:fp32"]
    assert "skipping openvino:int8: no quantised graphs (python convert/quantize_int8.py" in capsys.readouterr().out


def test_bench_prints_the_int8_row(int8_random, checkpoint):
    _needs_int8()
    argv = ["--model-dir", str(int8_random), "--frames", "2", "--repeats", "1", "--official", str(checkpoint),
            "--pairs", "onnx:fp32,openvino:int8"]
    done = run_script("bench", *argv)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == {"official", "onnx:fp32", "openvino:int8"}
    flips, min_iou = int(rows["openvino:int8"][-2]), float(rows["openvino:int8"][-1])
    assert flips == 0 and 0.95 <= min_iou <= 1.0
