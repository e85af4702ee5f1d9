"""EdgeTAM's own modules (convert/edgetam/) against the official EdgeTAM code on the same random weights.

The official code runs in its own environment (tests/official_edgetam.py). Its
inputs are laid out here the way the official SAM2Base lays them out (memories
and pointer tokens concatenated sequence-first, `num_spatial_mem` frames),
independently of the project's static, padded memory attention.
"""

from __future__ import annotations

import pytest
import torch

from convert.checkpoint import read_state_dict
from convert.edgetam import graphs
from convert.edgetam.model import load_edgetam
from tests.official_edgetam import REL_TOL, close, memory_attention_case, memory_encoder_case, run_official

# 512 px: a 32x32 feature map, so each perceiver grid cell holds 2x2 tokens.
IMAGE_SIZE = 512


@pytest.fixture(scope="module")
def compared(edgetam_checkpoint, tmp_path_factory):
    """(our model, our inputs per case, the official outputs per case) at 512 px."""
    model = load_edgetam(read_state_dict(edgetam_checkpoint), edgetam_checkpoint, IMAGE_SIZE)
    g = torch.Generator().manual_seed(3)
    side = IMAGE_SIZE // model.backbone_stride
    image = torch.randn((1, 3, IMAGE_SIZE, IMAGE_SIZE), generator=g)
    feature = torch.randn((1, model.mem_dim, side, side), generator=g)
    with torch.no_grad():
        feature_pos = model.memory_encoder.position_encoding(feature)
    official, ours = {}, {}
    official["trunk"] = official["image_encoder"] = {"image": image}
    official["perceiver"] = {"feature": feature, "pos": feature_pos}
    for frames, ptrs in ((1, 1), (3, 5), (model.num_maskmem, model.max_obj_ptrs_in_encoder)):
        name = f"memory_attention_{frames}_{ptrs}"
        official[name], ours[name] = memory_attention_case(model, frames, ptrs, g)
    for from_prompt in (False, True):
        name = f"memory_encoder_{'prompt' if from_prompt else 'tracked'}"
        official[name], ours[name] = memory_encoder_case(model, from_prompt, g)
    outputs = run_official(edgetam_checkpoint, IMAGE_SIZE, official, tmp_path_factory.mktemp("official_edgetam"))
    return model, official, ours, outputs


def test_checkpoint_names_and_shapes_are_the_official_ones(compared):
    model, _, _, outputs = compared
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert ours == outputs["state_shapes"]


def test_repvit_trunk_equals_official(compared):
    model, official, _, outputs = compared
    with torch.no_grad():
        features = model.image_encoder.trunk(official["trunk"]["image"])
    assert [f.shape[1] for f in features] == [48, 96, 192, 384]
    for ours, theirs in zip(features, outputs["trunk"], strict=True):
        assert close(ours, theirs) <= REL_TOL


def test_image_encoder_equals_official(compared):
    model, official, _, outputs = compared
    with torch.no_grad():
        ours = graphs.ImageEncoder(model)(official["image_encoder"]["image"])
    for mine, theirs in zip(ours, outputs["image_encoder"], strict=True):
        assert close(mine, theirs) <= REL_TOL


def test_perceiver_equals_official(compared):
    model, official, _, outputs = compared
    with torch.no_grad():
        latents, pos = model.spatial_perceiver(official["perceiver"]["feature"], official["perceiver"]["pos"])
    assert latents.shape == (1, 512, 64)
    assert close(latents, outputs["perceiver"][0]) <= REL_TOL
    assert close(pos, outputs["perceiver"][1]) <= REL_TOL


@pytest.mark.parametrize("case", ["memory_attention_1_1", "memory_attention_3_5", "memory_attention_7_16"])
def test_memory_attention_equals_official_v2_rope(compared, case):
    model, _, ours, outputs = compared
    with torch.no_grad():
        mine = model.memory_attention(**ours[case])
    theirs = outputs[case][0]  # (hw, 1, C) sequence-first
    assert close(mine.flatten(2).permute(2, 0, 1), theirs) <= REL_TOL


@pytest.mark.parametrize("case", ["memory_encoder_tracked", "memory_encoder_prompt"])
def test_memory_encoder_with_perceiver_equals_official(compared, case):
    model, _, ours, outputs = compared
    with torch.no_grad():
        latents = graphs.MemoryEncoder(model)(**ours[case])
        pos = torch.from_numpy(graphs.constants(model)["memory_pos"])
    features, official_pos = outputs[case]
    assert close(latents, features) <= REL_TOL
    assert close(pos, official_pos) <= REL_TOL
