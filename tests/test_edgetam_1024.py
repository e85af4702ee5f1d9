"""EdgeTAM at 1024 px, the size it was trained at: the export, each graph against the official module, and a short
sam2-mode run against the official EdgeTAM video predictor.

At 1024 px the frame's feature grid is 64x64, the query grid EdgeTAM's config fixes for the v2 cross-attention
(the smaller sizes set it to theirs), and each perceiver cell pools 4x4 features. One export at this size per
session (about 30 s on 2 cores); the tracking run is short (FRAMES frames) because a 1024 px frame costs the
official predictor seconds on a small CPU: the 256 and 512 px files track longer clips.
"""

from __future__ import annotations

import pytest

from acl_models.manifest import load_manifest
from convert.checkpoint import read_state_dict
from convert.edgetam.model import load_edgetam
from tests.official_edgetam import (GRAPH_CASES, REL_TOL, check_sam2_parity, export_edgetam, graph_cases, graph_errors,
                                    run_official)

IMAGE_SIZE = 1024
FEATURE_GRID = 64
# A prompt frame and two tracked ones: the second reads a memory the first wrote.
FRAMES = 3


@pytest.fixture(scope="module")
def edgetam_export_1024(edgetam_checkpoint, tmp_path_factory):
    return export_edgetam(edgetam_checkpoint, tmp_path_factory, IMAGE_SIZE)


@pytest.fixture(scope="module")
def graphs_and_official(edgetam_checkpoint, tmp_path_factory):
    model = load_edgetam(read_state_dict(edgetam_checkpoint), edgetam_checkpoint, IMAGE_SIZE)
    official, ours = graph_cases(model, seed=7)
    return ours, run_official(edgetam_checkpoint, IMAGE_SIZE, official, tmp_path_factory.mktemp("official_1024"))


def test_export_at_1024_px_verifies_every_graph(edgetam_export_1024):
    """The export checked each graph against the PyTorch module it was traced from, at 1024 px's shapes."""
    manifest = load_manifest(edgetam_export_1024)
    assert manifest.family == "edgetam" and manifest.image_size == IMAGE_SIZE
    assert set(manifest.raw["max_abs_errors"]) == {"image_encoder", "memory_attention", "memory_encoder",
                                                   "mask_decoder"}
    assert max(e for errors in manifest.raw["max_abs_errors"].values() for e in errors["fp32"].values()) <= REL_TOL
    vision = next(i for i in manifest.models["memory_attention"]["inputs"] if i["name"] == "vision_feat")
    assert vision["shape"][2:] == [FEATURE_GRID, FEATURE_GRID]
    memory = next(i for i in manifest.models["memory_attention"]["inputs"] if i["name"] == "memory")
    assert memory["shape"] == [7, 512, 64]


@pytest.mark.parametrize("case", GRAPH_CASES)
def test_graph_at_1024_px_equals_official(edgetam_export_1024, graphs_and_official, case):
    ours, official = graphs_and_official
    assert max(graph_errors(edgetam_export_1024, case, ours, official)) <= REL_TOL


def test_sam2_mode_at_1024_px_matches_official_edgetam_predictor(edgetam_checkpoint, edgetam_export_1024, tmp_path):
    check_sam2_parity(edgetam_checkpoint, edgetam_export_1024, IMAGE_SIZE, FRAMES, tmp_path)
