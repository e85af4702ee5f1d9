"""sam2 mode on ONNX Runtime against the official EdgeTAM video predictor at 512 px, frame by frame.

tests/test_edgetam_tracking.py checks every backend at 256 px, EdgeTAM's smallest size; this
checks a size where the frame's feature grid (32 x 32) is larger than the perceiver's 16 x 16
grid of memory latents, so the memory-attention graph's rotary keys and queries have different
grids and each perceiver cell pools 2 x 2 features, as at the 1024 px EdgeTAM was trained at.
"""

from __future__ import annotations

import numpy as np
import pytest

from app.samurai.config import load_config
from tests.backends import exact_factory, mask_iou, track_clip
from tests.official_edgetam import run_official_predictor
from tests.synthetic import make_frames, read_jpeg_folder, write_jpeg_folder

IMAGE_SIZE = 512
NUM_FRAMES = 6
# As in tests/test_edgetam_tracking.py.
LOGIT_ATOL = 1e-2
MIN_MASK_IOU = 0.99


@pytest.fixture(scope="module")
def edgetam_export_512(edgetam_checkpoint, tmp_path_factory):
    from convert.export_onnx import export

    folder = tmp_path_factory.mktemp("edgetam_512")
    export(edgetam_checkpoint, folder, image_size=IMAGE_SIZE)
    return folder


def test_sam2_mode_at_512_px_matches_official_edgetam_predictor(edgetam_checkpoint, edgetam_export_512, tmp_path):
    frames, boxes = make_frames(NUM_FRAMES)
    folder = write_jpeg_folder(tmp_path / "clip", frames)
    x, y, w, h = boxes[0]
    box = (x, y, x + w, y + h)
    official = run_official_predictor(edgetam_checkpoint, IMAGE_SIZE, folder, box, tmp_path)
    config = load_config(None, "edgetam", "sam2")
    results = track_clip(edgetam_export_512, read_jpeg_folder(folder), box, config,
                         exact_factory("onnx", edgetam_export_512, 1))
    assert len(results) == NUM_FRAMES
    for r in results:
        logits = official["logits"][r.frame_idx].numpy()
        assert logits.shape == r.low_res_logits.shape == (IMAGE_SIZE // 4, IMAGE_SIZE // 4)
        assert np.abs(r.low_res_logits - logits).max() <= LOGIT_ATOL, f"frame {r.frame_idx}"
        assert r.object_score == pytest.approx(official["scores"][r.frame_idx], abs=LOGIT_ATOL)
        assert mask_iou(r.mask, official["masks"][r.frame_idx].numpy()) >= MIN_MASK_IOU, f"frame {r.frame_idx}"
