"""The result stream (docs/service.md): --events JSON lines and GET /api/events (SSE) equal track.txt.

The reference is track.txt itself, written by the file outputs, and the leave
clip's known course: the target is seen on frames 0-17 and 26-43, away between.
"""

from __future__ import annotations

import json
import socket
import time

from app.live.control import TrackController
from app.publish.sse import SseBroadcaster
from app.serve.hub import FrameHub
from app.serve.server import WebServer
from tests.live_helpers import SseReader, free_port, http, scrape, start_run, stop_process, wait_for

BOX = [20, 100, 40, 40]  # the leave clip's first box (scripts/make_demo_clip.py)
RUN_TIMEOUT_S = 120.0
CLIP_FPS = 30.0  # a folder carries no rate; the sources take 30 FPS
FIRST_AWAY, BACK = 18, 26  # the leave clip: first frame without the target, first one with it again


def _track_lines(out) -> list[list[int]]:
    return [[int(v) for v in line.split(",")] for line in (out / "track.txt").read_text().splitlines()]


def _as_track_txt(box) -> list[int]:
    return [0, 0, 0, 0] if box is None else box


def _check_against_track_txt(records: list[dict], out) -> None:
    tracks = [r for r in records if r["type"] == "track"]
    lines = _track_lines(out)
    assert [r["frame"] for r in tracks] == list(range(len(lines)))
    assert [_as_track_txt(r["box"]) for r in tracks] == lines
    assert all(abs(r["time"] - r["frame"] / CLIP_FPS) < 1e-3 and r["id"] == 1 for r in tracks)
    assert set(tracks[0]) == {"type", "frame", "time", "id", "state", "box", "object_score", "run"}
    summary = json.loads((out / "summary.json").read_text())
    assert {r["run"] for r in records} == {summary["started"]}, "every record carries its run's start"


def _state_events(records: list[dict]) -> list[tuple[str, int]]:
    return [(r["event"], r["frame"]) for r in records if r["type"] == "state"]


def test_events_file_equals_track_txt_with_lost_and_found(leave_clip, demo_models, tmp_path):
    folder, frames, _ = leave_clip
    out, events = tmp_path / "out", tmp_path / "events.jsonl"
    run = start_run(["--video", str(folder), "--bbox", ",".join(map(str, BOX)), "--model-dir", str(demo_models),
                     "--backend", "onnx", "--output", str(out), "--no-display", "--events", str(events)],
                    tmp_path / "run.log")
    try:
        assert run.wait(RUN_TIMEOUT_S) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        stop_process(run)
    records = [json.loads(line) for line in events.read_text().splitlines()]
    _check_against_track_txt(records, out)
    last = len(frames) - 1
    assert _state_events(records) == [("added", 0), ("lost", FIRST_AWAY), ("found", BACK), ("ended", last)]
    lost = [r for r in records if r["type"] == "track" and r["state"] == "lost"]
    assert [r["frame"] for r in lost] == list(range(FIRST_AWAY, BACK)) and all(r["box"] is None for r in lost)


def _serve_waiting(leave_clip, demo_models, out, web_port, *extra):
    """A run with --serve and no box: it holds frame 0 until a box comes, so a client can connect first."""
    folder, _, _ = leave_clip
    return start_run(["--video", str(folder), "--model-dir", str(demo_models), "--backend", "onnx", "--output",
                      str(out), "--no-display", "--serve", f"127.0.0.1:{web_port}", *extra], out.parent / "run.log")


def _start_on_frame_zero(base: str, run, log) -> None:
    wait_for(lambda: http("GET", f"{base}/api/frame.jpg")[0] == 200, RUN_TIMEOUT_S, "frame 0 on the page", run, log)
    code, body = http("POST", f"{base}/api/track", {"box": BOX, "frame": 0})
    assert code == 200, body


def test_sse_client_reads_events_equal_to_track_txt(leave_clip, demo_models, tmp_path):
    _, frames, _ = leave_clip
    web_port, out, log = free_port(), tmp_path / "out", tmp_path / "run.log"
    base = f"http://127.0.0.1:{web_port}"
    run = _serve_waiting(leave_clip, demo_models, out, web_port)
    try:
        wait_for(lambda: http("GET", f"{base}/api/status")[0] == 200, RUN_TIMEOUT_S, "the server", run, log)
        reader = SseReader(f"{base}/api/events")
        _start_on_frame_zero(base, run, log)
        wait_for(lambda: any(r.get("event") == "ended" for r in reader.named("state")), RUN_TIMEOUT_S, "the end", run,
                 log)
        assert reader.named("status")[0]["state"] == "waiting"
        assert http("POST", f"{base}/api/stop")[0] == 200
        assert run.wait(RUN_TIMEOUT_S) == 0
        wait_for(lambda: reader.ended, RUN_TIMEOUT_S, "the stream to end with the server")
    finally:
        stop_process(run)
    records = [data for name, data in reader.events if name in ("track", "state")]
    _check_against_track_txt(records, out)
    assert _state_events(records) == [("added", 0), ("lost", FIRST_AWAY), ("found", BACK), ("ended", len(frames) - 1)]
    assert reader.named("status")[-1]["state"] == "ended" and not reader.named("gap")


def test_a_stalled_sse_client_leaves_the_run_whole(leave_clip, demo_models, tmp_path):
    """A client that asks for the stream and never reads a byte: the run tracks every frame, equal to the events
    file, and ends by itself. That the publisher never waits for a client is checked where it can be forced (the
    socket filled, below); a frame-rate comparison of two runs measured the neighbours on a shared machine."""
    _, frames, _ = leave_clip
    web_port, out, log, events = free_port(), tmp_path / "out", tmp_path / "run.log", tmp_path / "events.jsonl"
    base = f"http://127.0.0.1:{web_port}"
    run = _serve_waiting(leave_clip, demo_models, out, web_port, "--events", str(events))
    client = socket.socket()
    try:
        wait_for(lambda: http("GET", f"{base}/api/status")[0] == 200, RUN_TIMEOUT_S, "the server", run, log)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        client.connect(("127.0.0.1", web_port))
        client.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        _start_on_frame_zero(base, run, log)
        wait_for(lambda: (out / "summary.json").exists(), RUN_TIMEOUT_S, "the run's end", run, log)
        assert http("POST", f"{base}/api/stop")[0] == 200
        assert run.wait(RUN_TIMEOUT_S) == 0, log.read_text()[-3000:]
    finally:
        stop_process(run)
        client.close()
    assert len(_track_lines(out)) == len(frames)
    _check_against_track_txt([json.loads(line) for line in events.read_text().splitlines()], out)


QUEUE = 64  # a small client queue, so that it fills fast
PAD = "x" * 1000  # records of about a kilobyte fill the socket buffers in a few thousand
PUBLISH_LIMIT = 200_000
MAX_PUBLISH_S = 0.05  # one publish call: never a wait for a client
LOST_NOW = 10
SETTLE_S = 0.3  # the client's queue stays full this long: the server's writer is blocked on the socket


def _raw_events_client(port: int) -> socket.socket:
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    client.connect(("127.0.0.1", port))
    client.sendall(b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    return client


def _parse_events(raw: bytes) -> list[tuple[str, dict]]:
    body = raw.split(b"\r\n\r\n", 1)[1].decode(errors="replace")
    found = []
    for block in body.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if line.startswith(("event: ", "data: ")))
        if "event" in lines and "data" in lines:
            try:
                found.append((lines["event"], json.loads(lines["data"])))
            except ValueError:  # a chunk-size line of the chunked body cut into this block
                continue
    return found


def _read_until_quiet(client: socket.socket, quiet_s: float = 0.5) -> bytes:
    client.settimeout(quiet_s)
    chunks = []
    try:
        while chunk := client.recv(1 << 16):
            chunks.append(chunk)
    except TimeoutError:
        pass
    return b"".join(chunks)


def _read_all(client: socket.socket, timeout_s: float) -> bytes:
    client.settimeout(timeout_s)
    chunks = []
    while chunk := client.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_slow_sse_client_is_told_what_it_lost_and_a_stalled_one_is_cut_off(tmp_path):
    from PIL import Image

    from app.media.sources import FolderSource
    from app.live.health import HealthCheck
    from app.serve.metrics import CONTENT_TYPE, RunMetrics
    from app.serve.server import Probes

    Image.new("RGB", (64, 48)).save(tmp_path / "0.png")
    controller = TrackController((64, 48))
    metrics = RunMetrics(FolderSource(tmp_path), controller)
    broadcaster = SseBroadcaster(controller.status, capacity=QUEUE, on_lost=metrics.client_lost)
    probes = Probes(metrics.exposition, CONTENT_TYPE, HealthCheck(FolderSource(tmp_path), controller, 1.0))
    server = WebServer(controller, FrameHub(), "127.0.0.1", free_port(), events=broadcaster, probes=probes)
    frame, slowest = 0, 0.0

    def publish() -> None:
        nonlocal frame, slowest
        started = time.perf_counter()
        broadcaster.publish([{"type": "track", "frame": frame, "pad": PAD}])
        slowest = max(slowest, time.perf_counter() - started)
        frame += 1

    try:
        slow = _raw_events_client(server.port)
        wait_for(lambda: len(broadcaster.clients) == 1, 10.0, "the client")
        (queue_of_slow,) = broadcaster.clients
        # Until the socket is full and the client's queue holds all it may: from now on every event pushes one out.
        # The server's writer may still be moving events into the socket when the queue first fills (a busy
        # machine schedules it late), so the queue must stay full for SETTLE_S twice running.
        settled = 0
        while settled < 2 and frame < PUBLISH_LIMIT:
            while len(queue_of_slow.queue) < QUEUE and frame < PUBLISH_LIMIT:
                publish()
            time.sleep(SETTLE_S)
            settled = settled + 1 if len(queue_of_slow.queue) == QUEUE else 0
        for _ in range(LOST_NOW):
            publish()
        assert queue_of_slow.lost == LOST_NOW and not queue_of_slow.cut
        slow.settimeout(10.0)
        received = b""
        while b'"frame": %d,' % (frame - 1) not in received:
            received += slow.recv(1 << 16)
        received += _read_until_quiet(slow)
        events = _parse_events(received)
        gaps = [data for name, data in events if name == "gap"]
        assert gaps == [{"type": "gap", "lost": LOST_NOW}]
        gap_at = [name for name, _ in events].index("gap")
        after = [data["frame"] for name, data in events[gap_at:] if name == "track"]
        assert after == list(range(frame - QUEUE, frame)), "the newest events, in order, after the gap"
        slow.close()

        stalled = _raw_events_client(server.port)
        wait_for(lambda: len(broadcaster.clients) == 1 and broadcaster.clients[0] is not queue_of_slow, 10.0, "client")
        (queue_of_stalled,) = broadcaster.clients
        while not queue_of_stalled.cut and frame < PUBLISH_LIMIT:
            publish()
        # Cut off once it lost a whole queue's worth without reading (it may have read once while the socket filled).
        assert queue_of_stalled.cut and broadcaster.clients == [] and queue_of_stalled.unreported == QUEUE
        _read_all(stalled, 10.0)  # ends (the server closed the connection) instead of timing out
        stalled.close()
        assert slowest < MAX_PUBLISH_S, slowest
        lost = scrape(f"http://127.0.0.1:{server.port}")
        assert queue_of_slow.lost == LOST_NOW and queue_of_stalled.lost >= QUEUE
        assert lost[("samurai_events_dropped_total", ())] == LOST_NOW + queue_of_stalled.lost
    finally:
        server.close()


def test_a_client_cut_off_gets_nothing_more():
    """The connection's writer may wake for events queued before the cut and take after it: it must get no events
    and no gap, and the count of what the client never heard of stays (seen once as a race under load)."""
    import asyncio

    broadcaster = SseBroadcaster(dict, capacity=2)

    async def cut_then_take():
        client = broadcaster.subscribe()
        for frame in range(4):
            broadcaster.publish([{"type": "track", "frame": frame}])
        return client, broadcaster.take(client)

    client, taken = asyncio.run(cut_then_take())
    assert client.cut and broadcaster.clients == []
    assert taken == ([], 0) and client.unreported == client.lost == 2


def test_events_on_standard_output_leave_the_logs_on_standard_error(leave_clip, demo_models, tmp_path):
    import subprocess
    import sys

    from tests.live_helpers import REPO

    frames = 4
    done = subprocess.run([sys.executable, str(REPO / "app" / "run.py"), "--video", str(leave_clip[0]), "--bbox",
                           ",".join(map(str, BOX)), "--model-dir", str(demo_models), "--backend", "onnx", "--output",
                           str(tmp_path / "out"), "--no-display", "--max-frames", str(frames), "--events", "-"],
                          cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["frame"] for r in records if r["type"] == "track"] == list(range(frames))
    assert "INFO" in done.stderr and "INFO" not in done.stdout
