"""configs/models/edgetam.yaml against the official `sam2/configs/edgetam.yaml`, and the flags the builder refuses.

The project's config is laid out by module (flat sections); the official one
nests Hydra targets. Each project key is looked up by name in the official
section it describes; a nested project dict is compared with the official dict
of the same (or renamed) name. The official keys the project does not hold are
listed here with the reason, so a flag the official config sets is never
silently assumed.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from omegaconf import OmegaConf

from convert.checkpoint import CheckpointError
from convert.edgetam import model as edgetam_model
from tests.official_edgetam import official_config

# Project section -> the official section under `model` it describes (None: `model`'s own scalar flags).
SECTIONS = {"neck": "image_encoder", "memory_attention": "memory_attention", "memory_encoder": "memory_encoder",
            "spatial_perceiver": "spatial_perceiver", "model": None}
# Project name -> official name, where they differ.
RENAMED = {"kv_dim": "kv_in_dim", "fuser_layer": "layer", "fuser_layers": "num_layers"}
# Project keys the official config does not hold: the video predictor builder's additions and the trunk's shape
# (the official config names timm's model instead).
PROJECT_ONLY = {"fill_hole_area", "binarize_mask_from_pts_for_mem_enc", "sam_mask_decoder_extra_args"}
# Official keys the project does not hold, and why: sizes chosen at export time from the image size
# (image_size, the attentions' feat_sizes and q_sizes), the key grid (from num_latents_2d: checked below),
# the attentions' width (d_model: checked below), the trunk named by timm (its shape is the project's `trunk`,
# its channels are the neck's backbone_channel_list: checked below).
OFFICIAL_ONLY = {"image_size", "feat_sizes", "q_sizes", "k_sizes", "embedding_dim", "name", "features",
                 "backbone_channel_list"}


def _leaves(node: dict, out: dict | None = None) -> dict[str, list]:
    """Every scalar or list under `node` by key name (all its occurrences), Hydra's `_target_` aside."""
    out = {} if out is None else out
    for key, value in node.items():
        if isinstance(value, dict):
            _leaves(value, out)
        elif key != "_target_":
            out.setdefault(key, []).append(value)
    return out


def _find_dict(node: dict, name: str) -> dict:
    found = [v for k, v in node.items() if k == name and isinstance(v, dict)]
    found += [d for v in node.values() if isinstance(v, dict) and (d := _find_dict(v, name))]
    assert len(found) <= 1, f"'{name}' is ambiguous"
    return found[0] if found else {}


def _compare(ours: dict, theirs: dict, where: str, compared: set[str]) -> list[str]:
    """Differences between `ours` and `theirs`; the official names compared are added to `compared`."""
    official = _leaves(theirs) if where != "model" else {k: [v] for k, v in theirs.items() if not isinstance(v, dict)}
    problems = []
    for key, value in ours.items():
        name = RENAMED.get(key, key)
        if isinstance(value, dict):
            sub = _find_dict(theirs, name)
            if sub or key not in PROJECT_ONLY:
                assert sub, f"{where}.{key}: no '{name}' in the official config"
                problems += _compare(value, sub, f"{where}.{key}", compared)
            continue
        if name not in official:
            assert key in PROJECT_ONLY, f"{where}.{key} is not in the official config"
            continue
        compared.add(name)
        problems += [f"{where}.{key}: ours {value!r}, official {v!r}" for v in official[name] if v != value]
    return problems


@pytest.fixture(scope="module")
def configs():
    # Read as Hydra reads it (plain YAML 1.1 would take the official `1e-6` for a string).
    official = OmegaConf.to_container(OmegaConf.load(official_config()))["model"]
    return edgetam_model.load_config(), official


def test_every_shared_key_equals_the_official_config(configs):
    ours, official = configs
    compared: set[str] = set()
    problems = []
    for section, official_section in SECTIONS.items():
        theirs = official if official_section is None else official[official_section]
        problems += _compare(ours[section], theirs, section, compared)
    assert not problems
    # Every official key was compared, or is one the project derives (and is checked here).
    assert set(_leaves(official)) - {"_target_"} - compared <= OFFICIAL_ONLY
    attention = official["memory_attention"]["layer"]
    assert {attention["self_attention"]["embedding_dim"], attention["cross_attention"]["embedding_dim"]} == {
        ours["memory_attention"]["d_model"]}
    grid = edgetam_model.grid_side(ours["spatial_perceiver"]["num_latents_2d"])
    assert attention["cross_attention"]["k_sizes"] == [grid, grid]
    assert official["image_encoder"]["neck"]["backbone_channel_list"] == ours["trunk"]["channels"][::-1]


def test_the_flags_the_builder_reads_are_in_the_official_config(configs):
    """Each flag the builder checks is one the official config sets, at the value the builder implements."""
    _, official = configs
    for (section, key), value in edgetam_model.IMPLEMENTED.items():
        node = official if section == "model" else official[section]
        assert set(_leaves(node)[key]) == {value}, (section, key)
    for section, key in edgetam_model.DROPOUTS:
        assert key in _leaves(official[section]), (section, key)


def _use_config(config: dict, tmp_path, monkeypatch) -> None:
    path = tmp_path / "edgetam.yaml"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setattr(edgetam_model, "CONFIG", path)


@pytest.mark.parametrize("section, key, value", [
    ("spatial_perceiver", "pos_enc_at_key_value", False),
    ("spatial_perceiver", "concat_kv_latents", True),
    ("spatial_perceiver", "use_self_attn", False),
    ("memory_attention", "activation", "gelu"),
    ("memory_attention", "downsample_rate", 2),
    ("model", "add_tpos_enc_to_obj_ptrs", True),
    ("spatial_perceiver", "use_self_attn", None),  # missing: not assumed
    ("memory_attention", "dropout", 1.0),
])
def test_the_builder_refuses_a_flag_it_does_not_implement(tmp_path, monkeypatch, section, key, value):
    config = copy.deepcopy(edgetam_model.load_config())
    if value is None:
        del config[section][key]
    else:
        config[section][key] = value
    _use_config(config, tmp_path, monkeypatch)
    with pytest.raises(CheckpointError, match=f"{section}.{key} is {value!r}") as refused:
        edgetam_model.build_edgetam(256)
    assert "\n" not in str(refused.value)


def test_the_builder_refuses_a_key_nothing_reads(tmp_path, monkeypatch):
    """A misspelt flag would leave the real one at its default unnoticed: refused, named."""
    config = copy.deepcopy(edgetam_model.load_config())
    config["spatial_perceiver"]["use_self_atn"] = True
    _use_config(config, tmp_path, monkeypatch)
    with pytest.raises(CheckpointError, match="spatial_perceiver has keys nothing reads: use_self_atn"):
        edgetam_model.build_edgetam(256)
