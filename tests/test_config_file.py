"""`--config FILE`: a tracker YAML of the user's own reaches the tracker, per-model-size overrides included."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from app import run
from app.samurai.config import ConfigError, check_config, load_config

# The official large config's weight (SAMURAI configs/samurai/sam2.1_hiera_l.yaml), the others' 0.25.
LARGE_WEIGHT, SMALL_WEIGHT = 0.15, 0.25
# Frames the CLI tracks here: fewer than the official 15 warm-up frames, more than the custom 2.
RUN_FRAMES = 8
CUSTOM_STABLE_FRAMES = 2

CUSTOM = f"""
mode: samurai
samurai:
  stable_frames_threshold: {CUSTOM_STABLE_FRAMES}
  kf_score_weight: 0.4
model_size_overrides:
  l:
    kf_score_weight: 0.3
"""


def test_default_file_gives_the_large_model_its_own_weight():
    assert load_config(None, "l").samurai.kf_score_weight == LARGE_WEIGHT
    for size in ("t", "s", "b+"):
        assert load_config(None, size).samurai.kf_score_weight == SMALL_WEIGHT


def test_a_custom_file_and_its_overrides(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(CUSTOM)
    small, large = load_config(path, "t").samurai, load_config(path, "l").samurai
    assert (small.stable_frames_threshold, small.kf_score_weight) == (CUSTOM_STABLE_FRAMES, 0.4)
    assert (large.stable_frames_threshold, large.kf_score_weight) == (CUSTOM_STABLE_FRAMES, 0.3)
    # Keys the file leaves out keep the official values.
    assert small.memory_bank_iou_threshold == 0.5 and small.stable_ious_threshold == 0.3
    assert load_config(path, "t", mode="sam2").mode == "sam2"


def test_bad_files_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml", "t")
    (tmp_path / "typo.yaml").write_text("samurai:\n  stable_frame_threshold: 3\n")
    with pytest.raises(ConfigError, match="unknown samurai keys .*stable_frame_threshold"):
        load_config(tmp_path / "typo.yaml", "t")


def _decisions(capsys, out, leave_clip, demo_models, *extra) -> list[dict]:
    folder, _, truth = leave_clip
    x, y, w, h = truth[0]
    code = run.main(["--video", str(folder), "--bbox", f"{x},{y},{w},{h}", "--model-dir", str(demo_models),
                     "--output", str(out), "--no-display", "--backend", "onnx", "--max-frames", str(RUN_FRAMES),
                     "--log-decisions", str(out / "decisions.jsonl"), *extra])
    assert code == 0, capsys.readouterr().err
    return [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]


def test_cli_config_file_reaches_the_tracker(leave_clip, demo_models, tmp_path, capsys):
    """The official warm-up keeps the filter out of the choice for all 8 frames; the file's 2 frames do not."""
    official = _decisions(capsys, tmp_path / "default", leave_clip, demo_models)
    assert all(d["kf_score"] is None for d in official)
    path = tmp_path / "mine.yaml"
    path.write_text(CUSTOM)
    custom = _decisions(capsys, tmp_path / "custom", leave_clip, demo_models, "--config", str(path))
    # Frame 1 starts the filter, frame 2 makes it stable (2 confident frames), frame 3 on it votes.
    assert [d["kf_score"] is not None for d in custom] == [False] * 3 + [True] * (RUN_FRAMES - 3)
    (tmp_path / "broken.yaml").write_text("samurai: [")
    code = run.main(["--video", str(leave_clip[0]), "--bbox", "1,1,4,4", "--model-dir", str(demo_models),
                     "--output", str(tmp_path / "bad"), "--no-display", "--config", str(tmp_path / "broken.yaml")])
    err = capsys.readouterr().err
    assert code == run.EXIT_BAD_INPUT and "not valid YAML" in err and "Traceback" not in err


# Each key of configs/samurai.yaml with a value of the wrong type or out of its range, and files that are no
# mapping at all: one ConfigError line naming the key (or the file's problem), never a TypeError.
BAD_CONFIGS = [
    ("- 1\n- 2\n", "holds a list, not a mapping"),
    ("5\n", "holds a number, not a mapping"),
    ("just words\n", "holds a string, not a mapping"),
    ("samurai: [\n", "is not valid YAML"),
    ("!!python/object:os.system {}\n", "is not valid YAML"),
    ("a: " + "[" * 10_000 + "\n", "nests too deeply"),
    ("modes: samurai\n", "unknown keys in"),
    ("1: 2\n", "unknown keys in"),
    ("mode: 5\n", "mode is 5, not a name"),
    ("mode: banana\n", "mode 'banana' is not one of samurai, sam2"),
    ("resize: [1]\n", "resize is [1], not a name"),
    ("resize: bilinear\n", "resize 'bilinear' is not one of"),
    ("samurai: 5\n", "samurai is a number (5), not a mapping"),
    ("samurai: [1, 2]\n", "samurai is a list"),
    ("samurai: {kf_score_weight: banana}\n", "samurai.kf_score_weight is 'banana', not a number"),
    ("samurai: {kf_score_weight: '0.3'}\n", "samurai.kf_score_weight is '0.3', not a number"),
    ("samurai: {kf_score_weight: true}\n", "samurai.kf_score_weight is True, not a number"),
    ("samurai: {kf_score_weight: 1.5}\n", "samurai.kf_score_weight must be in [0, 1], got 1.5"),
    ("samurai: {kf_score_weight: .nan}\n", "samurai.kf_score_weight must be in [0, 1], got nan"),
    ("samurai: {kf_score_weight: 1" + "0" * 400 + "}\n", "samurai.kf_score_weight is too large"),
    ("samurai: {stable_ious_threshold: -0.1}\n", "samurai.stable_ious_threshold must be in [0, 1]"),
    ("samurai: {memory_bank_iou_threshold: 2}\n", "samurai.memory_bank_iou_threshold must be in [0, 1]"),
    ("samurai: {memory_bank_kf_score_threshold: .inf}\n", "samurai.memory_bank_kf_score_threshold must be in [0, 1]"),
    ("samurai: {memory_bank_obj_score_threshold: .inf}\n", "samurai.memory_bank_obj_score_threshold must be a finite"),
    ("samurai: {min_obj_score_logits: -.inf}\n", "samurai.min_obj_score_logits must be a finite"),
    ("samurai: {min_obj_score_logits: null}\n", "samurai.min_obj_score_logits is None, not a number"),
    ("samurai: {stable_frames_threshold: 0}\n", "samurai.stable_frames_threshold must be >= 1"),
    ("samurai: {stable_frames_threshold: -3}\n", "samurai.stable_frames_threshold must be >= 1"),
    ("samurai: {stable_frames_threshold: 2.5}\n", "samurai.stable_frames_threshold is 2.5, not an integer"),
    ("samurai: {stable_frames_threshold: '15'}\n", "samurai.stable_frames_threshold is '15', not an integer"),
    ("max_cond_frames_in_attn: 2\n", "max_cond_frames_in_attn 2 is not 1: the graphs hold one conditioning frame"),
    ("max_cond_frames_in_attn: true\n", "max_cond_frames_in_attn True is not 1"),
    ("model_size_overrides: 5\n", "model_size_overrides is a number"),
    ("model_size_overrides: {L: {kf_score_weight: 0.1}}\n", "unknown model_size_overrides keys in"),
    ("model_size_overrides: {l: 5}\n", "model_size_overrides.l is a number"),
    ("model_size_overrides: {l: {kf_weight: 0.1}}\n", "unknown model_size_overrides.l keys in"),
    # Checked for every size, not only the one being run.
    ("model_size_overrides: {l: {kf_score_weight: 2}}\n", "model_size_overrides.l.kf_score_weight must be in [0, 1]"),
    ("model_size_overrides: {t: {kf_score_weight: x}}\n", "model_size_overrides.t.kf_score_weight is 'x', not a"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS, ids=[f"bad-{i}" for i in range(len(BAD_CONFIGS))])
def test_bad_values_are_one_line_naming_the_key(tmp_path, text, message):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        check_config(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text and len(text) < 400, text


def test_files_that_are_no_yaml_text(tmp_path):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(bytes(range(256)))
    cases = [(binary, "is not a text file"), (tmp_path, "is a folder, not a YAML file"),
             (tmp_path / "missing.yaml", "not found")]
    if os.geteuid() == 0:
        cases.append((Path("/proc/self/mem"), "cannot be read (Input/output error)"))  # root reads every mode
    for path, message in cases:
        with pytest.raises(ConfigError, match=re.escape(message)):
            check_config(path)
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(path, "t")


@pytest.mark.parametrize(("text", "weight"), [("", SMALL_WEIGHT), ("samurai:\nmodel_size_overrides:\n", SMALL_WEIGHT),
                                              ("samurai: {kf_score_weight: 1}\n", 1.0)])
def test_empty_sections_and_integers_for_numbers_are_fine(tmp_path, text, weight):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    check_config(path)
    config = load_config(path, "t")
    assert config.samurai.kf_score_weight == weight and isinstance(config.samurai.kf_score_weight, float)
