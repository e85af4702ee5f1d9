"""The systemd unit: its security score and syntax (systemd-analyze), and the run's side of Type=notify.

The notify protocol is checked against a real Unix datagram socket standing in for
systemd's: `python app/run.py` with $NOTIFY_SOCKET and $WATCHDOG_USEC says READY=1,
pings WATCHDOG=1 while healthy and says STOPPING=1 at the end; the pings follow the
real health check, so none goes out while the run is loading, stuck or ended.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.live.control import LoopStatus, TrackController
from app.media.source_spec import open_source
from app.live.health import HealthCheck
from app.publish.sd_notify import HealthNotifier
from tests.installed import needs
from tests.live_helpers import REPO, stop_process

UNIT = REPO / "deploy" / "systemd" / "samurai@.service"
EXAMPLE_ENV = REPO / "deploy" / "systemd" / "door.env.example"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
NO_ANALYZE = None if SYSTEMD_ANALYZE else "systemd-analyze is not installed (Debian's systemd package)"
# systemd-analyze's scale: 0 (safe) to 10 (unsafe); up to 4.0 it says "OK".
MAX_EXPOSURE = 4.0
EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+\.\d)")
WATCHDOG_US = 400_000  # a short watchdog: the health is checked four times per period
CHECK_S = 0.1
RUN_TIMEOUT_S = 60.0
RECEIVE_S = 0.2
DATAGRAM_BYTES = 4096
EXIT_OK = 0


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(UNIT)
    return unit


# Skipped with the reason where systemd-analyze is missing, except on CI (scripts/setup.sh installs it).
ANALYZE = [pytest.param(SYSTEMD_ANALYZE, marks=needs(NO_ANALYZE), id="systemd-analyze")]


@pytest.mark.parametrize("analyze", ANALYZE)
def test_the_unit_scores_ok_in_systemd_analyze_security(analyze):
    result = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(UNIT)],
                            capture_output=True, text=True, check=False)
    found = EXPOSURE.search(result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= MAX_EXPOSURE, result.stdout


@pytest.mark.parametrize("analyze", ANALYZE)
def test_the_unit_passes_systemd_analyze_verify(analyze, tmp_path):
    # A root holding what the unit names (the venv's python) and systemd's own units, so that only the unit is judged.
    root = tmp_path / "root"
    python = root / "opt" / "samurai-ascend" / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    shutil.copy(sys.executable, python)
    shutil.copytree("/usr/lib/systemd/system", root / "usr" / "lib" / "systemd" / "system", symlinks=True)
    (root / "etc" / "systemd" / "system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc" / "systemd" / "system" / UNIT.name)
    result = subprocess.run([analyze, "verify", f"--root={root}", "samurai@door.service"],
                            capture_output=True, text=True, check=False)
    # verify only warns (exit 0) about unknown keys or values it cannot parse: any output is a finding.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def test_the_unit_stops_retrying_and_its_watchdog_outlasts_a_reconnecting_stream():
    unit = _unit()
    assert int(unit["Unit"]["StartLimitBurst"]) > 1 and int(unit["Unit"]["StartLimitIntervalSec"]) > 0
    service = unit["Service"]
    assert service["Type"] == "notify" and service["ExecStart"].split()[1] == "app/run.py"
    # The example's stream may stay away --reconnect-s plus --stream-timeout (default 10 s) before the run gives up.
    words = EXAMPLE_ENV.read_text().split()
    reconnect_s = float(words[words.index("--reconnect-s") + 1])
    assert int(service["WatchdogSec"]) > reconnect_s + 10


class NotifyListener:
    """A bound Unix datagram socket standing in for systemd's notify socket, read on a thread as systemd does."""

    def __init__(self, address: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(RECEIVE_S)
        self.datagrams: list[list[str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                datagram = self.sock.recv(DATAGRAM_BYTES).decode().splitlines()
            except TimeoutError:
                continue
            with self._lock:
                self.datagrams.append(datagram)

    def take(self) -> list[str]:
        """The lines of the datagrams received since the last call."""
        with self._lock:
            taken, self.datagrams = self.datagrams, []
        return [line for datagram in taken for line in datagram]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def notify_socket() -> Iterator[tuple[NotifyListener, str]]:
    """A listener on a socket file, and its address for $NOTIFY_SOCKET."""
    folder = Path(tempfile.mkdtemp(prefix="sdn", dir="/tmp"))  # a socket path is limited to 107 bytes
    path = str(folder / "notify")
    listener = NotifyListener(path)
    try:
        yield listener, path
    finally:
        listener.close()
        shutil.rmtree(folder)


def test_a_run_under_type_notify_says_ready_pings_and_says_stopping(notify_socket, leave_clip, demo_models, tmp_path):
    listener, address = notify_socket
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(WATCHDOG_US)}
    env.pop("WATCHDOG_PID", None)
    log = tmp_path / "run.log"
    with log.open("w") as handle:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "app" / "run.py"), "--video", str(leave_clip[0]), "--bbox", "0,95,320,50",
             "--model-dir", str(demo_models), "--backend", "onnx", "--output", str(tmp_path / "out"), "--no-display"],
            cwd=REPO, env=env, stderr=handle, stdout=subprocess.DEVNULL)
    try:
        code = process.wait(RUN_TIMEOUT_S)
    finally:
        stop_process(process)
    assert code == EXIT_OK, log.read_text()
    time.sleep(2 * RECEIVE_S)
    lines = listener.take()
    keys = [line for line in lines if not line.startswith("STATUS=")]
    assert keys.count("READY=1") == 1 and keys[-1] == "STOPPING=1", lines
    ready = keys.index("READY=1")
    # READY=1 comes with the first ping, and pings follow while the clip is tracked.
    assert keys[ready + 1] == "WATCHDOG=1" and keys[ready:-1].count("WATCHDOG=1") >= 2, lines
    assert "WATCHDOG=1" not in keys[:ready], "no ping before the run is ready"
    assert "STATUS=starting: the models are loading" in lines[:lines.index("READY=1")], "STATUS says what it waits for"


def test_pings_follow_the_health_check_and_stop_while_unhealthy(leave_clip):
    name = f"samurai-test-{os.getpid()}-{time.monotonic_ns()}"
    listener = NotifyListener("\0" + name)  # systemd may name an abstract socket: $NOTIFY_SOCKET=@name
    stuck_s, check_s = 1.0, CHECK_S
    phases: dict[str, list[str]] = {}
    try:
        with open_source(str(leave_clip[0])) as source:
            controller = TrackController(source.size)
            health = HealthCheck(source, controller, stuck_s)
            env = {"NOTIFY_SOCKET": f"@{name}", "WATCHDOG_USEC": str(WATCHDOG_US)}
            with HealthNotifier(health, outage_s=0.0, environ=env):
                time.sleep(4 * check_s)
                phases["loading"] = listener.take()
                controller.publish(LoopStatus(frame=0))  # the loop advances
                time.sleep(4 * check_s)
                phases["healthy"] = listener.take()
                time.sleep(stuck_s)  # ... and then stops advancing
                phases["turning"] = listener.take()
                time.sleep(4 * check_s)
                phases["stuck"] = listener.take()
                controller.publish(LoopStatus(frame=1, ended=True))
                time.sleep(2 * check_s)
                phases["ending"] = listener.take()
                time.sleep(4 * check_s)
                phases["ended"] = listener.take()
                assert health()[1] == "the run has ended"
            time.sleep(2 * RECEIVE_S)
            phases["stopping"] = listener.take()
    finally:
        listener.close()
    assert phases["healthy"][:2] == ["STATUS=ok", "READY=1"] and phases["healthy"].count("WATCHDOG=1") >= 3, phases
    for phase in ("loading", "stuck", "ended"):
        assert "WATCHDOG=1" not in phases[phase] and "READY=1" not in phases[phase], phases
    assert any(line.startswith("STATUS=the loop has not advanced") for line in phases["turning"]), phases
    assert "STATUS=the run has ended" in phases["ending"], phases
    assert phases["stopping"] == ["STOPPING=1", "STATUS=stopping"], phases


@pytest.mark.parametrize(("outage_s", "warned"), [(0.1, False), (10.0, True)])
def test_a_watchdog_shorter_than_a_reconnect_is_warned_about(outage_s, warned, leave_clip, warnings):
    name = f"samurai-test-{os.getpid()}-{time.monotonic_ns()}"
    listener = NotifyListener("\0" + name)
    env = {"NOTIFY_SOCKET": f"@{name}", "WATCHDOG_USEC": str(WATCHDOG_US)}
    try:
        with open_source(str(leave_clip[0])) as source:
            with HealthNotifier(HealthCheck(source, TrackController(source.size), 1.0), outage_s, environ=env):
                pass
    finally:
        listener.close()
    assert len(warnings) == warned, warnings
    if warned:
        assert "raise WatchdogSec above 10 s" in warnings[0], warnings
