"""Processes and HTTP calls shared by the live tests: the RTSP scene server, `app/run.py --serve`, the API, and a
clip played as a live source that prompts at a chosen frame."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from prometheus_client.parser import text_string_to_metric_families

from app.media.sources import Frame, FrameSource

REPO = Path(__file__).resolve().parent.parent
# GStreamer's Python bindings come from Debian packages, so the RTSP server runs on the system Python.
SYSTEM_PYTHON = "/usr/bin/python3"
RTSP_SERVER = REPO / "tests" / "rtsp_scene_server.py"
READY_TIMEOUT_S = 30.0
POLL_S = 0.2
HTTP_TIMEOUT_S = 10.0
LIVE_CLIP_FPS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_rtsp_server(port: int, user: str | None = None, password: str | None = None) -> subprocess.Popen:
    """The GStreamer RTSP server of tests/rtsp_scene_server.py, once it listens."""
    auth = ["--user", user, "--password", password] if user else []
    process = subprocess.Popen(
        [SYSTEM_PYTHON, str(RTSP_SERVER), str(port), *auth], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = process.stdout.readline()
    if line.strip() != "ready":
        process.kill()
        raise RuntimeError(
            f"the RTSP test server did not start ({line!r} {process.stderr.read()}); install python3-gi "
            "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly gstreamer1.0-rtsp (scripts/setup.sh does)"
        )
    return process


def stop_process(process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_run(args: list[str], log: Path) -> subprocess.Popen:
    """`python app/run.py ARGS` with stderr (the log) going to `log`."""
    handle = log.open("w")
    return subprocess.Popen([sys.executable, str(REPO / "app" / "run.py"), *args], cwd=REPO, stderr=handle,
                            stdout=subprocess.DEVNULL)


def http(method: str, url: str, body: dict | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json",
                                                                                  **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def status(base: str) -> dict:
    code, body = http("GET", f"{base}/api/status")
    assert code == 200, body
    return json.loads(body)


def wait_for(condition, timeout_s: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None):
    """Poll `condition()` until it returns something truthy; fail with the run's log when it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        try:
            value = condition()
        except (OSError, urllib.error.URLError):
            value = None
        if value:
            return value
        time.sleep(POLL_S)
    tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out waiting for {what}; run log:\n{tail}")


class SseReader:
    """Reads `GET url` as Server-Sent Events on a thread; `events` holds (name, JSON data) as they come."""

    def __init__(self, url: str, headers: dict | None = None, timeout_s: float = READY_TIMEOUT_S * 4):
        import threading

        self.events: list[tuple[str, dict]] = []
        self.ended = False
        request = urllib.request.Request(url, headers=headers or {})
        self._response = urllib.request.urlopen(request, timeout=timeout_s)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        name, data = "message", []
        try:
            for raw in self._response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[len("event: "):]
                elif line.startswith("data: "):
                    data.append(line[len("data: "):])
                elif not line and data:
                    self.events.append((name, json.loads("\n".join(data))))
                    name, data = "message", []
        except OSError:
            pass
        self.ended = True

    def named(self, name: str) -> list[dict]:
        return [data for event, data in list(self.events) if event == name]

    def close(self) -> None:
        self._response.close()


MOSQUITTO = "/usr/sbin/mosquitto"


class MqttSubscriber:
    """Everything published under `topic` (a filter), as (topic, JSON or text, retained); resubscribes after a
    reconnect."""

    def __init__(self, port: int, topic: str):
        self.messages: list[tuple[str, object, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self._client.reconnect_delay_set(1, 1)
        self._client.on_connect = lambda client, *_: client.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect_async("127.0.0.1", port)
        self._client.loop_start()
        assert self._subscribed.wait(10.0), "the test subscriber could not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        text = message.payload.decode()
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        with self._lock:
            self.messages.append((message.topic, value, bool(message.retain)))

    def on(self, topic: str) -> list:
        with self._lock:
            return [value for name, value, _ in self.messages if name == topic]

    def publish(self, topic: str, payload: str) -> None:
        self._client.publish(topic, payload, qos=1).wait_for_publish(10.0)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def broker_log(port: int, config_dir: Path) -> Path:
    """Where `start_broker` has mosquitto log every packet it receives and sends, in order."""
    return config_dir / f"mosquitto_{port}.log"


def start_broker(port: int, config_dir: Path) -> subprocess.Popen:
    """Debian's mosquitto on 127.0.0.1:PORT (anonymous, no persistence, `broker_log`), once it accepts connections."""
    config = config_dir / f"mosquitto_{port}.conf"
    log = broker_log(port, config_dir)
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                      "log_dest stdout\nlog_type all\n")
    try:
        # The log goes through an inherited descriptor: mosquitto started as root writes files as its own user.
        with log.open("w") as sink:
            process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=sink, stderr=subprocess.PIPE)
    except FileNotFoundError:
        raise RuntimeError("no MQTT broker for the tests: install Debian's mosquitto (scripts/setup.sh does)") from None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=POLL_S).close()
            return process
        except OSError:
            time.sleep(POLL_S / 4)
    process.kill()
    raise RuntimeError(f"mosquitto did not start on port {port}: {process.stderr.read().decode()}")


def scrape(base: str, headers: dict | None = None) -> dict[tuple[str, tuple], float]:
    """The run's /metrics as (sample name, sorted labels) → value."""
    code, body = http("GET", f"{base}/metrics", headers=headers)
    assert code == 200, body
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body.decode()) for sample in family.samples}


class HeldFrames:
    """The frames of a run's folder that its reader must wait for: once the run has listed the folder, each is
    replaced by a named pipe, and `give(k)` writes the frame's own bytes into it. Until then the run has applied
    frame k-1's prompts and waits for frame k, so a prompt sent then applies to frame k, as a prompt file's does."""

    def __init__(self, folder: Path, frames: list[int]):
        files = sorted(folder.iterdir())
        self.paths = {k: files[k] for k in frames}
        self.data = {k: path.read_bytes() for k, path in self.paths.items()}

    def hold(self) -> None:
        for path in self.paths.values():
            pipe = path.with_suffix(".pipe")
            os.mkfifo(pipe)
            os.replace(pipe, path)

    def give(self, frame: int) -> None:
        # Opening a pipe to write waits for its reader: on a thread of its own (a daemon, should the run die).
        threading.Thread(target=self.paths[frame].write_bytes, args=(self.data[frame],), daemon=True).start()


def copy_frames(folder: Path, into: Path, count: int) -> Path:
    """The first `count` frames of a folder source, as a folder of their own."""
    into.mkdir()
    for path in sorted(folder.iterdir())[:count]:
        shutil.copy(path, into / path.name)
    return into


def end_served_run(base: str, process: subprocess.Popen, log: Path, timeout_s: float) -> None:
    """A `--serve` run on a file, once its source ended: stopped from the API, it exits 0."""
    wait_for(lambda: status(base)["state"] == "ended", timeout_s, "the end of the source", process, log)
    code, _ = http("POST", f"{base}/api/stop")
    assert code == 200
    assert process.wait(timeout_s) == 0, log.read_text()[-3000:]


class LiveClip(FrameSource):
    """The clip's frames as a live source that, before giving frame `at`, calls `before(at)` (a loop that runs
    sequentially has then tracked and published every frame before it)."""

    is_live = True

    def __init__(self, frames: list[np.ndarray], at: int, before: Callable[[int], None]):
        self.frames, self.at, self.before = frames, at, before
        self.size = (frames[0].shape[1], frames[0].shape[0])
        self.fps, self.num_frames = LIVE_CLIP_FPS, None
        self._next = 0

    def __next__(self) -> Frame:
        if self._next >= len(self.frames):
            raise StopIteration
        if self._next == self.at:
            self.before(self.at)
        index, self._next = self._next, self._next + 1
        return Frame(index, self.frames[index], index / self.fps)

    def close(self) -> None:
        """Nothing to release."""
