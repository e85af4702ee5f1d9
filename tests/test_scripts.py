"""The user-facing scripts run: benchmark, clip generator, evaluation."""

from __future__ import annotations

from scripts import bench, evaluate, make_clip


def test_bench_prints_its_figures(export_256_variants, capsys):
    assert bench.main(["--model-dir", str(export_256_variants), "--frames", "3"]) == 0
    out = capsys.readouterr().out
    for figure in ("FPS", "mean ms per stage", "non-model overhead", "peak RSS"):
        assert figure in out


def test_clip_and_evaluation(tmp_path, capsys):
    clip = tmp_path / "clip"
    assert make_clip.main(["--out", str(clip), "--frames", "5"]) == 0
    truth = tmp_path / "clip_groundtruth.txt"
    assert len(list(clip.glob("*.jpg"))) == 5 and len(truth.read_text().splitlines()) == 5
    assert evaluate.main([str(truth), str(truth)]) == 0
    assert "success AUC 0.952, precision@20px 1.000" in capsys.readouterr().out
    assert evaluate.main([str(tmp_path / "missing.txt"), str(truth)]) == 2
