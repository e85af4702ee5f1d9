"""`scripts/eval.py run` with the demo colour checkpoint on a tiny LaSOT-layout dataset.

Runs are interrupted and resumed, parallel and sharded; every variant must
give byte-identical results files (one ONNX Runtime thread per process, so the
arithmetic is the same everywhere).
"""

from __future__ import annotations

import json

import numpy as np

from app.benchmarks import runner
from app.media.colour_clip import make_frames
from scripts import eval as eval_cli
from tests import benchmark_layouts as layouts
from tests.demo_lasot import SEQUENCES, result_files, run_eval
from tests.demo_model import IMAGE_SIZE

INTERRUPT_AFTER = 2  # frames of red-2 tracked before the simulated Ctrl-C


def test_run_writes_upstream_result_files(whole_run):
    results = result_files(whole_run)
    assert sorted(results) == [f"{name}.txt" for name in SEQUENCES]
    for name, (_, length) in SEQUENCES.items():
        lines = results[f"{name}.txt"].splitlines()
        assert len(lines) == length and all(len(line.split(",")) == 4 for line in lines)
        times = (whole_run / f"{name}_time.txt").read_text().split()
        assert len(times) == length and all(float(t) > 0 for t in times)
    record = json.loads((whole_run / runner.RUN_FILE).read_text())
    assert record["mode"] == "samurai" and record["onnx_variant"] == "fp32"
    assert record["image_size"] == IMAGE_SIZE


def test_interrupted_run_resumes_with_only_what_is_missing(demo_lasot, demo_models, whole_run, tmp_path,
                                                           monkeypatch):
    original = runner.SequenceTracker.track
    tracked: list[str] = []

    def interrupting(self, task, results, on_frame):
        tracked.append(task.name)
        frames = 0

        def counting():
            nonlocal frames
            frames += 1
            on_frame()
            if task.name == "red-2" and frames == INTERRUPT_AFTER:
                raise KeyboardInterrupt

        return original(self, task, results, counting)

    monkeypatch.setattr(runner.SequenceTracker, "track", interrupting)
    out = tmp_path / "results"
    assert run_eval(demo_lasot, demo_models, out) == eval_cli.EXIT_INTERRUPTED
    assert tracked == ["red-1", "red-2"]
    assert result_files(out) == {"red-1.txt": result_files(whole_run)["red-1.txt"]}
    assert not list(out.glob("*.tmp")) and not (out / "red-2_time.txt").exists()

    monkeypatch.setattr(runner.SequenceTracker, "track", lambda self, task, results, on_frame: (
        tracked.append(task.name), original(self, task, results, on_frame))[1])
    tracked.clear()
    assert run_eval(demo_lasot, demo_models, out) == 0
    assert tracked == ["red-2", "red-3"]
    assert result_files(out) == result_files(whole_run)
    tracked.clear()
    assert run_eval(demo_lasot, demo_models, out) == 0
    assert tracked == []


def test_two_workers_equal_one(demo_lasot, demo_models, whole_run, tmp_path):
    assert run_eval(demo_lasot, demo_models, tmp_path / "two", "--workers", "2") == 0
    assert result_files(tmp_path / "two") == result_files(whole_run)


def test_two_shards_together_equal_the_whole(demo_lasot, demo_models, whole_run, tmp_path):
    out = tmp_path / "sharded"
    assert run_eval(demo_lasot, demo_models, out, "--shard", "1/2") == 0
    assert sorted(result_files(out)) == ["red-1.txt", "red-3.txt"]
    assert run_eval(demo_lasot, demo_models, out, "--shard", "2/2") == 0
    assert result_files(out) == result_files(whole_run)


def test_a_folder_from_other_settings_is_refused(demo_lasot, demo_models, whole_run, capfd):
    assert run_eval(demo_lasot, demo_models, whole_run, "--mode", "sam2") == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mode samurai -> sam2" in err[0]


def test_unreadable_frame_is_reported_not_fatal(demo_lasot, demo_models, tmp_path, capfd):
    frames, boxes = make_frames(3)
    root = layouts.lasot(tmp_path / "data", {"red-1": np.asarray(boxes[:2], float), "red-2": np.asarray(boxes, float)},
                         {"red-1": frames[:2], "red-2": frames})
    (root / "red" / "red-2" / "img" / "00000002.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert run_eval(root, demo_models, out) == eval_cli.EXIT_SEQUENCES_FAILED
    assert (out / "red-1.txt").is_file() and not (out / "red-2.txt").exists()
    err = capfd.readouterr().err
    assert "red-2: frame 1" in err and "cannot be read" in err and "Traceback" not in err


def test_score_and_compare_modes_on_the_run(demo_lasot, demo_models, whole_run, tmp_path, capsys):
    sam2 = tmp_path / "sam2"
    assert run_eval(demo_lasot, demo_models, sam2, "--mode", "sam2") == 0
    report = tmp_path / "report"
    assert eval_cli.main(["compare", "--dataset", "lasot", "--root", str(demo_lasot), "--results", str(whole_run),
                          str(sam2), "--out", str(report), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert f"{sam2.name} vs {whole_run.name}" in out
    scores = json.loads((report / "report.json").read_text())["runs"][whole_run.name]["overall"]
    # The colour model follows the red target: most frames overlap well (the occluded frame fails by rule).
    assert scores["success_auc"] > 0.6 and scores["precision"] > 0.8
    comparison = json.loads((report / "comparison.json").read_text())
    assert set(comparison["runs"][sam2.name]["sequences"]) == set(SEQUENCES)


def test_acl_backend_gives_the_same_results(acl, demo_lasot, demo_om, whole_run, tmp_path):
    """The run on the emulated NPU (.om from the stand-in ATC) writes the same files as ONNX Runtime."""
    out = tmp_path / "acl"
    assert run_eval(demo_lasot, demo_om, out, "--backend", "acl", "--sequences", "red-1") == 0
    assert result_files(out) == {"red-1.txt": result_files(whole_run)["red-1.txt"]}
