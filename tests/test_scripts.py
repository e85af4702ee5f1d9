"""The user-facing scripts run: benchmark, clip generator, evaluation."""

from __future__ import annotations

from scripts import bench, evaluate, make_clip


def test_bench_prints_its_figures(export_256_variants, capsys):
    assert bench.main(["--model-dir", str(export_256_variants), "--frames", "3"]) == 0
    out = capsys.readouterr().out
    for figure in ("FPS", "mean ms per stage", "non-model overhead", "peak RSS"):
        assert figure in out


def test_bench_side_by_side_with_the_official_predictor(export_256_variants, checkpoint, capsys):
    """Separate timed processes for each pair and the official predictor; one table with both timings."""
    argv = ["--model-dir", str(export_256_variants), "--frames", "2", "--repeats", "1",
            "--official", str(checkpoint), "--pairs", "onnx:fp32,onnx:int8"]
    assert bench.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "whole s" in lines[1] and "loop ms/f" in lines[1] and "min IoU" in lines[1]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == {"official", "onnx:fp32", "onnx:int8"}
    assert rows["official"][3] == "1.00x" and rows["onnx:fp32"][-2:] == ["0", "1.000"]


def test_clip_and_evaluation(tmp_path, capsys):
    clip = tmp_path / "clip"
    assert make_clip.main(["--out", str(clip), "--frames", "5"]) == 0
    truth = tmp_path / "clip_groundtruth.txt"
    assert len(list(clip.glob("*.jpg"))) == 5 and len(truth.read_text().splitlines()) == 5
    assert evaluate.main([str(truth), str(truth)]) == 0
    assert "success AUC 0.952, precision@20px 1.000" in capsys.readouterr().out
    assert evaluate.main([str(tmp_path / "missing.txt"), str(truth)]) == 2
