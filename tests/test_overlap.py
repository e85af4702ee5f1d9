"""Overlapped frames: the next frame's image encoder runs while this frame's objects are tracked.

Same arithmetic, other schedule: every figure the tracker hands out (masks,
low-res logits, predicted IoUs, object scores, the chosen token, the Kalman
state) must be bit-identical to the sequential order, on every installed CPU
backend with the cores split as an overlapped run splits them, and on the
emulated pyACL path, whose asynchronous executions only write their outputs when
their stream synchronises (reading them earlier fails the test).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from acl_models.acl_device import AclResource
from acl_models.acl_runner import AclRunner
from acl_models.base import BackendError, ModelRunner, Pending, WrappedRunner
from acl_models.bundle import open_bundle_with
from acl_models.onnx_runner import OnnxRunner
from acl_models.select import runner_factory, split_threads
from app import run
from app.live.control import TrackController
from app.live.pipeline import TrackingLoop
from app.media.colour_clip import STILL_GREEN_SIZE, STILL_GREEN_XY, make_leave_frames
from app.media.live_sources import CameraSource
from app.samurai.config import load_config
from app.samurai.multi_tracker import MultiObjectTracker
from tests.backends import EMULATED_NPU, EXACT_BACKEND_PARAMS, models_for
from tests.fast_camera import FAST_CAMERA_FPS, FastCamera
from tests.script_runs import run_script
from tests.synthetic import make_frames, write_jpeg_folder

RANDOM_FRAMES = 6
LEAVE_FRAMES = 12
# A second object on the random clip: a background patch (x1, y1, x2, y2) away from the moving square.
RANDOM_SECOND_BOX = (200.0, 20.0, 260.0, 70.0)
# On the leave clip: the still green square the red target passes.
GREEN_X, GREEN_Y = STILL_GREEN_XY
LEAVE_SECOND_BOX = (
    float(GREEN_X), float(GREEN_Y), float(GREEN_X + STILL_GREEN_SIZE), float(GREEN_Y + STILL_GREEN_SIZE)
)


def _xyxy(box_xywh) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in box_xywh)
    return (x, y, x + w, y + h)


@pytest.fixture(scope="module")
def random_clip():
    frames, boxes = make_frames(RANDOM_FRAMES)
    return frames, [_xyxy(boxes[0]), RANDOM_SECOND_BOX]


@pytest.fixture(scope="module")
def leave():
    """The leave-and-return clip, in fewer frames (the target still leaves the view and comes back), at 128 px."""
    frames, truth = make_leave_frames(LEAVE_FRAMES)
    return frames, [_xyxy(truth[0]), LEAVE_SECOND_BOX]


# The session export each clip is tracked with: random weights, and the colour model that sees the target leave.
EXPORT_OF_CLIP = {"random_clip": "export_128", "leave": "demo_models"}


def _track(model_dir: Path, frames, boxes, backend: str, overlap: bool) -> list[dict]:
    """Per frame, by object: every figure of its result, on runners opened for this run.

    Overlapped CPU runners split the cores as an overlapped run does; for the NPU, `model_dir` holds the .om files.
    """
    with open_bundle_with(model_dir, runner_factory(backend, model_dir, overlap=overlap)) as bundle:
        config = load_config(None, bundle.manifest.model_size)
        tracker = MultiObjectTracker(bundle, config, num_frames=len(frames))
        for obj_id, box in enumerate(boxes, start=1):
            tracker.add(obj_id, box)
        source = ((i, image, None) for i, image in enumerate(frames))
        return [{obj_id: result for obj_id, result in tracker.track(frame).objects.items()}
                for frame in tracker.encoder.frames(source, overlap)]


def _assert_identical(overlapped: list[dict], sequential: list[dict]) -> None:
    assert len(overlapped) == len(sequential)
    for index, (ours, theirs) in enumerate(zip(overlapped, sequential)):
        assert list(ours) == list(theirs), index
        for obj_id, a in ours.items():
            b = theirs[obj_id]
            where = f"frame {index}, object {obj_id}"
            assert a.frame_idx == b.frame_idx == index, where
            assert a.mask_index == b.mask_index, where
            assert np.array_equal(a.mask, b.mask), where
            assert np.array_equal(a.low_res_logits, b.low_res_logits), where
            assert np.array_equal(a.ious, b.ious), where
            assert a.object_score == b.object_score and a.best_iou == b.best_iou, where
            assert a.kf_score == b.kf_score and a.stable_frames == b.stable_frames, where
            assert (a.kf_mean is None) == (b.kf_mean is None), where
            if a.kf_mean is not None:
                assert np.array_equal(a.kf_mean, b.kf_mean), where
            assert a.memory_frames == b.memory_frames, where


@pytest.mark.parametrize("objects", [1, 2])
@pytest.mark.parametrize("backend", EXACT_BACKEND_PARAMS)
@pytest.mark.parametrize("clip", ["random_clip", "leave"])
def test_overlapped_equals_sequential_bit_for_bit(request, clip, backend, objects):
    frames, boxes = request.getfixturevalue(clip)
    model_dir = models_for(request, backend, EXPORT_OF_CLIP[clip])
    sequential = _track(model_dir, frames, boxes[:objects], backend, overlap=False)
    overlapped = _track(model_dir, frames, boxes[:objects], backend, overlap=True)
    _assert_identical(overlapped, sequential)
    if backend == EMULATED_NPU:
        # Every frame's encoder went through execute_async and a stream synchronisation; nothing is left queued.
        acl = request.getfixturevalue("acl")
        assert acl.async_executions() == len(frames)
        assert acl.live() == {}
    if clip == "leave":  # the run covers the target leaving and coming back, not only easy frames
        scores = [frame[1].object_score for frame in sequential]
        assert min(scores) < 0 < max(scores)


class _Logged(WrappedRunner):
    """A real runner that notes each call, to see the order the tracker calls them in."""

    def __init__(self, runner: ModelRunner, log: list[str]):
        super().__init__(runner)
        self.log = log

    def run(self, inputs):
        self.log.append(f"run {self.path.stem}")
        return self.runner.run(inputs)

    def submit(self, inputs) -> Pending:
        self.log.append(f"submit {self.path.stem}")
        return self.runner.submit(inputs)


def test_next_encoder_is_submitted_before_this_frame_is_tracked(random_clip, export_128):
    model_dir, (frames, boxes) = export_128, random_clip
    log: list[str] = []
    bundle = open_bundle_with(model_dir, runner_factory("onnx", model_dir)).wrap(lambda runner: _Logged(runner, log))
    tracker = MultiObjectTracker(bundle, load_config(None, bundle.manifest.model_size))
    tracker.add(1, boxes[0])
    source = ((i, image, None) for i, image in enumerate(frames[:3]))
    for frame in tracker.encoder.frames(source, overlap=True):
        log.append(f"track {frame.frame_idx}")
        tracker.track(frame)
    tracked = [line for line in log if line.startswith(("track", "submit"))]
    assert tracked == ["submit image_encoder", "submit image_encoder", "track 0", "submit image_encoder", "track 1",
                       "track 2"]
    assert "run image_encoder" not in log


def test_cores_are_split_between_the_encoder_and_the_rest():
    assert split_threads(4, overlap=True) == (2, 2)
    assert split_threads(3, overlap=True) == (2, 1)
    assert split_threads(1, overlap=True) == (1, 1)
    assert split_threads(4, overlap=False) == (4, 4)


# ---------------------------------------------------------------- the ACL runner's asynchronous path


def _encoder_input(model_dir: Path, seed: int) -> dict[str, np.ndarray]:
    size = json.loads((model_dir / "manifest.json").read_text())["image_size"]
    return {"image": np.random.default_rng(seed).standard_normal((1, 3, size, size)).astype(np.float32)}


def _assert_equal_outputs(got: dict, expected: dict) -> None:
    assert list(got) == list(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5, err_msg=name)


def test_outputs_read_before_the_stream_synchronises_fail(acl, om_256):
    inputs = _encoder_input(om_256, 0)
    with AclResource() as resource, AclRunner(om_256 / "image_encoder.om", resource) as runner:
        pending = runner.submit(inputs)
        with pytest.raises(acl.UnsynchronisedAccess, match="before rt.synchronize_stream"):
            runner._copy_outputs()  # what reading the outputs without waiting would do
        _assert_equal_outputs(pending.wait(), OnnxRunner(om_256 / "image_encoder.onnx").run(inputs))
        assert pending.wait() is pending.wait()
    assert acl.async_executions() == 1 and acl.live() == {}


def test_run_while_a_submission_is_in_flight_finishes_it_first(acl, om_256):
    first, second = _encoder_input(om_256, 1), _encoder_input(om_256, 2)
    reference = OnnxRunner(om_256 / "image_encoder.onnx")
    with AclResource() as resource, AclRunner(om_256 / "image_encoder.om", resource) as runner:
        pending = runner.submit(first)
        _assert_equal_outputs(runner.run(second), reference.run(second))
        assert pending.done
        _assert_equal_outputs(pending.wait(), reference.run(first))
        runner.submit(second)  # closed while in flight: close synchronises before it frees the buffers
    assert acl.live() == {}


@pytest.mark.parametrize("call", ["acl.mdl.execute_async", "acl.rt.synchronize_stream"])
def test_failing_async_call_is_named_and_nothing_leaks(acl, om_256, call):
    acl.fail(call, 507011)
    with AclResource() as resource, AclRunner(om_256 / "image_encoder.om", resource) as runner:
        with pytest.raises(BackendError, match=f"{call} failed with code 507011"):
            runner.submit(_encoder_input(om_256, 0)).wait()
    assert acl.live() == {}


# ---------------------------------------------------------------- the loops around the tracker


def test_cli_overlap_gives_the_same_outputs_and_is_off_by_default(demo_models, tmp_path, capsys):
    frames, boxes = make_frames(RANDOM_FRAMES)
    folder = write_jpeg_folder(tmp_path / "frames", frames)
    x, y, w, h = boxes[0]
    outs = {}
    for name, extra in (("overlapped", ["--overlap"]), ("sequential", [])):
        outs[name] = tmp_path / name
        code = run.main(["--video", str(folder), "--bbox", f"{x},{y},{w},{h}", "--bbox", "200,20,60,50",
                         "--model-dir", str(demo_models), "--output", str(outs[name]), "--no-display",
                         "--backend", "onnx", "--save-masks", "--log-decisions", str(outs[name] / "decisions.jsonl"),
                         *extra])
        assert code == 0, capsys.readouterr().err
    for name in ("track_1.txt", "track_2.txt"):
        assert (outs["overlapped"] / name).read_text() == (outs["sequential"] / name).read_text(), name
    # Every decision the same; each line also names its run (its start time), which differs between the two.
    decisions = {name: [{k: v for k, v in json.loads(line).items() if k != "run"}
                        for line in (out / "decisions.jsonl").read_text().splitlines()] for name, out in outs.items()}
    assert decisions["overlapped"] == decisions["sequential"] and decisions["sequential"]
    masks = sorted(p.name for p in (outs["sequential"] / "masks").glob("*.png"))
    assert len(masks) == RANDOM_FRAMES
    for name in masks:
        assert (outs["overlapped"] / "masks" / name).read_bytes() == (outs["sequential"] / "masks" / name).read_bytes()
    summaries = {k: json.loads((v / "summary.json").read_text()) for k, v in outs.items()}
    assert summaries["overlapped"]["overlap"] is True and summaries["sequential"]["overlap"] is False


def _no_tracker() -> None:
    raise AssertionError("the loop built a tracker before it ran (it builds one when it runs)")


def test_live_sources_never_overlap():
    """A live run takes the newest frame when it is free; taking it a per-object pass earlier would age every result."""
    camera = FastCamera(FAST_CAMERA_FPS, make_frames(1)[0][0])
    source = CameraSource(0, capture_factory=lambda _device: camera)
    try:
        loop = TrackingLoop(source, _no_tracker, TrackController(source.size), [], overlap=True)
        assert loop.overlap is False
    finally:
        source.close()


def test_bench_prints_both_schedules_and_checks_they_agree(export_256_variants):
    done = run_script("bench", "--model-dir", export_256_variants, "--overlap", "--pairs", "onnx:fp32", "--frames", 3,
                      "--repeats", 1, "--objects", 1, 2)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.startswith("onnx:fp32")]
    assert [row[1] for row in rows] == ["1", "2"]
    assert all(row[-1] == "yes" for row in rows)
