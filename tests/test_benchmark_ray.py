"""`scripts/eval.py run --ray` on a local multi-node Ray cluster (Ray's own test utility) started by the tests.

Every node is a real raylet with its own worker processes on this machine; the
nodes start in the folder that holds the demo datasets, so a relative --root
is readable on them and not on a node started elsewhere. Results must be
byte-identical to a local `--workers 1` run (one ONNX Runtime thread per worker).
Beside it, a cluster started with `ray start` as docs/cluster.md says, with
Ray's token authentication, in a home folder of its own (the real ~/.ray is
never touched).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from ray.cluster_utils import Cluster

from app.media.colour_clip import make_frames
from scripts import eval as eval_cli
from tests import benchmark_layouts as layouts
from tests.ascend_helpers import EMULATION_DIR, REPO
from tests.demo_lasot import result_files, run_eval

NODE_CPUS = 1  # logical CPUs per node: one worker each
# Two longer cuts of the demo clip (first frame, length) for the runs that are interrupted or lose a node:
# long enough that a sequence is still running when the test reacts to its first frame.
LONG_SEQUENCES = {"red-1": (0, 14), "red-2": (2, 14)}
WAIT_S = 120.0  # the most a test waits for something the run must do
# Ray starts its workers at niceness 15, so on a shared machine every other process comes first: with three busy
# processes beside it this module took 13 min and the Ctrl-C test timed out waiting for its first sequence; at
# niceness 0, 2.4 min. The tests' workers compete like the rest of the suite.
WORKER_NICENESS = "0"
RAY_CLI = Path(sys.executable).with_name("ray")
AUTH_VARIABLES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")
STARTED = "Ray runtime started."  # what `ray start --block` prints once its node is up
# A driver that cannot join says so within this (its start-up and one gRPC call; Ray's own timeout is about 20 s).
REFUSAL_S = 15.0


@pytest.fixture(scope="module")
def data_site(demo_lasot):
    """The folder the nodes start in: it holds the demo dataset, reachable as a relative --root."""
    return demo_lasot.parent


@pytest.fixture(scope="module")
def long_lasot(data_site):
    frames, boxes = make_frames(max(start + length for start, length in LONG_SEQUENCES.values()))
    boxes = np.asarray(boxes, dtype=np.float64)
    return layouts.lasot(data_site / "lasot_long", {n: boxes[s:s + k] for n, (s, k) in LONG_SEQUENCES.items()},
                         {n: frames[s:s + k] for n, (s, k) in LONG_SEQUENCES.items()})


def _start_node(cluster: Cluster, cwd: Path, pythonpath: list[Path], **node_args):
    """A node whose raylet (and so its workers) starts in `cwd` with `pythonpath` importable."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        patch.setenv("PYTHONPATH", os.pathsep.join(map(str, pythonpath)))
        patch.setenv("RAY_worker_niceness", WORKER_NICENESS)
        if cluster is None:
            return Cluster(initialize_head=True, head_node_args={"num_cpus": NODE_CPUS, **node_args})
        return cluster.add_node(num_cpus=NODE_CPUS, **node_args)


@pytest.fixture(scope="module")
def cluster(data_site):
    """A head and a second node, one CPU each, started once for the module."""
    head = _start_node(None, data_site, [REPO])
    second = _start_node(head, data_site, [REPO])
    yield head, second
    head.shutdown()


def _node_lines(err: str) -> dict[str, int]:
    """node id prefix -> sequences, from the per-node lines at the end of a Ray run."""
    return {m[1]: int(m[2]) for m in re.finditer(r"node \S+ \((\w+)\): (\d+) sequences, \d+ frames", err)}


def _scores(root, folder, report):
    assert eval_cli.main(["score", "--dataset", "lasot", "--root", str(root), "--results", str(folder),
                          "--out", str(report), "--no-plots"]) == 0
    scores = json.loads((report / "report.json").read_text())["runs"][folder.name]
    return {key: value for key, value in scores.items() if key != "folder"}


def test_ray_run_equals_one_worker(cluster, demo_lasot, demo_models, whole_run, tmp_path, capfd):
    head, second = cluster
    out = tmp_path / "ray"
    assert run_eval(demo_lasot, demo_models, out, "--backend", "onnx", "--ray", head.address) == 0
    assert result_files(out) == result_files(whole_run)
    assert json.loads((out / "run.json").read_text()) == json.loads((whole_run / "run.json").read_text())
    for name in ("red-1", "red-2", "red-3"):
        times = (out / f"{name}_time.txt").read_text().split()
        assert len(times) == len(result_files(out)[f"{name}.txt"].splitlines()) and all(float(t) > 0 for t in times)
    nodes = _node_lines(capfd.readouterr().err)
    assert sum(nodes.values()) == 3 and set(nodes) <= {head.head_node.node_id[:8], second.node_id[:8]}
    assert _scores(demo_lasot, out, tmp_path / "r1") == _scores(demo_lasot, whole_run, tmp_path / "r2")


def test_ray_resumes_a_shard_and_refuses_other_settings(cluster, demo_lasot, demo_models,
                                                        whole_run, tmp_path, capfd):
    head, _ = cluster
    out = tmp_path / "resumed"
    assert run_eval(demo_lasot, demo_models, out, "--shard", "1/2") == 0
    first_half = {name: (out / f"{name}_time.txt").read_text() for name in ("red-1", "red-3")}
    capfd.readouterr()
    assert run_eval(demo_lasot, demo_models, out, "--ray", head.address) == 0
    assert sum(_node_lines(capfd.readouterr().err).values()) == 1  # only red-2 was tracked
    assert {name: (out / f"{name}_time.txt").read_text() for name in first_half} == first_half
    assert result_files(out) == result_files(whole_run)

    assert run_eval(demo_lasot, demo_models, out, "--ray", head.address, "--mode", "sam2") == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mode samurai -> sam2" in err[0]


def test_a_root_missing_on_one_node_is_named(cluster, data_site, demo_lasot, demo_models,
                                             tmp_path, capfd, monkeypatch):
    head, second = cluster
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    blind = _start_node(head, elsewhere, [REPO])
    try:
        monkeypatch.chdir(data_site)
        assert run_eval(demo_lasot.name, demo_models, tmp_path / "out", "--ray", head.address) == 2
    finally:
        head.remove_node(blind)
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert blind.node_id[:8] in err[0] and "1 of 3 nodes" in err[0] and f"--root {demo_lasot.name}" in err[0]
    assert head.head_node.node_id[:8] not in err[0] and second.node_id[:8] not in err[0]
    assert not (tmp_path / "out" / "red-1.txt").exists()


def test_a_sequence_that_fails_by_itself_is_reported_once(cluster, data_site, demo_models,
                                                          tmp_path, capfd):
    head, _ = cluster
    frames, boxes = make_frames(3)
    root = layouts.lasot(data_site / "lasot_broken", {"red-1": np.asarray(boxes[:2], float),
                                                      "red-2": np.asarray(boxes, float)},
                         {"red-1": frames[:2], "red-2": frames})
    (root / "red" / "red-2" / "img" / "00000002.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert run_eval(root, demo_models, out, "--ray", head.address) == eval_cli.EXIT_SEQUENCES_FAILED
    assert (out / "red-1.txt").is_file() and not (out / "red-2.txt").exists()
    err = capfd.readouterr().err
    assert "red-2: frame 1" in err and "cannot be read" in err and "Traceback" not in err
    assert "tracking it again" not in err


@pytest.fixture(scope="module")
def long_reference(long_lasot, demo_models, tmp_path_factory) -> dict[str, str]:
    """The long sequences tracked by one local worker: what the interrupted and the node-losing runs must give."""
    folder = tmp_path_factory.mktemp("long_reference")
    assert run_eval(long_lasot, demo_models, folder, "--backend", "onnx") == 0
    return result_files(folder)


def _driver(root, models, out, address, *extra) -> subprocess.Popen:
    """scripts/eval.py run --ray as its own process, as a user starts it (stderr readable line by line)."""
    command = [sys.executable, str(REPO / "scripts" / "eval.py"), "run", "--dataset", "lasot", "--root", str(root),
               "--model-dir", str(models), "--out", str(out), "--threads", "1", "--ray", address, *extra]
    return subprocess.Popen(command, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})


def test_ctrl_c_keeps_finished_sequences_and_frees_the_cluster(cluster, long_lasot, demo_models,
                                                               long_reference, tmp_path):
    head, _ = cluster
    out = tmp_path / "out"
    process = _driver(long_lasot, demo_models, out, head.address, "--workers", "1")
    deadline = time.monotonic() + WAIT_S
    while not (out / "red-1.txt").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=WAIT_S)[1]
    assert process.returncode == eval_cli.EXIT_INTERRUPTED, err
    assert "interrupted; finished sequences are in" in err and "Traceback" not in err
    assert result_files(out) == {"red-1.txt": long_reference["red-1.txt"]}
    assert not list(out.glob("*.tmp")) and not (out / "red-2_time.txt").exists()
    # The same command again finishes the rest: the interrupted run left the cluster's CPUs free.
    resumed = _driver(long_lasot, demo_models, out, head.address, "--workers", "1")
    err = resumed.communicate(timeout=WAIT_S)[1]
    assert resumed.returncode == 0, err
    assert result_files(out) == long_reference


def test_acl_workers_run_on_the_npu_node(acl, cluster, data_site, demo_lasot, demo_om, whole_run, tmp_path,
                                         capfd):
    """Only the node that offers an NPU (here the in-test pyACL emulation) takes `--backend acl` workers."""
    head, _ = cluster
    npu_node = _start_node(head, data_site, [EMULATION_DIR, REPO], resources={"NPU": 1})
    try:
        out = tmp_path / "acl"
        assert run_eval(demo_lasot, demo_om, out, "--backend", "acl", "--ray", head.address) == 0
    finally:
        head.remove_node(npu_node)
    assert result_files(out) == result_files(whole_run)
    assert _node_lines(capfd.readouterr().err) == {npu_node.node_id[:8]: 3}


def test_a_node_lost_mid_run_changes_nothing(cluster, long_lasot, demo_models, long_reference, tmp_path):
    """Last in the module: it takes the second node away. Its sequence is tracked again on the head."""
    head, second = cluster
    out = tmp_path / "out"
    started = re.compile(rf"red-\d started on node {second.node_id[:8]}")
    process = _driver(long_lasot, demo_models, out, head.address, "--verbose")
    lines = []
    for line in process.stderr:
        lines.append(line)
        if started.search(line):
            head.remove_node(second)
            break
    lines.extend(process.stderr)
    assert process.wait(timeout=WAIT_S) == 0, "".join(lines)
    err = "".join(lines)
    assert "its worker was lost" in err and "tracking it again (attempt 2 of 3)" in err
    assert result_files(out) == long_reference
    assert sum(_node_lines(err).values()) == len(LONG_SEQUENCES)


def test_the_instance_a_run_starts_for_itself_tracks_at_normal_priority(tmp_path):
    """`--ray` without an address starts Ray here; its workers must not run behind every other process (Ray's
    default niceness 15), or the run is slower than the local pool it stands in for on any busy host. (Ray writes
    a token into the home folder of whoever starts it: a home of the test's own keeps the real ~/.ray as it was.)"""
    code = ("import os, ray; from app.benchmarks.ray_cluster import LOCAL, connect; connect(LOCAL); "
            "print('niceness', ray.get(ray.remote(lambda: os.nice(0)).remote())); ray.shutdown()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT_S, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}, check=False)
    assert result.returncode == 0, result.stderr
    assert "niceness 0" in result.stdout.splitlines()


def test_without_ray_the_flag_names_the_extra(demo_lasot, demo_models, tmp_path, monkeypatch,
                                              capfd):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "app.benchmarks.ray_runner", raising=False)
    assert run_eval(demo_lasot, demo_models, tmp_path / "out", "--ray") == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install -e .[cluster]" in err[0]


def test_an_address_where_nothing_answers_is_one_line(demo_lasot, demo_models, tmp_path, capfd):
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    assert run_eval(demo_lasot, demo_models, tmp_path / "out", "--ray", address) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--ray {address}: nothing answers there" in err[0] and "ray start --head" in err[0]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _user_env(home: Path, **extra: str) -> dict[str, str]:
    """A shell of a user whose home is `home`, without any Ray authentication setting of this machine's."""
    env = {k: v for k, v in os.environ.items() if k not in AUTH_VARIABLES}
    return {**env, "HOME": str(home), "PYTHONPATH": str(REPO), "RAY_worker_niceness": WORKER_NICENESS, **extra}


def _ray_start(arguments: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """`ray start ... --block` in its own process group; returns once its node is up."""
    with log.open("w") as out:
        process = subprocess.Popen([str(RAY_CLI), "start", "--block", "--disable-usage-stats", "--min-worker-port",
                                    "0", "--max-worker-port", "0", *arguments],
                                   stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    deadline = time.monotonic() + WAIT_S
    while STARTED not in log.read_text() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert STARTED in log.read_text(), log.read_text()[-3000:]
    return process


def _ray_stop(process: subprocess.Popen) -> None:
    """SIGTERM to `ray start --block` stops the processes of its node; its process group goes if it hangs."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture(scope="module")
def token_cluster(data_site):
    """docs/cluster.md's start on one machine: a token, a head in token mode (no CPU, so the tracking goes to the
    other node), and a node that joins it with the same token; (head address, the user's home)."""
    folder = Path(tempfile.mkdtemp(prefix="ray"))  # short: Ray's socket paths live under --temp-dir
    home = folder / "home"
    home.mkdir()
    env = _user_env(home)
    subprocess.run([str(RAY_CLI), "get-auth-token", "--generate"], env=env, capture_output=True, check=True,
                   timeout=WAIT_S)
    port, client_port, head_agent, node_agent = _free_ports(4)
    token_env = {**env, "RAY_AUTH_MODE": "token"}
    started = []
    try:
        started.append(_ray_start(["--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                                   "--ray-client-server-port", str(client_port), "--dashboard-agent-listen-port",
                                   str(head_agent), "--include-dashboard", "false", "--num-cpus", "0",
                                   "--temp-dir", str(folder / "ray")], token_env, folder / "head.log"))
        started.append(_ray_start(["--address", f"127.0.0.1:{port}", "--num-cpus", str(NODE_CPUS),
                                   "--dashboard-agent-listen-port", str(node_agent)], token_env, folder / "node.log"))
        yield f"127.0.0.1:{port}", home
    finally:
        for process in reversed(started):
            _ray_stop(process)
        shutil.rmtree(folder, ignore_errors=True)


def _user_driver(root, models, out, address, env) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO / "scripts" / "eval.py"), "run", "--dataset", "lasot", "--root", str(root),
               "--model-dir", str(models), "--out", str(out), "--threads", "1", "--ray", address]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=WAIT_S, check=False)


@pytest.mark.parametrize("given", ["address", "auto"])
def test_a_cluster_started_with_a_token_is_joined_through_its_address(token_cluster, demo_lasot, demo_models,
                                                                      whole_run, tmp_path, given):
    """`ray start` turns token authentication on; `--ray HEAD:PORT` must find the user's token (Ray 2.60 sends
    it only to `auto` by itself) and track as a local run does; `auto` (RAY_ADDRESS naming the head) as well."""
    address, home = token_cluster
    out = tmp_path / "out"
    env = _user_env(home, **({"RAY_ADDRESS": address} if given == "auto" else {}))
    result = _user_driver(demo_lasot, demo_models, out, address if given == "address" else "auto", env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result_files(out) == result_files(whole_run)
    assert json.loads((out / "run.json").read_text()) == json.loads((whole_run / "run.json").read_text())
    assert f"joining with the token in {home / '.ray' / 'auth_token'}" in result.stderr
    assert (home / ".ray" / "auth_token").read_text() not in result.stderr + result.stdout


@pytest.mark.parametrize("setting, message", [
    ({}, "the cluster uses token authentication and this host has no token"),
    ({"RAY_AUTH_TOKEN": "not-the-token-of-this-cluster"}, "the cluster refuses the token in RAY_AUTH_TOKEN"),
    ({"RAY_AUTH_TOKEN_PATH": "/nonexistent/auth_token"}, "RAY_AUTH_TOKEN_PATH=/nonexistent/auth_token: no readable"),
])
@pytest.mark.parametrize("given", ["address", "auto"])
def test_a_missing_or_wrong_token_is_one_line(token_cluster, demo_lasot, demo_models, tmp_path, setting, message,
                                              given):
    """Through the head's address, and through `auto` on a node (RAY_ADDRESS names the cluster, as Ray reads it):
    one line naming the fix, long before Ray's own connection timeout (about 20 s) would end the run."""
    address, _ = token_cluster
    stranger = tmp_path / "home"  # a host the head's token never reached
    stranger.mkdir()
    env = _user_env(stranger, **setting, **({"RAY_ADDRESS": address} if given == "auto" else {}))
    started = time.monotonic()
    result = _user_driver(demo_lasot, demo_models, tmp_path / "out", address if given == "address" else "auto", env)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, result.stderr[-3000:]
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in result.stderr, err
    assert f"--ray {'auto' if given == 'auto' else address}" in err[0] and "docs/cluster.md" in err[0], err
    assert elapsed < REFUSAL_S, f"refused after {elapsed:.1f} s"
