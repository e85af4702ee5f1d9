"""The user-facing scripts run: benchmark, clip generator, evaluation."""

from __future__ import annotations

import numpy as np

from app import preprocess
from scripts import bench, compare_resize, evaluate, make_clip


def test_bench_prints_its_figures(export_256_variants, capsys):
    assert bench.main(["--model-dir", str(export_256_variants), "--frames", "3"]) == 0
    out = capsys.readouterr().out
    for figure in ("FPS", "mean ms per stage", "non-model overhead", "peak RSS"):
        assert figure in out


def test_bench_null_models_prints_cpu_stages(export_256_variants, tmp_path, capsys):
    recording = tmp_path / "recording.npz"
    args = ["--model-dir", str(export_256_variants), "--null-models", "--recording", str(recording),
            "--frames", "3", "--sizes", "64x48,96x80", "--repeats", "2"]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert f"into {recording}" in out and recording.is_file()
    for size in ("64x48", "96x80"):
        line = next(line for line in out.splitlines() if line.strip().startswith(size))
        for stage in ("total", "preprocess", "memory_attention", "selection", "postprocess", "other", "resize alone"):
            assert stage in line
    assert bench.main([*args, "--resize", "cv2_linear"]) == 0  # replays the recording made above
    out = capsys.readouterr().out
    assert "recorded" not in out and "resize cv2_linear" in out
    assert bench.main([*args[:-4], "--sizes", "64by48"]) == 2
    assert capsys.readouterr().err.strip() == "ERROR '64by48' is not a WIDTHxHEIGHT source size such as 640x360"


def test_compare_resize_prints_every_choice(export_256_variants, capsys):
    assert compare_resize.main(["--model-dir", str(export_256_variants), "--clip", "textured", "--frames", "3",
                                "--sizes", "200x120", "--repeats", "1", "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("textured clip at 200x120, 3 frames") and "ms/frame" in lines[1]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert list(rows) == list(preprocess.RESIZES)
    assert rows["pil_bicubic"][2:5] == ["2/2", "1.000", "1.000"]  # the exact resize against itself
    for row in rows.values():
        same, tracked = map(int, row[2].split("/"))
        assert float(row[1]) > 0 and 0 <= same <= tracked == 2 and 0 <= float(row[4]) <= float(row[3]) <= 1


def test_box_agreement_counts_identical_boxes_as_one():
    a = np.array([[0, 0, 0, 0], [10, 10, 4, 4], [10, 10, 4, 4]], dtype=np.float64)
    b = np.array([[0, 0, 0, 0], [10, 10, 4, 4], [12, 10, 4, 4]], dtype=np.float64)
    np.testing.assert_allclose(compare_resize.box_agreement(a, b), [1.0, 1.0, 8 / 24])


def test_clip_and_evaluation(tmp_path, capsys):
    clip = tmp_path / "clip"
    assert make_clip.main(["--out", str(clip), "--frames", "5"]) == 0
    truth = tmp_path / "clip_groundtruth.txt"
    assert len(list(clip.glob("*.jpg"))) == 5 and len(truth.read_text().splitlines()) == 5
    assert evaluate.main([str(truth), str(truth)]) == 0
    assert "success AUC 0.952, precision@20px 1.000" in capsys.readouterr().out
    assert evaluate.main([str(tmp_path / "missing.txt"), str(truth)]) == 2
