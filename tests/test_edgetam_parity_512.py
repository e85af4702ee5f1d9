"""sam2 mode on ONNX Runtime against the official EdgeTAM video predictor at 512 px, frame by frame.

tests/test_edgetam_tracking.py checks every backend at 256 px, EdgeTAM's smallest size; this
checks a size where the frame's feature grid (32 x 32) is larger than the perceiver's 16 x 16
grid of memory latents, so the memory-attention graph's rotary keys and queries have different
grids and each perceiver cell pools 2 x 2 features (tests/test_edgetam_1024.py: 4 x 4, at the
1024 px EdgeTAM was trained at, on fewer frames).
"""

from __future__ import annotations

import pytest

from tests.official_edgetam import check_sam2_parity, export_edgetam

IMAGE_SIZE = 512
NUM_FRAMES = 6


@pytest.fixture(scope="module")
def edgetam_export_512(edgetam_checkpoint, tmp_path_factory):
    return export_edgetam(edgetam_checkpoint, tmp_path_factory, IMAGE_SIZE)


def test_sam2_mode_at_512_px_matches_official_edgetam_predictor(edgetam_checkpoint, edgetam_export_512, tmp_path):
    check_sam2_parity(edgetam_checkpoint, edgetam_export_512, IMAGE_SIZE, NUM_FRAMES, tmp_path)
