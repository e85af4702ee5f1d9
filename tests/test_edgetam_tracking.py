"""The tracker on an EdgeTAM export: sam2 mode frame by frame against the official EdgeTAM video predictor.

Same design as tests/test_parity.py (chosen mask, low-res logits, mask IoU) on
two short generated clips at 256 px, EdgeTAM's smallest size: the textured
(noise) clip and the colour demo clip. The official predictor runs in its own
environment (tests/official_edgetam.py).
"""

from __future__ import annotations

import subprocess
import sys

from dataclasses import replace

import numpy as np
import pytest

from acl_models.bundle import open_bundle_with
from app.media import colour_clip
from app.samurai.config import load_config
from app.samurai.tracker import SamuraiTracker
from tests.backends import (
    EXACT_BACKEND_PARAMS,
    REDUCED_PRECISIONS,
    assert_same_decisions,
    exact_factory,
    mask_iou,
    models_for,
    reduced,
    track_clip,
)
from tests.official_edgetam import run_official_predictor
from tests.synthetic import make_frames, read_jpeg_folder, write_jpeg_folder

NUM_FRAMES = 10
IMAGE_SIZE = 256
# As in tests/test_parity.py: float32 graph-vs-PyTorch differences and bfloat16 memories on both sides.
LOGIT_ATOL = 1e-2
MIN_MASK_IOU = 0.99
CLI_TIMEOUT_S = 300
# Reaches the Kalman-weighted selection branch within the clip (the official threshold is 15 stable frames).
SAMURAI_OVERRIDES = {"stable_frames_threshold": 3}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, boxes = make_frames(NUM_FRAMES)
    folder = write_jpeg_folder(tmp_path_factory.mktemp("edgetam_clip"), frames)
    x, y, w, h = boxes[0]
    return folder, read_jpeg_folder(folder), (x, y, x + w, y + h)


@pytest.fixture(scope="module")
def demo_clip(tmp_path_factory):
    """The colour demo clip (app/media/colour_clip.py) at the same length."""
    frames, boxes = colour_clip.make_frames(NUM_FRAMES)
    folder = write_jpeg_folder(tmp_path_factory.mktemp("edgetam_demo_clip"), frames)
    x, y, w, h = boxes[0]
    return folder, read_jpeg_folder(folder), (x, y, x + w, y + h)


def _official(checkpoint, clip, tmp_path_factory):
    folder, _, box = clip
    return run_official_predictor(checkpoint, IMAGE_SIZE, folder, box, tmp_path_factory.mktemp("predictor"))


@pytest.fixture(scope="module")
def official(edgetam_checkpoint, clip, tmp_path_factory):
    return _official(edgetam_checkpoint, clip, tmp_path_factory)


@pytest.fixture(scope="module")
def official_demo(edgetam_checkpoint, demo_clip, tmp_path_factory):
    return _official(edgetam_checkpoint, demo_clip, tmp_path_factory)


@pytest.mark.parametrize("clip_name", ["clip", "demo_clip"])
@pytest.mark.parametrize("backend", EXACT_BACKEND_PARAMS)
def test_sam2_mode_matches_official_edgetam_predictor(request, backend, clip_name):
    """Every backend at full precision, the emulated NPU on the stand-in ATC's conversion of the export, on the
    noise clip and the demo clip."""
    _, images, box = request.getfixturevalue(clip_name)
    official = request.getfixturevalue({"clip": "official", "demo_clip": "official_demo"}[clip_name])
    config = load_config(None, "edgetam", "sam2")
    models = models_for(request, backend, "edgetam_export_256")
    results = track_clip(models, images, box, config, exact_factory(backend, models, 1))
    assert len(results) == NUM_FRAMES
    for r in results:
        logits = official["logits"][r.frame_idx].numpy()
        assert np.abs(r.low_res_logits - logits).max() <= LOGIT_ATOL, f"frame {r.frame_idx}"
        assert r.object_score == pytest.approx(official["scores"][r.frame_idx], abs=LOGIT_ATOL)
        assert mask_iou(r.mask, official["masks"][r.frame_idx].numpy()) >= MIN_MASK_IOU, f"frame {r.frame_idx}"


@pytest.mark.parametrize("backend", EXACT_BACKEND_PARAMS)
def test_samurai_mode_matches_reference_on_official_edgetam(request, edgetam_checkpoint, clip, backend, tmp_path):
    """SAMURAI's selection on EdgeTAM: no official SAMURAI-on-EdgeTAM code exists, so the reference is the project's
    independent SAMURAI predictor (tests/reference_predictor.py) driving the official EdgeTAM modules."""
    folder, images, box = clip
    reference = run_official_predictor(edgetam_checkpoint, IMAGE_SIZE, folder, box, tmp_path, SAMURAI_OVERRIDES)
    config = load_config(None, "edgetam", "samurai")
    config = replace(config, samurai=replace(config.samurai, **SAMURAI_OVERRIDES))
    models = models_for(request, backend, "edgetam_export_256")
    with open_bundle_with(models, exact_factory(backend, models, 1)) as bundle:
        tracker = SamuraiTracker(bundle, config, num_frames=len(images))
        source = ((i, image, None) for i, image in enumerate(images))
        for frame in tracker.encoder.frames(source, overlap=True):
            i = frame.frame_idx
            r = tracker.track(frame, box if i == 0 else None)
            assert np.abs(r.low_res_logits - reference["logits"][i].numpy()).max() <= LOGIT_ATOL, f"frame {i}"
            if i == 0:
                continue
            log = reference["log"][i]
            assert r.mask_index - 1 == log["index"], f"frame {i}"
            assert (r.kf_score is None) == (log["kf_score"] is None)
            if r.kf_score is not None:
                assert r.kf_score == pytest.approx(log["kf_score"], abs=1e-6)
            assert tracker.state.motion.stable_frames == log["stable_frames"]
            np.testing.assert_allclose(tracker.state.motion.mean, log["kf_mean"], rtol=1e-9, atol=1e-9)
            if i + 1 in reference["log"]:
                chosen = [e.frame_idx for _, e in tracker.state.memory.memory_frames(i + 1)]
                assert chosen == reference["log"][i + 1]["memory_frames"], f"frame {i + 1}"
    assert any(log["kf_score"] is not None for log in reference["log"].values())


@pytest.mark.parametrize("mode, backend", [("samurai", "onnx"), ("sam2", "onnx"), ("samurai", "openvino")])
def test_run_py_tracks_an_edgetam_export(edgetam_export_256, clip, tmp_path, mode, backend):
    """The command line takes every size and layout from the EdgeTAM manifest, in both modes, on both CPU
    backends."""
    folder, _, (x1, y1, x2, y2) = clip
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "app/run.py", "--video", folder, "--bbox", f"{x1},{y1},{x2 - x1},{y2 - y1}",
         "--model-dir", edgetam_export_256, "--backend", backend, "--mode", mode, "--no-display", "--output", out],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "models: edgetam at 256 px" in done.stderr
    assert len((out / "track.txt").read_text().splitlines()) == NUM_FRAMES


@pytest.mark.parametrize("precision", REDUCED_PRECISIONS)
@pytest.mark.parametrize("mode", ["sam2", "samurai"])
def test_reduced_precision_keeps_every_decision(edgetam_export_256, clip, mode, precision):
    """OpenVINO's recommended reduced precision chooses the same mask as fp32 on every frame, as for SAM 2.1."""
    _, images, box = clip
    config = load_config(None, "edgetam", mode)
    exact = track_clip(edgetam_export_256, images, box, config, exact_factory("onnx", edgetam_export_256, 1))
    assert_same_decisions(track_clip(edgetam_export_256, images, box, config, reduced(precision, 1)), exact)


def test_run_py_tracks_several_objects_on_edgetam(edgetam_export_256, clip, tmp_path):
    folder, _, (x1, y1, x2, y2) = clip
    out = tmp_path / "out"
    boxes = [f"{x1},{y1},{x2 - x1},{y2 - y1}", "10,10,30,30"]
    done = subprocess.run(
        [sys.executable, "app/run.py", "--video", folder, *[a for b in boxes for a in ("--bbox", b)],
         "--model-dir", edgetam_export_256, "--backend", "onnx", "--no-display", "--output", out],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for index in (1, 2):
        assert len((out / f"track_{index}.txt").read_text().splitlines()) == NUM_FRAMES

