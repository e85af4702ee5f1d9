"""The tracker on an EdgeTAM export: sam2 mode frame by frame against the official EdgeTAM video predictor.

Same design as tests/test_parity.py (chosen mask, low-res logits, mask IoU) on
a short generated clip at 256 px, EdgeTAM's smallest size. The official
predictor runs in its own environment (tests/official_edgetam.py).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from app.samurai.config import load_config
from tests.backends import OPENVINO_PROBLEM, exact_factory, mask_iou, track_clip
from tests.installed import needs
from tests.official_edgetam import run_official_predictor
from tests.synthetic import make_frames, read_jpeg_folder, write_jpeg_folder

NUM_FRAMES = 10
IMAGE_SIZE = 256
# As in tests/test_parity.py: float32 graph-vs-PyTorch differences and bfloat16 memories on both sides.
LOGIT_ATOL = 1e-2
MIN_MASK_IOU = 0.99
CLI_TIMEOUT_S = 300
BACKENDS = [pytest.param("onnx"), pytest.param("openvino", marks=needs(OPENVINO_PROBLEM))]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, boxes = make_frames(NUM_FRAMES)
    folder = write_jpeg_folder(tmp_path_factory.mktemp("edgetam_clip"), frames)
    x, y, w, h = boxes[0]
    return folder, read_jpeg_folder(folder), (x, y, x + w, y + h)


@pytest.fixture(scope="module")
def official(edgetam_checkpoint, clip, tmp_path_factory):
    folder, _, box = clip
    return run_official_predictor(edgetam_checkpoint, IMAGE_SIZE, folder, box, tmp_path_factory.mktemp("predictor"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_sam2_mode_matches_official_edgetam_predictor(edgetam_export_256, clip, official, backend):
    _, images, box = clip
    config = load_config(None, "edgetam", "sam2")
    results = track_clip(edgetam_export_256, images, box, config, exact_factory(backend, edgetam_export_256, 1))
    assert len(results) == NUM_FRAMES
    for r in results:
        logits = official["logits"][r.frame_idx].numpy()
        assert np.abs(r.low_res_logits - logits).max() <= LOGIT_ATOL, f"frame {r.frame_idx}"
        assert r.object_score == pytest.approx(official["scores"][r.frame_idx], abs=LOGIT_ATOL)
        assert mask_iou(r.mask, official["masks"][r.frame_idx].numpy()) >= MIN_MASK_IOU, f"frame {r.frame_idx}"


@pytest.mark.parametrize("mode", ["samurai", "sam2"])
def test_run_py_tracks_an_edgetam_export(edgetam_export_256, clip, tmp_path, mode):
    """The command line takes every size and layout from the EdgeTAM manifest, in both modes."""
    folder, _, (x1, y1, x2, y2) = clip
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "app/run.py", "--video", folder, "--bbox", f"{x1},{y1},{x2 - x1},{y2 - y1}",
         "--model-dir", edgetam_export_256, "--backend", "onnx", "--mode", mode, "--no-display", "--output", out],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "models: edgetam at 256 px" in done.stderr
    assert len((out / "track.txt").read_text().splitlines()) == NUM_FRAMES
