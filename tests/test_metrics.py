"""GET /metrics (read with prometheus-client's own parser) and GET /healthz on a real run."""

from __future__ import annotations

import json
import signal
import time

from tests.live_helpers import free_port, http, scrape, start_rtsp_server, start_run, stop_process, wait_for

BOX = "20,100,40,40"  # the leave clip's first box
ROW_BOX = "0,95,320,50"  # tests/rtsp_scene_server.py: the row of its sliding square
RUN_TIMEOUT_S = 120.0
OUTAGE_S = 4.0
EXIT_OK = 0


def test_metrics_agree_with_the_summary(leave_clip, demo_models, tmp_path):
    folder, frames, _ = leave_clip
    web_port, out, log = free_port(), tmp_path / "out", tmp_path / "run.log"
    base = f"http://127.0.0.1:{web_port}"
    run = start_run(["--video", str(folder), "--bbox", BOX, "--model-dir", str(demo_models), "--backend", "onnx",
                     "--output", str(out), "--no-display", "--serve", f"127.0.0.1:{web_port}"], log)
    try:
        wait_for(lambda: (out / "summary.json").exists(), RUN_TIMEOUT_S, "the end of the clip", run, log)
        metrics = scrape(base)
        health = http("GET", f"{base}/healthz")
        assert http("POST", f"{base}/api/stop")[0] == 200
        assert run.wait(RUN_TIMEOUT_S) == EXIT_OK
    finally:
        stop_process(run)
    summary = json.loads((out / "summary.json").read_text())
    assert metrics[("samurai_frames_total", ())] == summary["frames"] == len(frames)
    assert metrics[("samurai_dropped_frames_total", ())] == summary["dropped"] == 0
    assert metrics[("samurai_latency_seconds_count", ())] == summary["frames"]
    for stage, mean_ms in summary["stage_ms_mean"].items():
        count = metrics[("samurai_stage_seconds_count", (("stage", stage),))]
        total_s = metrics[("samurai_stage_seconds_sum", (("stage", stage),))]
        assert abs(total_s * 1000 - mean_ms * summary["frames"]) < 1e-3 * max(mean_ms * summary["frames"], 1)
        assert 0 < count <= summary["frames"]
    assert metrics[("samurai_objects", (("state", "ended"),))] == 1
    assert metrics[("samurai_source_reconnects_total", ())] == 0
    assert health == (503, b"the run has ended\n")


def test_healthz_turns_503_during_a_stream_outage_and_200_after(demo_models, tmp_path):
    rtsp_port, web_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    out, log = tmp_path / "out", tmp_path / "run.log"
    server = start_rtsp_server(rtsp_port)
    run = start_run(["--video", f"rtsp://127.0.0.1:{rtsp_port}/scene", "--bbox", ROW_BOX, "--model-dir",
                     str(demo_models), "--backend", "onnx", "--output", str(out), "--no-display", "--serve",
                     f"127.0.0.1:{web_port}", "--stream-timeout", "2", "--reconnect-s", "60"], log)
    try:
        wait_for(lambda: http("GET", f"{base}/healthz") == (200, b"ok\n"), RUN_TIMEOUT_S, "healthy", run, log)
        frames_before = scrape(base)[("samurai_frames_total", ())]
        stop_process(server)
        outage = wait_for(lambda: (lambda answer: answer if answer[0] == 503 else None)(http("GET", f"{base}/healthz")),
                          RUN_TIMEOUT_S, "503 while the stream is away", run, log)
        assert b"reconnecting" in outage[1], outage
        assert scrape(base)[("samurai_source_up", ())] == 0
        time.sleep(OUTAGE_S)
        server = start_rtsp_server(rtsp_port)
        wait_for(lambda: http("GET", f"{base}/healthz") == (200, b"ok\n"), RUN_TIMEOUT_S, "healthy again", run, log)
        wait_for(lambda: scrape(base)[("samurai_frames_total", ())] > frames_before, RUN_TIMEOUT_S, "frames", run, log)
        metrics = scrape(base)
        run.send_signal(signal.SIGTERM)
        assert run.wait(RUN_TIMEOUT_S) == EXIT_OK, log.read_text()[-3000:]
    finally:
        stop_process(run)
        stop_process(server)
    assert metrics[("samurai_source_reconnects_total", ())] == 1 and metrics[("samurai_source_up", ())] == 1
    summary = json.loads((out / "summary.json").read_text())
    assert metrics[("samurai_frames_total", ())] <= summary["frames"]
    assert metrics[("samurai_dropped_frames_total", ())] <= summary["dropped"]
