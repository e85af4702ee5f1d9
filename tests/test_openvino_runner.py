"""OpenVINO runner: the four exported graphs equal ONNX Runtime at f32; precision and backend choice.

Design. Every sub-model gets random inputs at the shapes the tracker feeds
(memory attention at both ends of its range: 1 frame/1 pointer and 7/16) and
the OpenVINO outputs must equal ONNX Runtime's within 1e-4 of the output's
range, the export's own fp32 tolerance. The precision check is tested against
a CPU that reports nothing but FP32, so it runs the same on every machine.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from acl_models import openvino_runner
from acl_models.base import BackendError
from acl_models.manifest import SUBMODELS, load_manifest, model_file
from acl_models.onnx_runner import OnnxRunner
from acl_models.select import choose_backend, runner_factory
from tests.installed import require_module

require_module(openvino_runner.openvino_problem())

F32_TOLERANCE = 1e-4
# Memory attention's (frames, pointers) extremes the tracker requests.
MEMORY_CASES = [(1, 1), (7, 16)]
THREADS = 1


def _inputs(runner: OnnxRunner, sizes: dict[str, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random inputs at the graph's declared shapes, symbolic axes taken from `sizes`."""
    feeds = {}
    for name, shape, kind in runner.input_specs():
        dims = [sizes[d] if isinstance(d, str) else d for d in shape]
        if "int32" in kind:
            feeds[name] = rng.integers(0, 4, dims).astype(np.int32)
        elif name.endswith("_valid"):
            # Validity flags of a padded input: the first rows valid, the rest padding.
            feeds[name] = (np.arange(dims[0]) < max(1, dims[0] // 2)).astype(np.float32)
        else:
            feeds[name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


def _cases(name: str) -> list[dict[str, int]]:
    if name == "memory_attention":
        return [{"num_mem_frames": m, "num_obj_ptrs": p} for m, p in MEMORY_CASES]
    return [{"num_points": 2}]


@pytest.mark.parametrize("name", SUBMODELS)
def test_f32_equals_onnx_runtime(export_512, name):
    path = model_file(load_manifest(export_512), name)
    rng = np.random.default_rng(0)
    with OnnxRunner(path, threads=THREADS) as reference, openvino_runner.OpenVinoRunner(path, threads=THREADS) as ours:
        assert ours.input_names == reference.input_names and ours.output_names == reference.output_names
        for sizes in _cases(name):
            feeds = _inputs(reference, sizes, rng)
            expected, got = reference.run(feeds), ours.run(feeds)
            for out in reference.output_names:
                scale = max(float(np.abs(expected[out]).max()), 1.0)
                assert got[out].dtype == expected[out].dtype and got[out].shape == expected[out].shape
                assert np.abs(got[out] - expected[out]).max() <= F32_TOLERANCE * scale, f"{name}.{out} {sizes}"


def test_outputs_survive_the_next_run(export_512):
    """The tracker keeps outputs (features, pointers) while the same request runs again."""
    path = model_file(load_manifest(export_512), "memory_encoder")
    rng = np.random.default_rng(1)
    with OnnxRunner(path, threads=THREADS) as reference, openvino_runner.OpenVinoRunner(path, threads=THREADS) as ours:
        first_feeds, second_feeds = _inputs(reference, {}, rng), _inputs(reference, {}, rng)
        first = ours.run(first_feeds)["maskmem_feat"]
        kept = first.copy()
        ours.run(second_feeds)
        np.testing.assert_array_equal(first, kept)


def test_precision_the_cpu_does_not_report_is_one_error(export_512, monkeypatch):
    monkeypatch.setattr(openvino_runner, "supported_precisions", lambda: ["f32"])
    path = model_file(load_manifest(export_512), "memory_encoder")
    with pytest.raises(BackendError, match="--precision bf16: this CPU does not report BF16.*use --precision f32"):
        openvino_runner.OpenVinoRunner(path, precision="bf16")
    with pytest.raises(BackendError, match="unknown precision 'f8'"):
        openvino_runner.check_precision("f8")


def test_missing_and_closed(export_512, tmp_path):
    with pytest.raises(BackendError, match="not found"):
        openvino_runner.OpenVinoRunner(tmp_path / "nothing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    with pytest.raises(BackendError, match="OpenVINO cannot load"):
        openvino_runner.OpenVinoRunner(bad)
    runner = openvino_runner.OpenVinoRunner(model_file(load_manifest(export_512), "memory_encoder"), threads=THREADS)
    runner.close()
    runner.close()
    with pytest.raises(BackendError, match="was closed"):
        runner.run({})


def test_a_graph_with_part_of_the_cores_is_not_pinned(export_512, monkeypatch):
    """Overlapped, two graphs of one thread each run at once; pinned, OpenVINO put both on the same core."""
    monkeypatch.setattr(openvino_runner.os, "cpu_count", lambda: 2)
    path = model_file(load_manifest(export_512), "memory_encoder")
    for threads, pinned in ((1, False), (2, True), (None, True)):
        with openvino_runner.OpenVinoRunner(path, threads=threads) as runner:
            assert runner._compiled.get_property("ENABLE_CPU_PINNING") is pinned, threads


def test_auto_prefers_openvino_then_onnx_runtime(export_512, monkeypatch):
    monkeypatch.setitem(sys.modules, "acl", None)
    backend, reason = choose_backend(export_512, "auto")
    assert backend == "openvino" and "pyACL is not importable" in reason and "OpenVINO installed" in reason
    assert choose_backend(export_512, "openvino") == ("openvino", "requested")
    monkeypatch.setitem(sys.modules, "openvino", None)
    backend, reason = choose_backend(export_512, "auto")
    assert backend == "onnx" and "OpenVINO is not importable" in reason
    with pytest.raises(BackendError, match="--backend openvino: OpenVINO is not importable.*pip install"):
        choose_backend(export_512, "openvino")


def test_precision_belongs_to_openvino(export_512):
    with pytest.raises(BackendError, match="--precision bf16 is OpenVINO's; on onnx use --onnx-variant"):
        runner_factory("onnx", export_512, precision="bf16")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "openvino", "--precision", "bf16"], "--precision bf16: this cpu does not report bf16"),
        (["--backend", "onnx", "--precision", "bf16"], "--precision bf16 is openvino's; on onnx use --onnx-variant"),
        (["--backend", "openvino", "--onnx-variant", "int8"], "--onnx-variant applies to onnx runtime, not openvino"),
    ],
)
def test_cli_precision_errors_are_one_line(export_512, tmp_path, monkeypatch, capsys, args, message):
    from app import run

    monkeypatch.setattr(openvino_runner, "supported_precisions", lambda: ["f32"])
    code = run.main(["--video", str(tmp_path), "--bbox", "1,1,4,4", "--model-dir", str(export_512),
                     "--output", str(tmp_path / "out"), "--no-display", *args])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ERROR")]
    assert code == run.EXIT_BAD_INPUT and "Traceback" not in err and len(errors) == 1, err
    assert message in errors[0].lower(), errors[0]


def test_decision_heads_stay_f32_under_a_reduced_precision(export_512):
    """A reduced precision the CPU reports applies to the heavy graphs; the mask decoder, whose IoUs and object
    score decide, keeps f32."""
    supported = openvino_runner.supported_precisions()
    reduced = [p for p in openvino_runner.PRECISIONS if p != "f32" and p in supported]
    if not reduced:
        pytest.skip(f"this CPU reports no reduced precision to OpenVINO (it reports {', '.join(supported)})")
    precision = reduced[0]
    hint = openvino_runner.PRECISIONS[precision][0]
    manifest = load_manifest(export_512)
    precisions = {}
    for name in ("mask_decoder", "memory_encoder"):
        with openvino_runner.OpenVinoRunner(model_file(manifest, name), precision=precision) as runner:
            hint_type = runner._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
            precisions[name] = (runner.precision, hint_type)
    assert precisions == {"mask_decoder": ("f32", "f32"), "memory_encoder": (precision, hint)}
