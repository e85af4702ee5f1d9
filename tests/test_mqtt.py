"""--publish mqtt://... against a real Mosquitto broker started here on a free loopback port.

The subscriber is a plain paho-mqtt client; what it receives is checked against
track.txt and the leave clip's known course (the target is away on frames 18-25).
"""

from __future__ import annotations

import json
import re
import signal
import time

import pytest

from tests.live_helpers import (MqttSubscriber, broker_log, free_port, start_broker, start_rtsp_server, start_run,
                                stop_process, wait_for)

PREFIX = "boards/b1"
BOX = "20,100,40,40"  # the leave clip's first box
RUN_TIMEOUT_S = 120.0
FIRST_AWAY, BACK = 18, 26
OUTAGE_S = 3.0
RESULTS_EACH_SIDE = 3
ROW_BOX = "0,95,320,50"  # tests/rtsp_scene_server.py: the row of its sliding square
EXIT_OK = 0
# docs/service.md: a command of up to 64 KiB is read, a larger one refused; a log line quotes 200 characters of it.
COMMAND_LIMIT = 64 * 1024
LONGEST_WARNING = 600
RETAINED_WAIT_S = 5.0
REFUSED = 5  # the bad commands test_commands_start_and_drop_an_object_and_bad_ones_are_ignored sends


class Subscriber(MqttSubscriber):
    """Everything published under PREFIX/# unless told another topic."""

    def __init__(self, port: int, topic: str = f"{PREFIX}/#"):
        super().__init__(port, topic)


@pytest.fixture
def broker(tmp_path):
    port = free_port()
    process = start_broker(port, tmp_path)
    yield port, process
    stop_process(process)


def _track_lines(out) -> list[list[int]]:
    return [[int(v) for v in line.split(",")] for line in (out / "track.txt").read_text().splitlines()]


def _leave_run(leave_clip, demo_models, out, port, *extra):
    folder, _, _ = leave_clip
    return start_run(["--video", str(folder), "--model-dir", str(demo_models), "--backend", "onnx", "--output",
                      str(out), "--no-display", "--publish", f"mqtt://127.0.0.1:{port}/{PREFIX}", *extra],
                     out.parent / "run.log")


def test_a_track_message_per_frame_equal_to_track_txt_and_retained_states(leave_clip, demo_models, broker, tmp_path):
    port, _ = broker
    subscriber = Subscriber(port)
    out, log = tmp_path / "out", tmp_path / "run.log"
    run = _leave_run(leave_clip, demo_models, out, port, "--bbox", BOX)
    try:
        assert run.wait(RUN_TIMEOUT_S) == EXIT_OK, log.read_text()[-3000:]
    finally:
        stop_process(run)
        subscriber.close()
    tracks = subscriber.on(f"{PREFIX}/1/track")
    assert [t["frame"] for t in tracks] == list(range(len(leave_clip[1])))
    assert [t["box"] or [0, 0, 0, 0] for t in tracks] == _track_lines(out)
    states = [(s["event"], s["frame"]) for s in subscriber.on(f"{PREFIX}/1/state")]
    assert states == [("added", 0), ("lost", FIRST_AWAY), ("found", BACK), ("ended", len(leave_clip[1]) - 1)]
    assert subscriber.on(f"{PREFIX}/status") == ["online", "offline"]
    # A subscriber that comes later gets the last state and the status, both retained.
    late = Subscriber(port)
    try:
        wait_for(lambda: len(late.messages) >= 2, 10.0, "the retained messages")
    finally:
        late.close()
    assert sorted((topic, retained) for topic, _, retained in late.messages) == [
        (f"{PREFIX}/1/state", True), (f"{PREFIX}/status", True)]
    assert late.on(f"{PREFIX}/1/state")[0]["state"] == "ended" and late.on(f"{PREFIX}/status") == ["offline"]


def test_tracking_goes_on_while_the_broker_is_down_and_the_client_comes_back(demo_models, broker, tmp_path):
    """The broker is killed and started again without persistence: it comes back knowing no retained message,
    and the run publishes its objects' states again, so that a subscriber who comes later still gets them."""
    port, process = broker
    rtsp_port = free_port()
    rtsp = start_rtsp_server(rtsp_port)
    subscriber = Subscriber(port)
    out, log = tmp_path / "out", tmp_path / "run.log"
    run = start_run(["--video", f"rtsp://127.0.0.1:{rtsp_port}/scene", "--bbox", ROW_BOX, "--model-dir",
                     str(demo_models), "--backend", "onnx", "--output", str(out), "--no-display", "--publish",
                     f"mqtt://127.0.0.1:{port}/{PREFIX}"], log)
    topic, state_topic = f"{PREFIX}/1/track", f"{PREFIX}/1/state"
    late = None
    try:
        wait_for(lambda: len(subscriber.on(topic)) >= RESULTS_EACH_SIDE, RUN_TIMEOUT_S, "track messages", run, log)
        states_before = subscriber.on(state_topic)
        process.kill()
        process.wait()
        before = len(_track_lines(out)) if (out / "track.txt").exists() else 0
        time.sleep(OUTAGE_S)
        process = start_broker(port, tmp_path)
        wait_for(lambda: "is back after" in log.read_text(), RUN_TIMEOUT_S, "the reconnection", run, log)
        last_before = max(t["frame"] for t in subscriber.on(topic))
        wait_for(lambda: sum(t["frame"] > last_before for t in subscriber.on(topic)) >= RESULTS_EACH_SIDE,
                 RUN_TIMEOUT_S, "track messages after the outage", run, log)
        late = Subscriber(port, state_topic)
        wait_for(lambda: late.messages, RETAINED_WAIT_S, "the retained state after the broker's restart")
        run.send_signal(signal.SIGTERM)
        assert run.wait(RUN_TIMEOUT_S) == EXIT_OK, log.read_text()[-3000:]
    finally:
        stop_process(run)
        stop_process(process)
        stop_process(rtsp)
        subscriber.close()
        if late is not None:
            late.close()
    (name, state, retained), *_ = late.messages
    # The last state the run had published before the restart (the scene's square never leaves the view).
    assert name == state_topic and retained and state == states_before[-1], (late.messages, states_before)
    text = log.read_text()
    assert text.count("went away") == 1 and text.count("is back after") == 1, text[-3000:]
    lost = int(re.search(r"(\d+) messages lost meanwhile", text).group(1))
    summary = json.loads((out / "summary.json").read_text())
    assert len(_track_lines(out)) > before, "tracking went on while the broker was down"
    assert 0 < lost <= summary["frames"], (lost, summary["frames"])


def test_a_killed_tracker_leaves_offline_through_its_last_will(leave_clip, demo_models, broker, tmp_path):
    port, _ = broker
    subscriber = Subscriber(port)
    out, log = tmp_path / "out", tmp_path / "run.log"
    run = _leave_run(leave_clip, demo_models, out, port, "--bbox", BOX)
    try:
        wait_for(lambda: subscriber.on(f"{PREFIX}/status") == ["online"], RUN_TIMEOUT_S, "online", run, log)
        run.send_signal(signal.SIGKILL)
        run.wait(RUN_TIMEOUT_S)
        wait_for(lambda: subscriber.on(f"{PREFIX}/status") == ["online", "offline"], 10.0, "the Last Will")
    finally:
        stop_process(run)
        subscriber.close()


def test_online_is_announced_after_the_command_subscription(leave_clip, demo_models, broker, tmp_path):
    """A controller may answer `online` with a command at once: the broker must already route PREFIX/cmd to the run.

    Mosquitto logs the packets of each client in the order it handles them; the run's SUBSCRIBE
    must come before its PUBLISH of `online`, which it sends only once the subscription is acknowledged.
    """
    port, process = broker
    out = tmp_path / "out"
    run = _leave_run(leave_clip, demo_models, out, port, "--bbox", BOX, "--max-frames", "2")
    try:
        assert run.wait(RUN_TIMEOUT_S) == EXIT_OK, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        stop_process(run)
    stop_process(process)  # mosquitto flushes its log as it ends
    lines = broker_log(port, tmp_path).read_text().splitlines()
    online = next(i for i, line in enumerate(lines) if f"'{PREFIX}/status'" in line and "Received PUBLISH" in line)
    client = re.search(r"Received PUBLISH from (\S+)", lines[online]).group(1)
    subscribed = [i for i, line in enumerate(lines) if f"Received SUBSCRIBE from {client}" in line]
    assert subscribed and subscribed[0] < online, "\n".join(lines[-40:])


def _padded(command: dict, size: int) -> str:
    """The command's JSON with trailing spaces up to `size` bytes: still a valid command."""
    text = json.dumps(command)
    return text + " " * (size - len(text))


def test_commands_start_and_drop_an_object_and_bad_ones_are_ignored(leave_clip, demo_models, broker, tmp_path):
    port, _ = broker
    subscriber = Subscriber(port)
    out, log = tmp_path / "out", tmp_path / "run.log"
    run = _leave_run(leave_clip, demo_models, out, port)  # no box: it comes on PREFIX/cmd
    cmd = f"{PREFIX}/cmd"
    box = [20, 100, 40, 40]
    huge = _padded({"box": box}, 1 << 20)  # well formed, but a megabyte
    long_action = json.dumps({"action": "x" * (COMMAND_LIMIT // 2)})  # under the limit, malformed, long
    try:
        wait_for(lambda: subscriber.on(f"{PREFIX}/status") == ["online"], RUN_TIMEOUT_S, "online", run, log)
        subscriber.publish(cmd, "{not json")
        subscriber.publish(cmd, json.dumps({"box": box, "frame": -7}))
        subscriber.publish(cmd, huge)
        subscriber.publish(cmd, _padded({"box": box, "id": 3}, COMMAND_LIMIT + 1))
        subscriber.publish(cmd, long_action)
        subscriber.publish(cmd, _padded({"box": box, "id": 2}, COMMAND_LIMIT))  # at the limit: read
        wait_for(lambda: len(subscriber.on(f"{PREFIX}/2/track")) >= 2, RUN_TIMEOUT_S, "object 2", run, log)
        wait_for(lambda: len(subscriber.on(f"{PREFIX}/error")) >= REFUSED, RUN_TIMEOUT_S, "the error records", run, log)
        subscriber.publish(cmd, json.dumps({"action": "drop", "id": 2}))
        # With its only object dropped the file plays on to its end, so the run may have ended (its last messages
        # still on their way) by the time the drop arrives: wait for the message, not for the run.
        wait_for(lambda: any(s["event"] == "dropped" for s in subscriber.on(f"{PREFIX}/2/state")), RUN_TIMEOUT_S,
                 "the drop")
        subscriber.publish(cmd, json.dumps({"action": "stop"}))
        assert run.wait(RUN_TIMEOUT_S) == EXIT_OK, log.read_text()[-3000:]
    finally:
        stop_process(run)
        subscriber.close()
    text = log.read_text()
    assert "Traceback" not in text
    warnings = re.findall(r"WARNING .*ignored a command on boards/b1/cmd.*", text)
    assert len(warnings) == REFUSED, text[-3000:]
    assert all(len(line) <= LONGEST_WARNING for line in warnings), [len(line) for line in warnings]
    assert f"{len(huge)} bytes" in warnings[2] and f"{COMMAND_LIMIT + 1} bytes" in warnings[3], warnings
    assert "is not one of track, drop, stop" in warnings[4], warnings[4]  # shortened in the middle, not cut
    # The sender hears of each refusal on PREFIX/error, with the same bounded reason.
    errors = subscriber.on(f"{PREFIX}/error")
    assert [(e["type"], e["topic"]) for e in errors] == [("error", cmd)] * len(warnings)
    assert [e["error"] for e in errors] == [line.split(f"on {cmd}: ", 1)[1] for line in warnings]
    assert not subscriber.on(f"{PREFIX}/1/track") and not subscriber.on(f"{PREFIX}/3/track"), "a large one was read"
    states = [s["event"] for s in subscriber.on(f"{PREFIX}/2/state")]
    assert states[0] == "added" and "dropped" in states and "ended" not in states
    dropped_at = next(s["frame"] for s in subscriber.on(f"{PREFIX}/2/state") if s["event"] == "dropped")
    assert all(t["frame"] < dropped_at for t in subscriber.on(f"{PREFIX}/2/track"))
    assert (out / "track_2.txt").exists()


def test_a_broker_down_at_the_start_never_stops_tracking(demo_models, tmp_path):
    port, rtsp_port = free_port(), free_port()  # nothing listens on `port` yet
    rtsp = start_rtsp_server(rtsp_port)
    out, log = tmp_path / "out", tmp_path / "run.log"
    run = start_run(["--video", f"rtsp://127.0.0.1:{rtsp_port}/scene", "--bbox", ROW_BOX, "--model-dir",
                     str(demo_models), "--backend", "onnx", "--output", str(out), "--no-display", "--publish",
                     f"mqtt://user:hunter2@127.0.0.1:{port}/{PREFIX}"], log)
    broker = subscriber = None
    try:
        wait_for(lambda: (out / "track.txt").exists() and len(_track_lines(out)) >= RESULTS_EACH_SIDE, RUN_TIMEOUT_S,
                 "tracking without a broker", run, log)
        broker = start_broker(port, tmp_path)
        subscriber = Subscriber(port)
        wait_for(lambda: len(subscriber.on(f"{PREFIX}/1/track")) >= RESULTS_EACH_SIDE, RUN_TIMEOUT_S,
                 "track messages once the broker is up", run, log)
        run.send_signal(signal.SIGTERM)
        assert run.wait(RUN_TIMEOUT_S) == EXIT_OK, log.read_text()[-3000:]
        wait_for(lambda: subscriber.on(f"{PREFIX}/status")[-1:] == ["offline"], 10.0, "offline")
    finally:
        stop_process(run)
        stop_process(rtsp)
        if subscriber is not None:
            subscriber.close()
        if broker is not None:
            stop_process(broker)
    text = log.read_text()
    assert text.count("cannot be reached") == 1 and text.count("is back after") == 1, text[-3000:]
    assert "hunter2" not in text and f"mqtt://user:***@127.0.0.1:{port}/{PREFIX}" in text
