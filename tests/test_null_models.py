"""Null models: a replay of recorded sub-model outputs drives the tracker exactly as the real models did."""

from __future__ import annotations

import dataclasses
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from acl_models.bundle import ModelBundle, open_bundle_with
from acl_models.manifest import load_constants
from acl_models.onnx_runner import OnnxRunner
from app.media.textured_clip import make_frames
from app.samurai import preprocess
from app.samurai.config import TrackerConfig
from app.samurai.tracker import SamuraiTracker
from acl_models.replay_runner import Recording, RecordingError, RecordingRunner, ReplayRunner

NUM_FRAMES = 4
THREADS = 1
_REAL_FOR_STATS = preprocess.Normaliser.for_stats


def _run(tracker: SamuraiTracker, frames, box):
    return [tracker.step(i, frame, box if i == 0 else None) for i, frame in enumerate(frames)]


@pytest.fixture(scope="module")
def recorded(export_256_variants, tmp_path_factory):
    """A real run's results and the recording made from it."""
    frames, boxes = make_frames(NUM_FRAMES)
    x, y, w, h = boxes[0]
    box = (x, y, x + w, y + h)
    bundle = open_bundle_with(export_256_variants, lambda path: RecordingRunner(OnnxRunner(path, threads=THREADS)))
    tracker = SamuraiTracker(bundle, TrackerConfig())
    results = _run(tracker, frames, box)
    path = tmp_path_factory.mktemp("null") / "recording.npz"
    Recording.from_runners(bundle.manifest, bundle.runners).save(path)
    return bundle.manifest, frames, box, results, path


def test_replay_gives_the_real_run(recorded, monkeypatch):
    manifest, frames, box, expected, path = recorded
    built = []
    monkeypatch.setattr(preprocess.Normaliser, "for_stats", lambda *a: built.append(a) or _REAL_FOR_STATS(*a))
    bundle = Recording.load(path, manifest).bundle(manifest)
    runners = bundle.runners
    tracker = SamuraiTracker(bundle, TrackerConfig())
    results = _run(tracker, frames, box)
    assert len(built) == 1  # the normalisation table is built with the tracker, not per frame
    assert runners["memory_attention"].count == NUM_FRAMES - 1
    for got, want in zip(results, expected):
        assert (got.mask_index, got.best_iou, got.kf_score) == (want.mask_index, want.best_iou, want.kf_score)
        np.testing.assert_array_equal(got.low_res_logits, want.low_res_logits)
        np.testing.assert_array_equal(got.mask, want.mask)


def test_replay_cycles_over_the_tracked_calls(tmp_path):
    calls = [{"out": np.array([i], dtype=np.float32)} for i in range(3)]
    runner = ReplayRunner(tmp_path / "m.onnx", ["x"], calls, takes_pixels=False)
    assert [int(runner.run({})["out"][0]) for _ in range(7)] == [0, 1, 2, 1, 2, 1, 2]
    assert runner.output_names == ["out"] and runner.input_names == ["x"]
    with pytest.raises(RecordingError, match="no call of m.onnx"):
        ReplayRunner(tmp_path / "m.onnx", ["x"], [], takes_pixels=False)


def test_recording_of_another_export_is_refused(recorded):
    manifest, _, _, _, path = recorded
    other = dataclasses.replace(manifest, checkpoint_sha256="0" * 64)
    with pytest.raises(RecordingError, match="recorded with another export.*delete it to record again"):
        Recording.load(path, other)


def test_a_file_that_is_no_recording_is_refused(recorded, tmp_path):
    manifest = recorded[0]
    for name, content in (("text.npz", b"not a zip"), ("empty.npz", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(RecordingError, match=f"{name} is not a recording.*delete it to record again"):
            Recording.load(tmp_path / name, manifest)


def test_replay_keeps_the_aipp_input_kind(recorded, tmp_path):
    manifest, _, _, _, path = recorded
    recording = Recording.load(path, manifest)
    recording.takes_pixels = True
    runners = recording.runners(manifest)
    assert runners["image_encoder"].takes_pixels and not runners["mask_decoder"].takes_pixels
    recording.save(tmp_path / "aipp.npz")
    assert Recording.load(Path(tmp_path / "aipp.npz"), manifest).takes_pixels


def test_pixel_encoder_skips_the_normalisation(recorded, monkeypatch):
    """An AIPP encoder (takes_pixels) gets the resized uint8 frame; the CPU never normalises it."""
    manifest, frames, box, _, path = recorded
    recording = Recording.load(path, manifest)
    recording.takes_pixels = True
    runners = recording.runners(manifest)
    fed = []
    replay = runners["image_encoder"].run
    monkeypatch.setattr(runners["image_encoder"], "run", lambda inputs: fed.append(inputs["image"]) or replay(inputs))
    monkeypatch.setattr(preprocess.Normaliser, "__call__", lambda *a: pytest.fail("normalised on the CPU"))
    tracker = SamuraiTracker(ModelBundle(manifest, load_constants(manifest), runners), TrackerConfig())
    _run(tracker, frames[:2], box)
    size = manifest.image_size
    assert [(x.dtype, x.shape) for x in fed] == [(np.uint8, (1, size, size, 3))] * 2
    np.testing.assert_array_equal(fed[0][0], preprocess.resize_frame(frames[0], size, "pil_bicubic"))


LONG_RUN_FRAMES = 300
# By then the memory bank and the pointer list are full (7 memories, 16 pointers).
FULL_AFTER = 20


def _state_sizes(tracker: SamuraiTracker) -> dict[str, int]:
    """Bytes of the memory bank and the length of every container the tracker, its state or its bank holds."""
    sizes = {"bank bytes": tracker.state.memory.nbytes()}
    for owner, name in ((tracker, "tracker"), (tracker.state, "state"), (tracker.state.memory, "bank")):
        for attr, value in vars(owner).items():
            if isinstance(value, (list, dict, set, tuple, deque)):
                sizes[f"{name}.{attr}"] = len(value)
    return sizes


def test_state_stays_the_same_size_over_a_long_run(recorded):
    """The tracker keeps what the official rules read, not every frame: its state stops growing once full."""
    manifest, frames, box, _, path = recorded
    tracker = SamuraiTracker(Recording.load(path, manifest).bundle(manifest), TrackerConfig())
    sizes = []
    for i in range(LONG_RUN_FRAMES):
        tracker.step(i, frames[i % len(frames)], box if i == 0 else None)
        sizes.append(_state_sizes(tracker))
    assert len(tracker.state.memory.recent) == manifest.hyper["num_maskmem"] - 1
    assert all(s == sizes[FULL_AFTER] for s in sizes[FULL_AFTER:]), [s for s in sizes[FULL_AFTER:] if s != sizes[-1]][:2]
