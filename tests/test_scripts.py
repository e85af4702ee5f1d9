"""The user-facing scripts run: benchmark, clip generator, evaluation."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import partial

import numpy as np

from acl_models.manifest import SUBMODELS as SUBMODEL_NAMES
from acl_models.onnx_runner import OnnxRunner
from app.benchmarks.metrics import box_agreement
from app.media.colour_clip import LEAVE_FRAMES
from app.media.textured_clip import make_frames, scaled_clip
from app.samurai import preprocess
from app.samurai.config import load_config
from acl_models.manifest import SUBMODELS as SUBMODEL_NAMES
from tests.backends import track_clip
from tests.script_runs import run_script


def test_bench_prints_its_figures(export_256_variants):
    done = run_script("bench", "--model-dir", export_256_variants, "--frames", 3, "--objects", 1, 2, "--repeats", 1)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for figure in ("FPS", "mean ms per stage", "non-model overhead", "peak RSS", "one object's rest"):
        assert figure in out
    for count in (1, 2):
        assert f"N={count}: " in out and "image encoder 1x per frame" in out.split(f"N={count}: ")[1].splitlines()[0]


def test_leave_clip(tmp_path):
    clip = tmp_path / "leave"
    assert run_script("make_demo_clip", "--leave", "--out", clip).returncode == 0
    truth = (tmp_path / "leave_groundtruth.txt").read_text().splitlines()
    assert len(list(clip.glob("*.jpg"))) == len(truth) == LEAVE_FRAMES
    assert "0,0,0,0" in truth and truth[0] != "0,0,0,0" and truth[-1] != "0,0,0,0"


def test_bench_null_models_prints_cpu_stages(export_256_variants, tmp_path):
    recording = tmp_path / "recording.npz"
    args = ["--model-dir", str(export_256_variants), "--null-models", "--recording", str(recording),
            "--frames", "3", "--sizes", "64x48,96x80", "--repeats", "2"]
    done = run_script("bench", *args)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"into {recording}" in out and recording.is_file()
    for size in ("64x48", "96x80"):
        line = next(line for line in out.splitlines() if line.strip().startswith(size))
        for stage in ("total", "preprocess", "memory_attention", "selection", "postprocess", "other", "resize alone"):
            assert stage in line
    done = run_script("bench", *args, "--resize", "cv2_linear")  # replays the recording made above
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "recorded" not in out and "resize cv2_linear" in out
    done = run_script("bench", *args[:-4], "--sizes", "64by48")
    assert done.returncode == 2
    assert done.stderr.strip() == "ERROR '64by48' is not a WIDTHxHEIGHT source size such as 640x360"


def _agreement(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Box IoU of x, y, w, h rows (areas w * h), identical boxes counting 1: the script's rule, written here."""
    inter_w = np.clip(np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    inter_h = np.clip(np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = inter_w * inter_h
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return np.where(np.all(a == b, axis=1), 1.0, iou)


def test_compare_resize_prints_every_choice(export_256_variants):
    frames_n, width, height = 3, 200, 120
    done = run_script("compare_resize", "--model-dir", export_256_variants, "--clip", "textured", "--frames", frames_n,
                      "--sizes", f"{width}x{height}", "--repeats", 1, "--threads", 1)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"textured clip at {width}x{height}, {frames_n} frames") and "ms/frame" in lines[1]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert list(rows) == list(preprocess.RESIZES)
    # Each resize tracked here separately; the table must report the same agreement with pil_bicubic.
    frames, boxes = scaled_clip(*make_frames(frames_n), width, height)
    x, y, w, h = boxes[0]
    runs = {}
    for resize in preprocess.RESIZES:
        config = replace(load_config(None, "t"), resize=resize)
        results = track_clip(export_256_variants, frames, (x, y, x + w, y + h), config, partial(OnnxRunner, threads=1))
        runs[resize] = ([r.mask_index for r in results], np.array([r.box or (0, 0, 0, 0) for r in results], float))
    exact_tokens, exact_boxes = runs["pil_bicubic"]
    for resize, (tokens, track_boxes) in runs.items():
        same = sum(a == b for a, b in zip(tokens[1:], exact_tokens[1:]))
        agreement = _agreement(track_boxes, exact_boxes)[1:]
        assert rows[resize][2:5] == [f"{same}/{frames_n - 1}", f"{agreement.mean():.3f}", f"{agreement.min():.3f}"]
        assert float(rows[resize][1]) > 0 and 0 <= float(rows[resize][5]) <= 1


def test_box_agreement_counts_identical_boxes_as_one():
    a = np.array([[0, 0, 0, 0], [10, 10, 4, 4], [10, 10, 4, 4]], dtype=np.float64)
    b = np.array([[0, 0, 0, 0], [10, 10, 4, 4], [12, 10, 4, 4]], dtype=np.float64)
    np.testing.assert_allclose(box_agreement(a, b), [1.0, 1.0, 8 / 24])


def test_bench_side_by_side_with_the_official_predictor(export_256_variants, checkpoint):
    """Separate timed processes for each pair and the official predictor; one table with both timings."""
    argv = ["--model-dir", str(export_256_variants), "--frames", "2", "--repeats", "1",
            "--official", str(checkpoint), "--pairs", "onnx:fp32,onnx:int8,onnx:fp32+overlap"]
    done = run_script("bench", *argv)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "whole s" in lines[1] and "loop ms/f" in lines[1] and "min IoU" in lines[1]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == {"official", "onnx:fp32", "onnx:int8", "onnx:fp32+overlap"}
    assert rows["official"][3] == "1.00x"
    # onnx:fp32 is the reference the other rows are compared with. Over two frames int8 may round to an IoU of
    # 1.000 (test_cli.py checks on more frames that it moves the masks); it must stay close to fp32.
    flips, min_iou = int(rows["onnx:int8"][-2]), float(rows["onnx:int8"][-1])
    assert 0 <= flips <= 1 and 0.9 <= min_iou <= 1.0
    # Overlapped frames: the same arithmetic, so the same tokens and masks as the reference.
    assert rows["onnx:fp32+overlap"][-2:] == ["0", "1.000"]


def test_clip_and_evaluation(tmp_path):
    clip = tmp_path / "clip"
    assert run_script("make_clip", "--out", clip, "--frames", 5).returncode == 0
    truth = tmp_path / "clip_groundtruth.txt"
    assert len(list(clip.glob("*.jpg"))) == 5 and len(truth.read_text().splitlines()) == 5
    done = run_script("eval", "sequence", truth, truth)
    assert done.returncode == 0 and "success AUC 0.952, precision@20px 1.000" in done.stdout
    assert run_script("eval", "sequence", tmp_path / "missing.txt", truth).returncode == 2


def test_sequence_score_refuses_flags_for_other_frames_in_one_line(tmp_path):
    truth = tmp_path / "groundtruth.txt"
    truth.write_text("10,10,20,20\n12,10,20,20\n")
    absent = tmp_path / "full_occlusion.txt"
    absent.write_text("0\n")
    done = run_script("eval", "sequence", truth, truth, "--absent", absent)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == [f"ERROR   {absent} has 1 flags for 2 frames"]
    absent.write_text("0\n1\n")
    done = run_script("eval", "sequence", truth, truth, "--absent", absent)
    assert done.returncode == 0 and done.stdout.startswith("2 frames: success AUC "), done.stderr


def test_summarise_decisions(tmp_path):
    log = tmp_path / "log.jsonl"
    states = ["tracking", "tracking", "lost", "tracking"]
    log.write_text("".join(
        json.dumps({"frame": i, "object": 1, "state": s, "object_score": 2.0 if s == "tracking" else -3.0}) + "\n"
        for i, s in enumerate(states)
    ))
    done = run_script("summarise_decisions", log)
    assert done.returncode == 0
    assert "object 1: tracking 0-1, lost 2, tracking 3" in done.stdout and "2.0 2.0 -3.0 2.0" in done.stdout
    assert run_script("summarise_decisions", tmp_path / "missing.jsonl").returncode == 2


def test_bench_memory_prints_state_and_rss(export_256_variants, tmp_path):
    args = ["--model-dir", str(export_256_variants), "--memory", "--frames", "3", "--recording", str(tmp_path / "r.npz")]
    done = run_script("bench", *args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("recorded 3 frames") and lines[1].startswith("memory over 3 frames")
    assert lines[2].startswith("  frame      3: tracker state ") and " MB, RSS " in lines[2]


def test_profile_stages_times_every_graph_against_the_official_call(demo_checkpoint, demo_models):
    done = run_script("profile_stages", "--checkpoint", demo_checkpoint, "--model-dir", demo_models, "--threads", 1,
                      "--repeats", 1, "--ops")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines if line.split() and line.split()[0] in SUBMODEL_NAMES}
    assert list(rows) == list(SUBMODEL_NAMES)
    for name, (_, ours, theirs, ratio) in rows.items():
        assert float(ours) > 0 and float(theirs) > 0, name
        # The times are printed to 0.1 ms (each within 0.05 of its true value), the ratio to 0.01 from the true ones.
        low = (float(theirs) - 0.05) / (float(ours) + 0.05)
        high = (float(theirs) + 0.05) / (float(ours) - 0.05)
        assert low - 0.005 <= float(ratio.rstrip("x")) <= high + 0.005, name
    # --ops: one line of ONNX Runtime operator shares under each graph.
    shares = [line for line in lines if line.startswith("    ") and line.strip().endswith("%")]
    assert len(shares) == len(SUBMODEL_NAMES)


def test_profile_stages_refuses_a_folder_without_models(demo_checkpoint, tmp_path):
    done = run_script("profile_stages", "--checkpoint", demo_checkpoint, "--model-dir", tmp_path)
    assert done.returncode == 2
    err = done.stderr
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
