"""The pipelined loop: same results as one-after-another on files; bounded age and flat memory on a fast live source."""

from __future__ import annotations

import json
import threading
import time

import cv2
import numpy as np
import pytest

from acl_models.bundle import open_bundle_with
from acl_models.onnx_runner import OnnxRunner
from app import run
from app.live.control import TrackController
from app.live.pipeline import TrackingLoop
from app.live.tracked import Tracked
from app.media.live_sources import CameraSource
from app.samurai.boxes import Box
from app.samurai.config import load_config
from app.samurai.multi_tracker import MultiObjectTracker
from tests.demo_model import TEST_THREADS
from tests.fast_camera import FAST_CAMERA_FPS, FastCamera
from tests.script_runs import run_script
from tests.synthetic import make_frames, write_jpeg_folder

NUM_FRAMES = 8
# The synthetic live source: 100 frames per second, far faster than the tracker, until it has tracked enough.
TRACKED_FRAMES = 10
# RSS may move by allocator noise, never by a queue that grows with the frames.
RSS_GROWTH_LIMIT_MB = 25
WARM_UP_RESULTS = 3


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        import resource

        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    frames, boxes = make_frames(NUM_FRAMES)
    x, y, w, h = boxes[0]
    return write_jpeg_folder(tmp_path_factory.mktemp("pipe") / "frames", frames), f"{x},{y},{w},{h}"


def test_pipelined_and_sequential_give_the_same_outputs(folder, export_128, tmp_path, capsys):
    path, bbox = folder
    outs = {}
    for name, extra in (("pipelined", []), ("sequential", ["--sequential"])):
        out = tmp_path / name
        code = run.main(["--video", str(path), "--bbox", bbox, "--model-dir", str(export_128), "--output", str(out),
                         "--no-display", "--backend", "onnx", "--save-masks", *extra])
        assert code == 0, capsys.readouterr().err
        outs[name] = out
    pipelined, sequential = outs["pipelined"], outs["sequential"]
    assert (pipelined / "track.txt").read_text() == (sequential / "track.txt").read_text()
    assert len((pipelined / "track.txt").read_text().splitlines()) == NUM_FRAMES
    for mask in sorted((sequential / "masks").glob("*.png")):
        assert np.array_equal(cv2.imread(str(mask)), cv2.imread(str(pipelined / "masks" / mask.name)))
    summaries = {k: json.loads((v / "summary.json").read_text()) for k, v in outs.items()}
    assert summaries["pipelined"]["pipelined"] and not summaries["sequential"]["pipelined"]
    for summary in summaries.values():
        assert summary["dropped"] == 0 and 0 < summary["step_ms"]["p50"] <= summary["step_ms"]["p95"]
        assert summary["per_frame"] == "step" and summary["latency_ms"] is None


def test_live_source_faster_than_the_tracker(demo_models):
    frames, boxes = make_frames(1)
    bundle = open_bundle_with(demo_models, lambda path: OnnxRunner(path, threads=TEST_THREADS))
    config = load_config(None, bundle.manifest.model_size)
    results: list[Tracked] = []
    rss: list[float] = []

    def record(item: Tracked) -> None:
        if item.result is not None:
            results.append(item)
            rss.append(_rss_mb())
            if len(results) == TRACKED_FRAMES:
                controller.stop()

    camera = FastCamera(FAST_CAMERA_FPS, frames[0])
    source = CameraSource(0, capture_factory=lambda _device: camera)
    controller = TrackController(source.size)
    controller.track(Box(*boxes[0]))
    loop = TrackingLoop(source, lambda: MultiObjectTracker(bundle, config), controller, [record])
    try:
        stats = loop.run()
    finally:
        source.close()
    # Results still queued when the stop came are written too.
    assert stats.frames == len(results) >= TRACKED_FRAMES
    # Every frame the camera delivered was either tracked or counted as dropped (the source is closed now).
    assert camera.reads > 2 * stats.frames and stats.frames + loop.dropped == camera.reads
    indices = [item.frame.index for item in results]
    assert indices == sorted(set(indices))
    assert all(int(item.frame.image[0, 0, 2]) + 256 * int(item.frame.image[0, 0, 1]) == item.frame.index
               for item in results), "each result is about the frame it names"
    # The newest frame is taken: a result is at most one step old plus the frame the feed prepared while the
    # previous step ran (on two shared cores the feed may only get the CPU between steps: a second step), plus
    # the longest wait for the camera and one preparation. All measured in this run, no fixed slack: a queue that
    # keeps old frames makes the age grow by a step per frame and breaks this within TRACKED_FRAMES.
    longest_step = max(sum(r.timings.values()) for r in results) / 1000.0
    prepare_s = max(r.timings.get("preprocess", 0.0) for r in results) / 1000.0
    read_gap = max(np.diff(camera.read_times))
    for item in results[1:]:
        age = item.ready - item.frame.captured
        assert age <= 2 * longest_step + read_gap + prepare_s, (item.frame.index, age, longest_step, read_gap)
    assert rss[-1] - rss[WARM_UP_RESULTS] < RSS_GROWTH_LIMIT_MB, rss
    assert not [t.name for t in threading.enumerate() if t.name in ("frame-feed", "output-writer")]


def test_bench_live_prints_its_figures(demo_models):
    done = run_script("bench_live", "--model-dir", demo_models, "--live-seconds", 2, "--file-frames", 3,
                      "--size", "160x120", "--threads", TEST_THREADS)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for figure in ("tracker", "latency p50", "p95", "dropped", "age of a frame", "sequential", "pipelined", "ratio"):
        assert figure in out, out
