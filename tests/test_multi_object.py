"""Several objects on one video behave, object by object, exactly like single-object runs.

Design. The multi-object tracker shares one image encoding per frame and runs
each object's own step on it; nothing else may be shared. So every per-object
output - the mask, the low-res logits bit for bit, the chosen token, the
predicted IoUs, the object score, the Kalman state and stable-frame count, the
memory frames - must equal a single-object run with the same box from the same
frame, on the same ONNX Runtime fp32 sessions. Random weights give objects
that differ (their prompts differ); the colour checkpoint on the leave-and-return
clip gives real Kalman histories, lost frames included, and objects started on
different frames give each one its own history.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acl_models.bundle import ModelBundle, open_bundle_with
from acl_models.onnx_runner import OnnxRunner
from app.media.textured_clip import make_frames
from app.samurai.config import TrackerConfig
from app.samurai.motion_selection import SamuraiParams
from app.samurai.multi_tracker import MultiObjectTracker
from app.samurai.results import FrameResult
from app.samurai.state import ObjectState
from app.samurai.step import step_object
from app.samurai.tracker import SamuraiTracker
from tests.demo_model import TEST_THREADS as DEMO_THREADS

RANDOM_FRAMES = 8
# Boxes (x1, y1, x2, y2) on the random-weight clip: the moving object, then two background patches.
RANDOM_BOXES = {1: None, 2: (200.0, 20.0, 260.0, 70.0), 3: (20.0, 150.0, 100.0, 210.0)}
# A short warm-up so that the random-weight run reaches SAMURAI's Kalman-weighted branch.
FAST_KALMAN = SamuraiParams(stable_frames_threshold=2)


class CountingRunner:
    """A runner that counts its calls."""

    def __init__(self, runner):
        self.runner, self.calls = runner, 0
        self.path, self.input_names, self.output_names = runner.path, runner.input_names, runner.output_names
        self.takes_pixels = runner.takes_pixels

    def run(self, inputs):
        self.calls += 1
        return self.runner.run(inputs)

    def close(self):
        self.runner.close()


def _open(models: Path) -> ModelBundle:
    return open_bundle_with(models, lambda p: OnnxRunner(p, threads=DEMO_THREADS)).wrap(CountingRunner)


def _single(opened: ModelBundle, images, box, start: int, config: TrackerConfig) -> list[FrameResult]:
    tracker = SamuraiTracker(opened, config, num_frames=len(images))
    return [tracker.step(i, images[i], box if i == start else None) for i in range(start, len(images))]


def _multi(opened: ModelBundle, images, boxes: dict[int, tuple], starts: dict[int, int], config: TrackerConfig):
    tracker = MultiObjectTracker(opened, config, num_frames=len(images))
    per_object: dict[int, list[FrameResult]] = {k: [] for k in boxes}
    for i, image in enumerate(images):
        for obj_id, start in starts.items():
            if start == i:
                tracker.add(obj_id, boxes[obj_id])
        for obj_id, result in tracker.step(i, image).objects.items():
            per_object[obj_id].append(result)
    return per_object


def _assert_identical(ours: list[FrameResult], alone: list[FrameResult], label: str) -> None:
    assert len(ours) == len(alone), label
    for a, b in zip(ours, alone):
        where = f"{label}, frame {a.frame_idx}"
        assert a.frame_idx == b.frame_idx, where
        assert a.low_res_logits.tobytes() == b.low_res_logits.tobytes(), where
        assert np.array_equal(a.mask, b.mask), where
        assert (a.mask_index, a.object_score, a.kf_score, a.stable_frames) == (b.mask_index, b.object_score, b.kf_score, b.stable_frames), where
        assert a.ious.tobytes() == b.ious.tobytes(), where
        assert a.memory_frames == b.memory_frames, where
        assert (a.kf_mean is None) == (b.kf_mean is None), where
        if a.kf_mean is not None:
            assert a.kf_mean.tobytes() == b.kf_mean.tobytes(), where


@pytest.fixture(scope="module")
def random_clip():
    frames, boxes = make_frames(RANDOM_FRAMES)
    x, y, w, h = boxes[0]
    return frames, {**RANDOM_BOXES, 1: (float(x), float(y), float(x + w), float(y + h))}


@pytest.fixture(scope="module")
def random_opened(export_128):
    return _open(export_128)


@pytest.mark.parametrize(
    "mode, starts",
    [("samurai", {1: 0, 2: 0}), ("samurai", {1: 0, 2: 0, 3: 3}), ("sam2", {1: 0, 2: 2, 3: 0})],
)
def test_random_weights_multi_equals_single(random_opened, random_clip, mode, starts):
    images, boxes = random_clip
    config = TrackerConfig(mode=mode, samurai=FAST_KALMAN)
    boxes = {k: boxes[k] for k in starts}
    multi = _multi(random_opened, images, boxes, starts, config)
    for obj_id, start in starts.items():
        _assert_identical(multi[obj_id], _single(random_opened, images, boxes[obj_id], start, config), f"object {obj_id}")
    if mode == "samurai":  # the run must reach the Kalman-weighted branch
        assert any(r.kf_score is not None for r in multi[1])
    # Different prompts give different objects: sharing state would not go unnoticed.
    assert not np.array_equal(multi[1][-1].low_res_logits, multi[2][-1].low_res_logits)


def test_one_image_encoder_call_per_frame(random_opened, random_clip):
    images, boxes = random_clip
    runners = random_opened.runners
    before = {name: runner.calls for name, runner in runners.items()}
    _multi(random_opened, images, boxes, {1: 0, 2: 0, 3: 0}, TrackerConfig(samurai=FAST_KALMAN))
    calls = {name: runner.calls - before[name] for name, runner in runners.items()}
    assert calls["image_encoder"] == RANDOM_FRAMES
    assert calls["mask_decoder"] == calls["memory_encoder"] == 3 * RANDOM_FRAMES
    assert calls["memory_attention"] == 3 * (RANDOM_FRAMES - 1)


def test_remove_and_restart(random_opened, random_clip):
    """A dropped object stops; a new box for a tracked object restarts it as a fresh single run from that frame."""
    images, boxes = random_clip
    config = TrackerConfig(samurai=FAST_KALMAN)
    tracker = MultiObjectTracker(random_opened, config, num_frames=len(images))
    tracker.add(1, boxes[1])
    tracker.add(2, boxes[2])
    restarted = []
    for i, image in enumerate(images):
        if i == 2:
            tracker.remove(2)
        if i == 4:
            tracker.add(1, boxes[3])
        results = tracker.step(i, image).objects
        assert list(results) == ([1, 2] if i < 2 else [1])
        if i >= 4:
            restarted.append(results[1])
    _assert_identical(restarted, _single(random_opened, images, boxes[3], 4, config), "restarted object 1")


def _contents(state: ObjectState) -> tuple:
    """Everything an object's state holds, by value (bytes of its arrays, frames of its memories)."""
    memory, motion = state.memory, state.motion

    def entries(kept) -> tuple:
        return tuple((e.frame_idx, e.features.tobytes(), e.obj_ptr.tobytes(), e.best_iou, e.kf_score) for e in kept)

    arrays = tuple(None if a is None else a.tobytes() for a in (motion.mean, motion.cov))
    return (state.prompt_frame, motion.stable_frames, arrays, entries([memory.prompt]),
            entries(memory.recent), entries(memory.reliable), entries(memory.pointers))


def test_a_step_leaves_every_earlier_state_as_it_was(random_opened, random_clip):
    """Stepping one object changes no state: not the one it was given, not another object's.

    So an object's state after any frame can be kept and stepped again later, with the same results.
    """
    images, boxes = random_clip
    config = TrackerConfig(samurai=FAST_KALMAN)
    tracker = MultiObjectTracker(random_opened, config, num_frames=len(images))
    tracker.add(1, boxes[1])
    tracker.add(2, boxes[2])
    for i in range(4):
        tracker.step(i, images[i])
    kept = dict(tracker.objects)
    before = {obj_id: _contents(state) for obj_id, state in kept.items()}
    assert before[1] != before[2]
    frame = tracker.encoder.encode(4, images[4])
    alone, after = step_object(random_opened, config, kept[1], frame)
    assert after.memory.recent[-1].frame_idx == 4
    assert {obj_id: _contents(state) for obj_id, state in kept.items()} == before
    assert all(tracker.objects[obj_id] is state for obj_id, state in kept.items())
    together = tracker.track(frame).objects
    _assert_identical([together[1]], [alone], "object 1 stepped from its kept state")
    assert {obj_id: _contents(state) for obj_id, state in kept.items()} == before


@pytest.mark.parametrize("starts", [{1: 0, 2: 4}, {1: 0, 2: 2, 3: 7}])
def test_demo_multi_equals_single(demo_models, leave_clip, starts):
    _, images, truth = leave_clip
    x, y, w, h = truth[0]
    box = (x, y, x + w, y + h)
    opened = _open(demo_models)
    config = TrackerConfig(mode="samurai")
    boxes = {k: box for k in starts}
    multi = _multi(opened, images, boxes, starts, config)
    for obj_id, start in starts.items():
        _assert_identical(multi[obj_id], _single(opened, images, box, start, config), f"object {obj_id}")
        states = [r.state for r in multi[obj_id]]
        assert "lost" in states and states[-1] == "tracking", f"object {obj_id}"
        assert any(r.kf_score is not None for r in multi[obj_id]), f"object {obj_id}"
