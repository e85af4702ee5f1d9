"""A real RTSP server (GStreamer) streaming a generated scene to `app/run.py --video rtsp://...`.

The scene is one red square sliding at a fixed height (tests/rtsp_scene_server.py)
and the tracker runs the synthetic colour checkpoint, which follows red: every box
must be that square (its size, its row) and it must move. The server asks for a
user and password; the password must appear nowhere the user can see.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.live_helpers import (
    free_port,
    http,
    start_rtsp_server,
    start_run,
    status,
    stop_process,
    wait_for,
)

PASSWORD = "secret"
USER = "viewer"
# tests/rtsp_scene_server.py: a 40x40 square at y=100 in a 320x240 frame.
TARGET_Y, TARGET_SIZE = 100, 40
# H.264 blurs the square's edges by a pixel or two.
BOX_TOLERANCE_PX = 4
# A box over the square's whole row: the square moves, so where it is at the first frame is not known.
ROW_BOX = f"0,{TARGET_Y - 5},320,{TARGET_SIZE + 10}"
RESULTS_EACH_SIDE = 3
OUTAGE_S = 5.0
# The run may take a while to load the models and track on a busy CI machine.
TRACK_TIMEOUT_S = 180.0
EXIT_TIMEOUT_S = 60.0


def on_target(box) -> bool:
    if not box:
        return False
    x, y, w, h = box
    return all(abs(v - ref) <= BOX_TOLERANCE_PX for v, ref in ((y, TARGET_Y), (w, TARGET_SIZE), (h, TARGET_SIZE)))


def _collect_on_target(base: str, after_frame: int, count: int, process, log) -> list[dict]:
    """Statuses of `count` different frames after `after_frame`, each tracking the square."""
    seen: dict[int, dict] = {}

    def enough():
        now = status(base)
        if now["frame"] > after_frame and now["state"] == "tracking":
            assert on_target(now["box"]), now
            seen[now["frame"]] = now
        return len(seen) >= count

    wait_for(enough, TRACK_TIMEOUT_S, f"{count} tracked frames after frame {after_frame}", process, log)
    return list(seen.values())


def test_stream_follows_target_survives_outage_and_hides_password(demo_models, tmp_path):
    rtsp_port, web_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    out, log = tmp_path / "out", tmp_path / "run.log"
    server = start_rtsp_server(rtsp_port, USER, PASSWORD)
    run = start_run(
        ["--video", f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{rtsp_port}/scene", "--bbox", ROW_BOX,
         "--model-dir", str(demo_models), "--backend", "onnx", "--output", str(out), "--no-display",
         "--serve", f"127.0.0.1:{web_port}", "--stream-timeout", "5", "--reconnect-s", "60"],
        log,
    )
    try:
        before = _collect_on_target(base, -1, RESULTS_EACH_SIDE, run, log)
        stop_process(server)
        time.sleep(OUTAGE_S)
        server = start_rtsp_server(rtsp_port, USER, PASSWORD)
        last = max(s["frame"] for s in before)
        after = _collect_on_target(base, last, RESULTS_EACH_SIDE, run, log)
        assert run.poll() is None, "the run went on by itself"
        pages = [http("GET", f"{base}{path}")[1] for path in ("/", "/static/app.js", "/api/status", "/api/frame.jpg")]
        assert not any(PASSWORD.encode() in page for page in pages)
        assert http("POST", f"{base}/api/stop")[0] == 200
        assert run.wait(EXIT_TIMEOUT_S) == 0, log.read_text()[-3000:]
    finally:
        stop_process(run)
        stop_process(server)
    text = log.read_text()
    assert PASSWORD not in text, "the password reached the log"
    assert text.count("stopped delivering frames") == 1 and text.count("is back after") == 1, text[-3000:]
    summary_text = (out / "summary.json").read_text()
    assert PASSWORD not in summary_text
    summary = json.loads(summary_text)
    assert summary["source"] == f"rtsp://{USER}:***@127.0.0.1:{rtsp_port}/scene"
    assert summary["frames"] >= 2 * RESULTS_EACH_SIDE and summary["dropped"] > 0
    assert 0 < summary["latency_ms"]["p50"] <= summary["latency_ms"]["p95"] and summary["per_frame"] == "latency"
    boxes = [tuple(map(int, line.split(","))) for line in (out / "track.txt").read_text().splitlines()]
    tracked = [box for box in boxes if any(box)]
    assert len(tracked) >= summary["frames"] - 1 and all(on_target(box) for box in tracked), tracked
    assert len({box[0] for box in tracked}) >= 3, "the square moves, so must the box"
    # A live source: one track line per tracked frame, and frames.txt says which source frame and when.
    frames = [line.split(",") for line in (out / "frames.txt").read_text().splitlines()]
    indices, times = [int(index) for index, _ in frames], [float(time_s) for _, time_s in frames]
    assert len(frames) == len(boxes) == summary["frames"]
    assert all(b > a for a, b in zip(indices, indices[1:])) and all(b > a for a, b in zip(times, times[1:]))
    assert any(b - a > 1 for a, b in zip(indices, indices[1:])), "dropped frames leave gaps in frames.txt only"
    assert any(s["frame"] > last for s in after), "frame indices go on across the outage"


def _run_until_exit(args: list[str], log, timeout_s: float) -> tuple[int, str]:
    process = start_run(args, log)
    try:
        code = process.wait(timeout_s)
    finally:
        stop_process(process)
    return code, log.read_text()


def _one_error_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    assert len(errors) == 1 and "Traceback" not in text, text
    assert all(line.startswith(("INFO", "ERROR", "WARNING", "DEBUG")) for line in lines), f"native noise: {text}"
    return errors[0]


def test_unreachable_stream_is_one_line(demo_models, tmp_path):
    port = free_port()  # nothing listens there
    code, text = _run_until_exit(
        ["--video", f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{port}/scene", "--bbox", ROW_BOX,
         "--model-dir", str(demo_models), "--output", str(tmp_path / "out"), "--no-display"],
        tmp_path / "run.log", EXIT_TIMEOUT_S,
    )
    assert code == 2
    error = _one_error_line(text)
    assert f"127.0.0.1:{port}" in error and PASSWORD not in text


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers: opening a stream there must time out."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


def test_stream_open_times_out_with_one_line(demo_models, tmp_path, silent_server):
    timeout_s = 2
    started = time.monotonic()
    code, text = _run_until_exit(
        ["--video", f"rtsp://127.0.0.1:{silent_server}/scene", "--bbox", ROW_BOX, "--model-dir", str(demo_models),
         "--output", str(tmp_path / "out"), "--no-display", "--stream-timeout", str(timeout_s)],
        tmp_path / "run.log", EXIT_TIMEOUT_S,
    )
    assert code == 2
    error = _one_error_line(text)
    assert f"127.0.0.1:{silent_server}" in error and f"within {timeout_s} s" in error
    assert time.monotonic() - started < EXIT_TIMEOUT_S / 2
