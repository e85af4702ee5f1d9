"""The user-facing scripts run: benchmark, clip generator, evaluation."""

from __future__ import annotations

import json

from scripts import bench, evaluate, make_clip, make_demo_clip


def test_bench_prints_its_figures(export_256_variants, capsys):
    assert bench.main(["--model-dir", str(export_256_variants), "--frames", "3", "--objects", "1", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for figure in ("FPS", "mean ms per stage", "non-model overhead", "peak RSS", "one object's rest"):
        assert figure in out
    for count in (1, 2):
        assert f"N={count}: " in out and "image encoder 1x per frame" in out.split(f"N={count}: ")[1].splitlines()[0]


def test_leave_clip(tmp_path):
    clip = tmp_path / "leave"
    assert make_demo_clip.main(["--leave", "--out", str(clip)]) == 0
    truth = (tmp_path / "leave_groundtruth.txt").read_text().splitlines()
    assert len(list(clip.glob("*.jpg"))) == len(truth) == make_demo_clip.LEAVE_FRAMES
    assert "0,0,0,0" in truth and truth[0] != "0,0,0,0" and truth[-1] != "0,0,0,0"


def test_clip_and_evaluation(tmp_path, capsys):
    clip = tmp_path / "clip"
    assert make_clip.main(["--out", str(clip), "--frames", "5"]) == 0
    truth = tmp_path / "clip_groundtruth.txt"
    assert len(list(clip.glob("*.jpg"))) == 5 and len(truth.read_text().splitlines()) == 5
    assert evaluate.main([str(truth), str(truth)]) == 0
    assert "success AUC 0.952, precision@20px 1.000" in capsys.readouterr().out
    assert evaluate.main([str(tmp_path / "missing.txt"), str(truth)]) == 2


def test_summarise_decisions(tmp_path, capsys):
    from scripts import summarise_decisions

    log = tmp_path / "log.jsonl"
    states = ["tracking", "tracking", "lost", "tracking"]
    log.write_text("".join(
        json.dumps({"frame": i, "object": 1, "state": s, "object_score": 2.0 if s == "tracking" else -3.0}) + "\n"
        for i, s in enumerate(states)
    ))
    assert summarise_decisions.main([str(log)]) == 0
    out = capsys.readouterr().out
    assert "object 1: tracking 0-1, lost 2, tracking 3" in out and "2.0 2.0 -3.0 2.0" in out
    assert summarise_decisions.main([str(tmp_path / "missing.jsonl")]) == 2
