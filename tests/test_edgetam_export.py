"""EdgeTAM's export: each graph against the official EdgeTAM module, the manifest read back, and refusals.

The export (session fixture `edgetam_export_256`) already checks each graph
against the PyTorch module it was traced from; here the graphs meet the
official code itself, on inputs laid out the official way.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from acl_models.manifest import load_manifest
from convert.checkpoint import read_state_dict
from convert.edgetam.model import load_edgetam
from convert.family import family_of
from tests.official_edgetam import GRAPH_CASES, REL_TOL, graph_cases, graph_errors, run_official
from tests.script_runs import run_script

IMAGE_SIZE = 256
CLI_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def graphs_and_official(edgetam_checkpoint, edgetam_export_256, tmp_path_factory):
    """(our graph feeds per case, the official outputs per case) at the export's size."""
    model = load_edgetam(read_state_dict(edgetam_checkpoint), edgetam_checkpoint, IMAGE_SIZE)
    official, ours = graph_cases(model, seed=5)
    return ours, run_official(edgetam_checkpoint, IMAGE_SIZE, official, tmp_path_factory.mktemp("official_256"))


@pytest.mark.parametrize("case", GRAPH_CASES)
def test_graph_equals_official(edgetam_export_256, graphs_and_official, case):
    ours, official = graphs_and_official
    assert max(graph_errors(edgetam_export_256, case, ours, official)) <= REL_TOL


def test_manifest_names_the_family_and_memory_layout(edgetam_export_256):
    manifest = load_manifest(edgetam_export_256)
    assert manifest.family == "edgetam" and manifest.image_size == IMAGE_SIZE
    layout = manifest.memory_layout
    assert layout["kind"] == "tokens"
    assert (layout["tokens_per_frame"], layout["global_latents"], layout["grid_latents"]) == (512, 256, 256)
    assert layout["channels"] == 64 and layout["memory_attention_layers"] == 2
    assert layout["obj_ptr_temporal_encoding"] is False and layout["no_obj_embed_spatial"] is False
    assert manifest.constants[layout["position_encoding"]]["shape"] == layout["position_encoding_shape"] == [1, 512, 64]
    inputs = {m: [i["name"] for i in manifest.models[m]["inputs"]] for m in manifest.models}
    assert "object_score_logits" not in inputs["memory_encoder"]
    assert "obj_ptr_offsets" not in inputs["memory_attention"]
    memory = next(i for i in manifest.models["memory_attention"]["inputs"] if i["name"] == "memory")
    assert memory["shape"] == [7, 512, 64]
    assert max(e for errors in manifest.raw["max_abs_errors"].values() for e in errors["fp32"].values()) <= REL_TOL


def _export_cli(*args):
    return subprocess.run([sys.executable, "convert/export_onnx.py", *map(str, args)], capture_output=True,
                          text=True, timeout=CLI_TIMEOUT_S)


@pytest.fixture(scope="module")
def neither_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("neither") / "other.pt"
    torch.save({"model": {"backbone.conv.weight": torch.zeros(8, 3, 3, 3)}}, path)
    return path


@pytest.fixture(scope="module")
def resized_checkpoint(edgetam_checkpoint, tmp_path_factory):
    """The EdgeTAM checkpoint with its global latents resized: every key right, one shape wrong."""
    state_dict = read_state_dict(edgetam_checkpoint)
    state_dict["spatial_perceiver.latents"] = torch.zeros(128, 64)
    path = tmp_path_factory.mktemp("resized") / "edgetam.pt"
    torch.save({"model": state_dict}, path)
    return path


@pytest.mark.parametrize(
    "which, extra, message",
    [
        ("hiera", ["--family", "edgetam"], "holds sam2.1 weights but --family edgetam"),
        ("edgetam", ["--family", "sam2.1"], "holds edgetam weights but --family sam2.1"),
        ("edgetam", ["--model-size", "t"], "--model-size t is for SAM 2.1"),
        ("edgetam", ["--image-size", "128"], "EdgeTAM cannot take image size 128"),
        # A multiple of 16 whose 24x24 feature map does not split into the perceiver's 16x16 grid: the fix is named.
        ("edgetam", ["--image-size", "384"], "EdgeTAM cannot take image size 384: a 24x24 memory feature map"),
        ("neither", [], "fits neither SAM 2.1"),
        ("resized", [], "'spatial_perceiver.latents' has shape (128, 64), EdgeTAM expects (256, 64)"),
    ],
)
def test_wrong_checkpoints_are_refused_with_one_line(
    tmp_path, checkpoint, edgetam_checkpoint, neither_checkpoint, resized_checkpoint, which, extra, message
):
    paths = {"hiera": checkpoint, "edgetam": edgetam_checkpoint, "neither": neither_checkpoint,
             "resized": resized_checkpoint}
    path = paths[which]
    result = _export_cli("--checkpoint", path, *extra, "--out", tmp_path / "out")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "out").exists()


def test_random_checkpoint_script_writes_the_edgetam_format(tmp_path, edgetam_checkpoint):
    out = tmp_path / "random_edgetam.pt"
    done = run_script("make_random_checkpoint", "--family", "edgetam", "--seed", 1, "--out", out)
    assert done.returncode == 0, done.stderr[-2000:]
    written, reference = read_state_dict(out), read_state_dict(edgetam_checkpoint)
    assert family_of(written, out) == "edgetam"
    assert {k: v.shape for k, v in written.items()} == {k: v.shape for k, v in reference.items()}
