"""`--config FILE`: a tracker YAML of the user's own reaches the tracker, per-model-size overrides included."""

from __future__ import annotations

import json

import pytest

from app import run
from app.samurai.config import ConfigError, load_config

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
