"""`scripts/eval.py score|compare` and `--pack` on hand-written results folders (no tracking)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from scripts import eval as eval_cli
from tests import benchmark_layouts as layouts

TRUTH = {
    "cat-1": np.array([[10, 10, 8, 6], [11, 10, 8, 6], [12, 11, 8, 6], [13, 11, 8, 6], [14, 12, 8, 6]], float),
    "dog-2": np.array([[4, 4, 10, 10], [5, 5, 10, 10], [6, 6, 0, 0], [7, 7, 10, 10]], float),
}
OCCLUDED = {"cat-1": [0, 0, 0, 1, 0]}
SHIFTED_FRAMES = [2, 3]  # frames of cat-1 where the second run is 8 px off
# Scored by hand with LaSOT's rules (README, "Metric conventions"). A run equal to the truth succeeds
# at 20 of the 21 overlap thresholds (overlap 1 is not > 1) on every counted frame; cat-1's occluded frame 3 and
# dog-2's empty-truth frame 2 fail everything, except that dog-2's frame 2 passes normalised precision
# (error -1) where cat-1's hidden frame fails it (LaSOT). Sequences weigh the same.
FP32_SCORES = {
    "success_auc": (4 / 5 + 3 / 4) / 2 * 20 / 21,
    "precision": (4 / 5 + 3 / 4) / 2,
    "norm_precision": (4 / 5 + 4 / 4) / 2,
    "op50": (4 / 5 + 3 / 4) / 2,
    "op75": (4 / 5 + 3 / 4) / 2,
}
# The shifted run: cat-1's frame 2 moves 8 px right, its full width, so overlap 0 there; the centre error
# 8 px stays within 20 px but is 1.0 of the width, above 0.2.
INT8_SCORES = {
    "success_auc": (3 / 5 + 3 / 4) / 2 * 20 / 21,
    "precision": (4 / 5 + 3 / 4) / 2,
    "norm_precision": (3 / 5 + 4 / 4) / 2,
    "op50": (3 / 5 + 3 / 4) / 2,
    "op75": (3 / 5 + 3 / 4) / 2,
}


@pytest.fixture
def lasot_root(tmp_path):
    root = layouts.lasot(tmp_path / "LaSOT", TRUTH, occluded=OCCLUDED)
    for name, flags in (("cat-1", "1,0,0,0,0,0,0,0,0,1,0,0,0,0"), ("dog-2", "0,0,0,0,0,0,0,0,0,0,0,0,0,1")):
        layouts.write_text(root / "att" / f"{name}.txt", flags + "\n")
    return root


def _write_run(folder, shift_frames=()):
    folder.mkdir(parents=True)
    runs = {}
    for name, truth in TRUTH.items():
        boxes = truth.copy()
        boxes[:, 2:] = np.maximum(boxes[:, 2:], 1)
        boxes[list(shift_frames) if name == "cat-1" else [], 0] += 8
        (folder / f"{name}.txt").write_text(layouts.box_lines(boxes.astype(int)))
        (folder / f"{name}_time.txt").write_text("0.1\n" * len(boxes))
        runs[name] = boxes
    return runs


def _main(*args):
    return eval_cli.main(list(map(str, args)))


def test_score_writes_report_table_attributes_and_plots(lasot_root, tmp_path, capsys):
    _write_run(tmp_path / "fp32")
    _write_run(tmp_path / "int8", SHIFTED_FRAMES)
    report = tmp_path / "report"
    assert _main("score", "--dataset", "lasot", "--root", lasot_root, "--results", tmp_path / "fp32",
                 tmp_path / "int8", "--out", report) == 0
    data = json.loads((report / "report.json").read_text())
    assert data["runs"]["fp32"]["overall"] == pytest.approx(FP32_SCORES)
    assert data["runs"]["int8"]["overall"] == pytest.approx(INT8_SCORES)
    assert all(0 <= v <= 1 for run in data["runs"].values() for v in run["overall"].values())
    assert data["attributes"]["FOC"]["sequences"] == 1 and data["attributes"]["ARC"]["fp32"]["success_auc"] > 0
    out = capsys.readouterr().out
    assert "success_auc" in out and "fp32" in out and "int8" in out and "per attribute" in out
    assert f"{FP32_SCORES['success_auc'] * 100:.1f}" in out and f"{INT8_SCORES['success_auc'] * 100:.1f}" in out
    for plot in ("success_plot.png", "precision_plot.png", "norm_precision_plot.png"):
        assert (report / plot).stat().st_size > 0


def test_compare_lists_divergent_frames(lasot_root, tmp_path, capsys):
    _write_run(tmp_path / "fp32")
    _write_run(tmp_path / "fp16")
    _write_run(tmp_path / "int8", SHIFTED_FRAMES)
    assert _main("compare", "--dataset", "lasot", "--root", lasot_root, "--results", tmp_path / "fp32",
                 tmp_path / "fp16", tmp_path / "int8", "--out", tmp_path / "report", "--no-plots") == 0
    comparison = json.loads((tmp_path / "report" / "comparison.json").read_text())
    assert comparison["baseline"] == "fp32"
    int8 = comparison["runs"]["int8"]["sequences"]
    assert int8["cat-1"]["divergent_frames"] == SHIFTED_FRAMES and int8["cat-1"]["difference"] < 0
    assert int8["dog-2"]["divergent_frames"] == [] and int8["dog-2"]["difference"] == 0
    assert all(not s["divergent_frames"] for s in comparison["runs"]["fp16"]["sequences"].values())
    out = capsys.readouterr().out
    assert "cat-1: success_auc" in out and "2 divergent frames (2-3)" in out and "no sequence differs" in out


def test_missing_results_are_one_line_or_skipped(lasot_root, tmp_path, capfd):
    _write_run(tmp_path / "run")
    (tmp_path / "run" / "dog-2.txt").unlink()
    args = ("score", "--dataset", "lasot", "--root", lasot_root, "--results", tmp_path / "run",
            "--out", tmp_path / "report", "--no-plots")
    assert _main(*args) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lacks 1 of 2 sequences (dog-2)" in err[0] and "--skip-missing" in err[0]
    assert _main(*args, "--skip-missing") == 0
    assert json.loads((tmp_path / "report" / "report.json").read_text())["sequences"] == 1
    assert _main("score", "--dataset", "lasot", "--root", lasot_root, "--results", tmp_path / "nothing",
                 "--out", tmp_path / "report") == 2
    assert "does not exist" in capfd.readouterr().err


def test_bad_results_file_is_one_line(lasot_root, tmp_path, capfd):
    _write_run(tmp_path / "run")
    (tmp_path / "run" / "cat-1.txt").write_text("1,2,3,4\n1,2,-3,4\n1,2,3,4\n1,2,3,4\n1,2,3,4\n")
    assert _main("score", "--dataset", "lasot", "--root", lasot_root, "--results", tmp_path / "run",
                 "--out", tmp_path / "report") == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cat-1.txt" in err[0] and "negative" in err[0]


def test_got10k_val_scores_and_test_split_packs(tmp_path, capsys):
    box = [2.0, 2.0, 10.0, 8.0]
    truth = np.array([box] * 4)
    root = layouts.got10k(tmp_path / "GOT", "val", {"GOT-10k_Val_000001": truth},
                          covers={"GOT-10k_Val_000001": [8, 8, 0, 8]})
    layouts.got10k(root, "test", {"GOT-10k_Test_000001": truth[:1]}, frames={"GOT-10k_Test_000001": 4})
    results = tmp_path / "res"
    results.mkdir()
    pred = truth.copy()
    pred[3, 0] += 5  # IoU 40/120 on the last frame
    (results / "GOT-10k_Val_000001.txt").write_text(layouts.box_lines(pred))
    assert _main("score", "--dataset", "got10k", "--root", root, "--results", results, "--out", tmp_path / "r") == 0
    overall = json.loads((tmp_path / "r" / "report.json").read_text())["runs"]["res"]["overall"]
    assert overall["ao"] == pytest.approx((1 + 1 / 3) / 2) and overall["sr50"] == 0.5
    assert (tmp_path / "r" / "success_plot.png").is_file()
    assert "ao" in capsys.readouterr().out

    (results / "GOT-10k_Test_000001.txt").write_text(layouts.box_lines(truth))
    (results / "GOT-10k_Test_000001_time.txt").write_text("0.1\n" * 4)
    args = ("score", "--dataset", "got10k", "--split", "test", "--root", root, "--results", results,
            "--out", tmp_path / "pack")
    assert _main(*args) == 2
    assert _main(*args, "--pack", "got10k") == 0
    with zipfile.ZipFile(tmp_path / "pack" / "res_got10k.zip") as archive:
        assert sorted(archive.namelist()) == ["GOT-10k_Test_000001/GOT-10k_Test_000001_001.txt",
                                              "GOT-10k_Test_000001/GOT-10k_Test_000001_time.txt"]


def test_trackingnet_pack(tmp_path):
    root = layouts.trackingnet(tmp_path / "TN", {"a_1": (np.array([[1, 2, 3, 4]], float), 3),
                                                 "b_2": (np.array([[1, 2, 3, 4]], float), 3)})
    results = tmp_path / "mine"
    results.mkdir()
    (results / "a_1.txt").write_text("1,2,3,4\n" * 3)
    args = ("score", "--dataset", "trackingnet", "--root", root, "--results", results, "--out", tmp_path / "p",
            "--pack", "trackingnet")
    assert _main(*args) == 2  # b_2 missing: the server needs every sequence
    (results / "b_2.txt").write_text("1,2,3,4\n" * 3)
    assert _main(*args) == 0
    with zipfile.ZipFile(tmp_path / "p" / "mine_trackingnet.zip") as archive:
        assert sorted(archive.namelist()) == ["a_1.txt", "b_2.txt"]
        assert archive.read("a_1.txt").decode() == "1,2,3,4\n" * 3


def test_compare_without_ground_truth_lists_divergent_frames(tmp_path, capsys):
    root = layouts.trackingnet(tmp_path / "TN", {"a_1": (np.array([[1, 2, 3, 4]], float), 4)})
    for name, lines in (("fp32", ["10,10,20,20"] * 4), ("om", ["10,10,20,20", "40,40,20,20", "0,0,0,0", "10,10,20,20"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a_1.txt").write_text("\n".join(lines) + "\n")
    assert _main("compare", "--dataset", "trackingnet", "--root", root, "--results", tmp_path / "fp32",
                 tmp_path / "om", "--out", tmp_path / "report") == 0
    assert "boxes only" in capsys.readouterr().out
    comparison = json.loads((tmp_path / "report" / "comparison.json").read_text())
    assert comparison["runs"]["om"]["sequences"]["a_1"] == {"divergent_frames": [1, 2]}
    assert _main("compare", "--dataset", "trackingnet", "--root", root, "--results", tmp_path / "fp32",
                 "--out", tmp_path / "report") == 2
