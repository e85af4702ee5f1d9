"""AclRunner and backend selection on the pyACL emulation (tests/emulated_acl/acl.py), CPU only.

The `.om` files are what tests/fake_atc/atc writes for the commands
convert/atc_args.py generates; the emulation runs their ONNX graphs with ONNX
Runtime, so every sub-model through AclRunner must equal OnnxRunner on the same
inputs. Forced failures check that each pyACL call's error names the call and
that nothing stays allocated.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from loguru import logger

from acl_models.acl_device import AclResource
from acl_models.acl_runner import AclRunner
from acl_models.base import BackendError
from acl_models.onnx_runner import OnnxRunner
from acl_models.select import choose_backend, open_runner, runner_factory
from convert.atc_args import Settings
from convert.export_onnx import MAX_PROMPT_POINTS
from tests.ascend_helpers import SOC, convert, linked_copy

SUBMODELS = ("image_encoder", "memory_attention", "memory_encoder", "mask_decoder")
IMAGE_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGE_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# Both sides run the same graph in ONNX Runtime, with different session options.
ATOL = 1e-5
# --output_type=FP16 / --input_fp16_nodes round inputs and outputs to 11-bit mantissas.
FP16_RTOL = 2e-3


def manifest_entry(model_dir: Path, name: str) -> dict:
    return json.loads((model_dir / "manifest.json").read_text())["models"][name]


# Memory attention's validity inputs: how many leading entries are real comes from `sizes`.
VALIDITY = {"memory_valid": "real_frames", "obj_ptr_valid": "real_pointers"}


def make_inputs(model_dir: Path, name: str, sizes: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs shaped as the tracker builds them; `sizes` fills the dynamic axes and the real memory counts."""
    rng = np.random.default_rng(seed)
    image_size = json.loads((model_dir / "manifest.json").read_text())["image_size"]
    inputs = {}
    for spec in manifest_entry(model_dir, name)["inputs"]:
        shape = [sizes[d] if isinstance(d, str) else d for d in spec["shape"]]
        if spec["name"] in VALIDITY:
            inputs[spec["name"]] = (np.arange(shape[0]) < sizes.get(VALIDITY[spec["name"]], shape[0])).astype(np.float32)
        elif spec["name"] == "point_labels":
            labels = [-1] if shape[1] == 1 else [2, 3] if shape[1] == 2 else [i % 2 for i in range(shape[1])]
            inputs["point_labels"] = np.array([labels], dtype=np.int32)
        elif spec["name"] == "point_coords":
            inputs["point_coords"] = (rng.random(shape) * image_size).astype(np.float32)
        else:
            inputs[spec["name"]] = rng.standard_normal(shape).astype(np.float32)
    return inputs


def assert_same(got: dict, expected: dict, rtol: float = 0.0) -> None:
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name].dtype == np.float32 and got[name].shape == value.shape, name
        np.testing.assert_allclose(got[name], value, rtol=rtol, atol=ATOL + rtol * np.abs(value).max(), err_msg=name)


CASES = [
    ("image_encoder", {}),
    ("memory_encoder", {}),
    ("mask_decoder", {"num_points": 1}),
    ("mask_decoder", {"num_points": 2}),
    *[("memory_attention", {"real_frames": m, "real_pointers": p}) for m, p in [(1, 1), (1, 16), (3, 5), (7, 7), (7, 16)]],
]


@pytest.mark.parametrize("name, sizes", CASES)
def test_submodel_equals_onnx_runtime(acl, om_256, name, sizes):
    inputs = make_inputs(om_256, name, sizes)
    with AclResource() as resource, AclRunner(om_256 / f"{name}.om", resource) as runner:
        reference = OnnxRunner(om_256 / f"{name}.onnx")
        assert runner.input_names == reference.input_names
        assert runner.output_names == reference.output_names
        assert_same(runner.run(inputs), reference.run(inputs))
    assert acl.live() == {}


def test_memory_attention_has_no_gears(acl, om_256):
    """One static graph serves every memory size: no gear input, no set_input_dynamic_dims."""
    reference = OnnxRunner(om_256 / "memory_attention.onnx")
    with AclResource() as resource, AclRunner(om_256 / "memory_attention.om", resource) as runner:
        allocated = acl.live()["allocations"]
        assert allocated == len(reference.input_names) + len(reference.output_names)
        for seed, (m, p) in enumerate([(7, 16), (1, 1), (4, 9)]):
            inputs = make_inputs(om_256, "memory_attention", {"real_frames": m, "real_pointers": p}, seed)
            assert_same(runner.run(inputs), reference.run(inputs))
        assert acl.live()["allocations"] == allocated
    assert acl.executed_gears() == []


def test_one_runner_switches_gears_without_new_buffers(acl, om_256):
    reference = OnnxRunner(om_256 / "mask_decoder.onnx")
    with AclResource() as resource, AclRunner(om_256 / "mask_decoder.om", resource) as runner:
        allocated = acl.live()["allocations"]
        for seed, points in enumerate([2, 1, 1, 2]):
            inputs = make_inputs(om_256, "mask_decoder", {"num_points": points}, seed)
            assert_same(runner.run(inputs), reference.run(inputs))
        assert acl.live()["allocations"] == allocated
    assert acl.executed_gears() == [[2, 2], [1, 1], [1, 1], [2, 2]]


def test_shapes_without_a_gear_are_refused(acl, om_256):
    inputs = make_inputs(om_256, "mask_decoder", {"num_points": MAX_PROMPT_POINTS + 1})
    with AclResource() as resource, AclRunner(om_256 / "mask_decoder.om", resource) as runner:
        with pytest.raises(BackendError, match="mask_decoder.om: no gear for input shapes"):
            runner.run(inputs)


def test_memory_of_another_size_is_refused(acl, om_256):
    inputs = make_inputs(om_256, "memory_attention", {})
    inputs["memory"] = inputs["memory"][:3]
    with AclResource() as resource, AclRunner(om_256 / "memory_attention.om", resource) as runner:
        with pytest.raises(BackendError, match=r"memory_attention.om: input 'memory' has shape \(3, 64, 16, 16\), the model takes \(7, 64, 16, 16\)"):
            runner.run(inputs)


def test_board_run_mode_copies_device_to_device(acl, om_256):
    acl.reset(run_mode=acl.ACL_DEVICE)
    inputs = make_inputs(om_256, "mask_decoder", {"num_points": 1})
    with AclResource() as resource, AclRunner(om_256 / "mask_decoder.om", resource) as runner:
        assert_same(runner.run(inputs), OnnxRunner(om_256 / "mask_decoder.onnx").run(inputs))
    assert set(acl.memcpy_kinds()) == {acl.ACL_MEMCPY_DEVICE_TO_DEVICE}


def test_server_run_mode_copies_across(acl, om_256):
    inputs = make_inputs(om_256, "memory_encoder", {})
    with AclResource() as resource, AclRunner(om_256 / "memory_encoder.om", resource) as runner:
        runner.run(inputs)
    assert set(acl.memcpy_kinds()) == {acl.ACL_MEMCPY_HOST_TO_DEVICE, acl.ACL_MEMCPY_DEVICE_TO_HOST}


def test_fp16_om_still_returns_float32(acl, export_256_variants, tmp_path):
    model_dir = convert(
        linked_copy(export_256_variants, tmp_path / "fp16"), Settings(SOC), "memory_encoder",
        ("--output_type=FP16", "--input_fp16_nodes=vision_feat;mask_logits"),
    )
    inputs = make_inputs(model_dir, "memory_encoder", {})
    expected = OnnxRunner(model_dir / "memory_encoder.onnx").run(
        {k: v.astype(np.float16).astype(np.float32) if k in ("vision_feat", "mask_logits") else v for k, v in inputs.items()}
    )
    with AclResource() as resource, AclRunner(model_dir / "memory_encoder.om", resource) as runner:
        assert_same(runner.run(inputs), expected, rtol=FP16_RTOL)


@pytest.fixture(scope="module")
def om_256_aipp(export_256_variants, tmp_path_factory) -> Path:
    """Every sub-model converted once, the encoder with AIPP (256 px: AIPP does not depend on the size)."""
    return convert(linked_copy(export_256_variants, tmp_path_factory.mktemp("acl") / "aipp"), Settings(SOC, aipp=True))


def test_aipp_encoder_takes_uint8_pixels(acl, om_256_aipp):
    model_dir = om_256_aipp
    size = json.loads((model_dir / "manifest.json").read_text())["image_size"]
    pixels = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    normalised = ((pixels / np.float32(255) - IMAGE_MEAN) / IMAGE_STD).transpose(0, 3, 1, 2).astype(np.float32)
    expected = OnnxRunner(model_dir / "image_encoder.onnx").run({"image": normalised})
    with AclResource() as resource, AclRunner(model_dir / "image_encoder.om", resource) as runner:
        assert runner.takes_pixels
        assert_same(runner.run({"image": pixels}), expected, rtol=1e-4)
        with pytest.raises(BackendError, match="uint8 RGB pixels, NHWC"):
            runner.run({"image": normalised})


def track_logits(model_dir: Path, backend: str, num_frames: int) -> list[np.ndarray]:
    """Low-res logits of the tracker on a generated clip, with every sub-model on `backend`."""
    from app.samurai.config import TrackerConfig
    from acl_models.bundle import open_bundle_with
    from app.samurai.tracker import SamuraiTracker
    from tests.synthetic import make_frames

    frames, boxes = make_frames(num_frames)
    x, y, w, h = boxes[0]
    with open_bundle_with(model_dir, runner_factory(backend, model_dir)) as bundle:
        tracker = SamuraiTracker(bundle, TrackerConfig(), num_frames=num_frames)
        return [tracker.step(i, f, (x, y, x + w, y + h) if i == 0 else None).low_res_logits for i, f in enumerate(frames)]


def test_tracker_feeds_pixels_to_an_aipp_encoder(acl, om_256_aipp):
    """With AIPP the encoder normalises on the device; the tracker's masks stay those of ONNX Runtime."""
    model_dir = om_256_aipp
    for ours, expected in zip(track_logits(model_dir, "acl", 3), track_logits(model_dir, "onnx", 3)):
        np.testing.assert_allclose(ours, expected, atol=1e-3)


BAD_INPUTS = [
    ("wrong shape", lambda good: {**good, "vision_feat": np.zeros((1, 256, 32, 33), np.float32)}, "has shape"),
    ("missing", lambda good: {k: v for k, v in good.items() if k != "binarize"}, "got inputs"),
    ("unknown", lambda good: {**good, "extra": np.zeros(1, np.float32)}, "got inputs"),
    ("complex for a float", lambda good: {**good, "binarize": np.zeros(1, np.complex64)}, "model takes float32"),
]


@pytest.mark.parametrize("case, change, says", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_inputs_are_named(acl, om_256, case, change, says):
    feeds = change(make_inputs(om_256, "memory_encoder", {}))
    with AclResource() as resource, AclRunner(om_256 / "memory_encoder.om", resource) as runner:
        with pytest.raises(BackendError, match=says):
            runner.run(feeds)


def test_close_is_idempotent_and_resource_closes_its_runners(acl, om_256):
    resource = AclResource()
    first = AclRunner(om_256 / "memory_encoder.om", resource)
    AclRunner(om_256 / "mask_decoder.om", resource)
    first.close()
    first.close()
    with pytest.raises(BackendError, match="was closed"):
        first.run(make_inputs(om_256, "memory_encoder", {}))
    resource.close()  # closes mask_decoder.om, then the device
    resource.close()
    assert acl.live() == {}
    with pytest.raises(BackendError, match="is closed"):
        AclRunner(om_256 / "memory_encoder.om", resource)


def test_pyacl_initialised_by_someone_else_is_left_initialised(acl, om_256):
    assert acl.init() == 0  # e.g. torch_npu did it
    with AclResource() as resource, AclRunner(om_256 / "memory_encoder.om", resource) as runner:
        runner.run(make_inputs(om_256, "memory_encoder", {}))
    assert acl.live() == {"initialized": 1}


# (call, how many earlier calls of it succeed). The mask decoder has 5 inputs plus
# the gear input, so copy 5 is the first output copy and malloc 6 the first output buffer.
SETUP_AND_RUN_CALLS = [
    ("acl.init", 0), ("acl.rt.set_device", 0), ("acl.rt.create_context", 0), ("acl.rt.create_stream", 0),
    ("acl.rt.get_run_mode", 0), ("acl.mdl.load_from_file", 0), ("acl.mdl.create_desc", 0), ("acl.mdl.get_desc", 0),
    ("acl.mdl.get_num_inputs", 0), ("acl.mdl.get_num_outputs", 0), ("acl.mdl.get_input_dims", 0),
    ("acl.mdl.get_input_dims", 5), ("acl.mdl.get_input_data_type", 2), ("acl.mdl.get_input_size_by_index", 1),
    ("acl.mdl.get_output_dims", 0), ("acl.mdl.get_output_data_type", 0), ("acl.mdl.get_output_size_by_index", 0),
    ("acl.mdl.get_input_index_by_name", 0), ("acl.mdl.get_input_dynamic_gear_count", 0),
    ("acl.mdl.get_input_dynamic_dims", 0), ("acl.mdl.create_dataset", 0), ("acl.mdl.create_dataset", 1),
    ("acl.rt.malloc", 0), ("acl.rt.malloc", 6), ("acl.create_data_buffer", 3), ("acl.mdl.add_dataset_buffer", 2),
    ("acl.mdl.set_input_dynamic_dims", 0), ("acl.rt.memcpy", 0), ("acl.rt.memcpy", 5), ("acl.mdl.execute", 0),
    ("acl.mdl.get_cur_output_dims", 0),
]
# What each release call would have released; its failure may leave exactly that behind.
TEARDOWN_CALLS = {
    "acl.destroy_data_buffer": "data_buffers",
    "acl.rt.free": "allocations",
    "acl.mdl.destroy_dataset": "datasets",
    "acl.mdl.destroy_desc": "descs",
    "acl.mdl.unload": "models",
    "acl.rt.destroy_stream": "streams",
    "acl.rt.destroy_context": "contexts",
    "acl.rt.reset_device": "devices",
    "acl.finalize": "initialized",
}
BUFFER_KINDS = ("allocations", "data_buffers", "datasets")
FORCED_CODE = 507899


def _use_mask_decoder(model_dir: Path) -> None:
    inputs = make_inputs(model_dir, "mask_decoder", {"num_points": 2})
    with AclResource() as resource:
        with AclRunner(model_dir / "mask_decoder.om", resource) as runner:
            runner.run(inputs)


@pytest.mark.parametrize("call, after", SETUP_AND_RUN_CALLS)
def test_failing_call_is_named_and_nothing_leaks(acl, om_256, call, after):
    acl.fail(call, FORCED_CODE, after)
    with pytest.raises(BackendError, match=re.escape(call)) as error:
        _use_mask_decoder(om_256)
    assert "\n" not in str(error.value)
    assert acl.live() == {}


@pytest.mark.parametrize("call", list(TEARDOWN_CALLS))
def test_failing_release_is_named_and_buffers_are_still_freed(acl, om_256, call):
    acl.fail(call, FORCED_CODE)
    with pytest.raises(BackendError, match=re.escape(f"{call} failed with code {FORCED_CODE}")):
        _use_mask_decoder(om_256)
    leaked = {kind: n for kind, n in acl.live().items() if kind in BUFFER_KINDS}
    expected = {TEARDOWN_CALLS[call]: 1} if TEARDOWN_CALLS[call] in BUFFER_KINDS else {}
    assert leaked == expected


# ---------------------------------------------------------------- backend choice


@pytest.fixture
def logged():
    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}", level="INFO")
    yield lines
    logger.remove(sink)


def test_auto_takes_acl_when_pyacl_and_every_om_are_there(acl, om_256, logged):
    backend, reason = choose_backend(om_256, "auto")
    assert backend == "acl" and "every .om present" in reason
    assert any("backend acl" in line and reason in line for line in logged)


def test_auto_falls_back_to_onnx_when_an_om_is_missing(acl, om_256, tmp_path, logged, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # OpenVINO's place in the order: test_openvino_runner.py
    partial = linked_copy(om_256, tmp_path / "partial")
    for name in SUBMODELS[:-1]:
        (partial / f"{name}.om").symlink_to(om_256 / f"{name}.om")
    backend, reason = choose_backend(partial, "auto")
    assert backend == "onnx" and "mask_decoder.om missing" in reason
    assert any("backend onnx" in line for line in logged)
    with pytest.raises(BackendError, match="mask_decoder.om missing.*atc_all.sh"):
        choose_backend(partial, "acl")


def test_without_pyacl(om_256, monkeypatch):
    monkeypatch.setitem(sys.modules, "acl", None)  # `import acl` raises ImportError
    monkeypatch.setitem(sys.modules, "openvino", None)
    backend, reason = choose_backend(om_256, "auto")
    assert backend == "onnx" and "pyACL is not importable" in reason
    with pytest.raises(BackendError, match="set_env.sh"):
        choose_backend(om_256, "acl")
    with pytest.raises(BackendError, match="pyACL is not importable"):
        AclResource()


def test_explicit_onnx_and_unknown_backends(acl, om_256):
    assert choose_backend(om_256, "onnx") == ("onnx", "requested")
    with pytest.raises(BackendError, match="unknown backend 'tpu'"):
        choose_backend(om_256, "tpu")


def test_open_runner_per_backend(acl, om_256):
    assert isinstance(open_runner(om_256, "memory_encoder", "onnx"), OnnxRunner)
    with pytest.raises(BackendError, match="no resource"):
        open_runner(om_256, "memory_encoder", "acl")
    with AclResource() as resource:
        runner = open_runner(om_256, "memory_encoder", "auto", resource)
        assert isinstance(runner, AclRunner)
    assert acl.live() == {}


def test_runner_factory_resource_closes_with_its_last_runner(acl, om_256):
    factory = runner_factory("acl", om_256)
    runners = [factory(om_256 / f"{name}.onnx") for name in SUBMODELS]
    assert all(isinstance(r, AclRunner) for r in runners)
    for runner in runners:
        runner.close()
    assert acl.live() == {}


def test_tracker_on_the_acl_backend_equals_onnx(acl, om_256):
    """17 frames go from 1 to every memory size the tracker uses (7 frames, 16 pointers), all in one static graph."""
    num_frames = 17
    for ours, expected in zip(track_logits(om_256, "acl", num_frames), track_logits(om_256, "onnx", num_frames)):
        np.testing.assert_allclose(ours, expected, atol=1e-4)
    assert acl.live() == {}
    # Only the mask decoder switches gears: the box on the prompt frame, one padding point after it.
    assert acl.executed_gears() == [[2, 2]] + [[1, 1]] * (num_frames - 1)
