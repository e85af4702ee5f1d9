"""Track a benchmark on a Ray cluster: the sequences of one run spread over the NPUs and CPUs of many hosts.

Each worker is a Ray actor that opens the sub-model runners once and tracks
one sequence after another; it returns boxes and times, and the driver writes
them into its own results folder exactly as a local run does (same files,
same `run.json` guard, same resume). Nodes need the venv, the model folder and
the dataset at the same paths, not a shared results folder. A worker or node
lost mid-sequence costs that sequence, which is tracked again elsewhere; a
sequence that fails by itself (unreadable frames) is reported, not retried.
Joining the cluster is `ray_cluster.py`'s. Imported only for `scripts/eval.py run --ray`, so Ray stays an
optional extra.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import ray
from loguru import logger
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from app.benchmarks.datasets import Dataset
from app.benchmarks.ray_cluster import connect
from app.benchmarks.runner import (
    Outcome,
    Progress,
    RunError,
    RunSettings,
    RunSummary,
    SequenceTracker,
    Task,
    Tracked,
    prepare_run,
    summarise,
    write_result,
)

NPU = "NPU"  # Ray's built-in resource for Ascend NPUs (it sets ASCEND_RT_VISIBLE_DEVICES per worker)
POLL_S = 0.2  # how often the driver collects finished sequences and frame counts
MAX_ATTEMPTS = 3  # a sequence whose worker is lost this often is reported as failed, not retried forever
ROOT_CHECK_TIMEOUT_S = 60.0  # a node that has not answered the dataset check by then is named as unreachable
WAITING_WARNING_S = 30.0  # no worker alive this long: say what the cluster lacks


@dataclass(frozen=True)
class ClusterSettings:
    address: str  # LOCAL, "auto", "host:6379" or "ray://host:10001"
    workers: int | None = None  # at most this many actors (default: as many as the cluster's resources fit)
    cpus_per_worker: int = 1  # CPUs each CPU-backend actor asks for; its runtime gets as many threads


@dataclass
class NodeTally:
    """What one node did, for the per-node lines at the end."""

    address: str
    sequences: int = 0
    frames: int = 0
    seconds: float = 0.0  # summed per-frame tracking time of its workers


class _FrameBoard:
    """Frames done per (sequence, attempt), reported by the workers, read by the driver for the progress bar."""

    def __init__(self):
        self.frames: dict[tuple[str, int], int] = {}
        self.nodes: dict[tuple[str, int], str] = {}

    def report(self, key: tuple[str, int], frames: int, node: str) -> None:
        self.frames[key] = frames
        self.nodes.setdefault(key, node)

    def snapshot(self) -> tuple[dict[tuple[str, int], int], dict[tuple[str, int], str]]:
        return dict(self.frames), dict(self.nodes)


class _Worker:
    """One actor: the runners opened once on its node, then sequence after sequence."""

    def __init__(self, settings: RunSettings, board):
        logger.remove()
        logger.add(sys.stderr, level="WARNING", format="<level>{level: <7}</level> {message}")
        self.node = ray.get_runtime_context().get_node_id()
        self.board = board
        self.tracker: SequenceTracker | None = None
        self.error: str | None = None
        try:
            self.tracker = SequenceTracker(settings)
        except Exception as exc:  # reported to the driver as one line naming the node
            self.error = str(exc)

    def ready(self) -> tuple[str, str | None]:
        return self.node, self.error

    def track(self, task: Task, attempt: int) -> tuple[str, Tracked]:
        if self.tracker is None:
            return self.node, Tracked(Outcome(task.name, 0, self.error, fatal=True), [], [])
        frames = 0

        def on_frame() -> None:
            nonlocal frames
            frames += 1
            self.board.report.remote((task.name, attempt), frames, self.node)

        return self.node, self.tracker.follow(task, on_frame)


def _can_read(root: str, paths: list[str]) -> list[str]:
    """The dataset paths this node cannot see (run as one small task on each node)."""
    return [p for p in [root, *paths] if not Path(p).exists()]


def _near_driver() -> NodeAffinitySchedulingStrategy | str:
    """On the driver's node when it is one (not through ray://), so the bar's counts live where it runs."""
    try:
        return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
    except Exception:  # a Ray client has no node of its own
        return "DEFAULT"


def _short(node: str) -> str:
    return node[:8]


def _alive_nodes() -> dict[str, dict]:
    return {n["NodeID"]: n for n in ray.nodes() if n["Alive"]}


def _actor_resources(settings: RunSettings, cluster: ClusterSettings) -> dict:
    """What each worker asks Ray for: one NPU for pyACL, else --cpus-per-worker CPUs."""
    if settings.backend == "acl":
        return {"num_cpus": 0, "resources": {NPU: 1}}
    return {"num_cpus": cluster.cpus_per_worker}


def _fits(resources: dict, available: dict) -> int:
    """How many workers with `resources` the resource totals `available` hold."""
    wants = {"CPU": resources["num_cpus"], **resources.get("resources", {})}
    counts = [int(available.get(name, 0) // amount) for name, amount in wants.items() if amount > 0]
    return min(counts) if counts else 0


def check_root(dataset: Dataset, tasks: list[Task], resources: dict) -> None:
    """Every node that can host a worker must see the dataset root and each sequence's first frame."""
    nodes = {i: n for i, n in _alive_nodes().items() if _fits(resources, n["Resources"]) > 0}
    if not nodes:
        needs = f"one {NPU}" if NPU in resources.get("resources", {}) else f"{resources['num_cpus']} CPU(s)"
        raise RunError(f"no node of the Ray cluster offers what a worker needs ({needs}); "
                       "start one with `ray start --address HEAD:6379` (give it the resources)")
    root = str(dataset.root)
    paths = [str(t.frames[0]) for t in tasks if t.frames]
    checker = ray.remote(num_cpus=0)(_can_read)
    pending = {
        checker.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(root, paths): node
        for node in nodes
    }
    ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=ROOT_CHECK_TIMEOUT_S)
    problems = [f"{nodes[pending[ref]]['NodeManagerAddress']} (node {_short(pending[ref])}): no answer"
                for ref in late]
    for ref in ready:
        missing = ray.get(ref)
        if missing:
            node = pending[ref]
            problems.append(f"{nodes[node]['NodeManagerAddress']} (node {_short(node)}): {missing[0]} missing")
    if problems:
        hint = "" if Path(root).is_absolute() else " as an absolute path"
        raise RunError(
            f"--root {root} cannot be read on {len(problems)} of {len(nodes)} nodes: {'; '.join(sorted(problems))}; "
            f"put the dataset at the same path on every node (NFS or a copy) and give --root{hint}"
        )


@dataclass
class _Scheduler:
    """The driver's loop: keeps workers busy, collects results, re-queues sequences of lost workers."""

    tasks: list[Task]
    results: Path
    settings: RunSettings
    cluster: ClusterSettings
    progress: Progress
    resources: dict
    board: object = None
    queue: deque = field(default_factory=deque)  # (task, attempt) not yet given to a worker
    starting: dict = field(default_factory=dict)  # ready() ref -> actor loading its models
    idle: list = field(default_factory=list)
    running: dict = field(default_factory=dict)  # track() ref -> (actor, task, attempt)
    outcomes: list[Outcome] = field(default_factory=list)
    tallies: dict[str, NodeTally] = field(default_factory=dict)
    shown: dict[tuple[str, int], int] = field(default_factory=dict)  # frames on the bar per running attempt
    announced: set = field(default_factory=set)
    no_worker_since: float | None = None
    load_losses: int = 0  # workers lost in a row before their models were loaded

    def run(self) -> list[Outcome]:
        self.board = ray.remote(num_cpus=0)(_FrameBoard).options(scheduling_strategy=_near_driver()).remote()
        self.queue.extend((task, 1) for task in self.tasks)
        try:
            while self.queue or self.running:
                self._add_workers()
                self._assign()
                self._wait()
                self._show_frames()
                self._warn_if_stalled()
        finally:
            for actor in [*self.starting.values(), *self.idle, *(a for a, _, _ in self.running.values())]:
                ray.kill(actor)
            ray.kill(self.board)
        return self.outcomes

    def _add_workers(self) -> None:
        have = len(self.starting) + len(self.idle) + len(self.running)
        fit = _fits(self.resources, ray.cluster_resources())
        wanted = min(fit, len(self.queue) + len(self.running), self.cluster.workers or fit)
        worker = ray.remote(_Worker).options(max_restarts=0, max_task_retries=0, **self.resources)
        for _ in range(wanted - have):
            actor = worker.remote(self.settings, self.board)
            self.starting[actor.ready.remote()] = actor

    def _assign(self) -> None:
        while self.idle and self.queue:
            actor = self.idle.pop()
            task, attempt = self.queue.popleft()
            self.running[actor.track.remote(task, attempt)] = (actor, task, attempt)

    def _wait(self) -> None:
        refs = [*self.starting, *self.running]
        if not refs:
            time.sleep(POLL_S)
            return
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=POLL_S, fetch_local=False)
        for ref in ready:
            if ref in self.starting:
                self._started(ref, self.starting.pop(ref))
            else:
                self._finished(ref, *self.running.pop(ref))

    def _started(self, ref, actor) -> None:
        try:
            node, error = ray.get(ref)
        except ray.exceptions.RayError as exc:  # lost while loading: a node went away, or the worker cannot start
            self.load_losses += 1
            if self.load_losses >= MAX_ATTEMPTS:
                first = str(exc).strip().splitlines()[0]
                raise RunError(f"Ray workers keep dying while they load the models ({first}); "
                               "check that every node has the project's venv and the --model-dir folder") from None
            return
        if error:
            raise RunError(f"a worker on node {_short(node)} ({self._address(node)}) cannot load the models: {error}")
        self.load_losses = 0
        self.idle.append(actor)

    def _finished(self, ref, actor, task: Task, attempt: int) -> None:
        shown = self.shown.pop((task.name, attempt), 0)
        try:
            node, tracked = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # the sequence broke the tracker; the worker lives on
            self.idle.append(actor)
            self._done(task, Outcome(task.name, 0, f"tracking failed: {exc.cause!r}"), shown)
            return
        except ray.exceptions.RayError as exc:  # worker process or node lost
            ray.kill(actor)
            self._lost(task, attempt, type(exc).__name__, shown)
            return
        outcome = tracked.outcome
        if outcome.fatal:
            raise RunError(f"a worker on node {_short(node)} ({self._address(node)}) cannot load the models: "
                           f"{outcome.error}")
        if not outcome.error:
            write_result(self.results, task.name, tracked.boxes, tracked.seconds)
            tally = self.tallies.setdefault(node, NodeTally(self._address(node)))
            tally.sequences += 1
            tally.frames += outcome.frames
            tally.seconds += sum(tracked.seconds)
        self.idle.append(actor)
        self._done(task, outcome, shown)

    def _done(self, task: Task, outcome: Outcome, shown: int) -> None:
        self.progress.frame(outcome.frames - shown)
        self.progress.sequence(task, outcome)
        self.outcomes.append(outcome)

    def _lost(self, task: Task, attempt: int, why: str, shown: int) -> None:
        if attempt >= MAX_ATTEMPTS:
            self._done(task, Outcome(task.name, 0, f"its worker was lost {attempt} times ({why})"), shown)
            return
        self.progress.frame(-shown)
        logger.warning("{}: its worker was lost ({}); tracking it again (attempt {} of {})",
                       task.name, why, attempt + 1, MAX_ATTEMPTS)
        self.queue.appendleft((task, attempt + 1))

    def _show_frames(self) -> None:
        try:
            frames, nodes = ray.get(self.board.snapshot.remote(), timeout=POLL_S * 10)
        except ray.exceptions.RayError:
            return  # the bar catches up when the sequences finish
        for _, task, attempt in self.running.values():
            key = (task.name, attempt)
            if key in nodes and key not in self.announced:
                self.announced.add(key)
                logger.debug("{} started on node {} (attempt {})", task.name, _short(nodes[key]), attempt)
            count = frames.get(key, 0)
            self.progress.frame(count - self.shown.get(key, 0))
            self.shown[key] = count

    def _warn_if_stalled(self) -> None:
        if self.idle or self.running or not self.queue:
            self.no_worker_since = None
            return
        now = time.monotonic()
        if self.no_worker_since is None:
            self.no_worker_since = now
        elif now - self.no_worker_since > WAITING_WARNING_S:
            logger.warning("no worker has been running for {:.0f} s; the cluster has {} and each worker needs {}",
                           now - self.no_worker_since, ray.available_resources(), self.resources)
            self.no_worker_since = now

    def _address(self, node: str) -> str:
        if node not in self.tallies:
            return next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node), "?")
        return self.tallies[node].address


def run_on_ray(
    dataset: Dataset, results: Path, settings: RunSettings, cluster: ClusterSettings,
    shard_of: tuple[int, int] = (1, 1),
) -> RunSummary:
    """Like runner.run_dataset, with Ray actors on the cluster at `cluster.address` doing the tracking."""
    if cluster.workers is not None and cluster.workers < 1:
        raise RunError(f"--workers {cluster.workers} must be at least 1")
    if cluster.cpus_per_worker < 1:
        raise RunError(f"--cpus-per-worker {cluster.cpus_per_worker} must be at least 1")
    results = Path(results)
    sequences, tasks = prepare_run(dataset, results, settings, shard_of)
    if settings.threads is None and settings.backend != "acl":
        settings = RunSettings(**{**asdict(settings), "threads": cluster.cpus_per_worker})
    resources = _actor_resources(settings, cluster)
    connect(cluster.address)
    try:
        if tasks:
            check_root(dataset, tasks, resources)
        logger.info(
            "{}: {} sequences in shard {}/{}, {} already in {}, {} to track on Ray ({} node(s), {})",
            dataset.name, len(sequences), *shard_of, len(sequences) - len(tasks), results, len(tasks),
            len(_alive_nodes()), ", ".join(f"{v:g} {k}" for k, v in sorted(ray.cluster_resources().items())
                                           if k in ("CPU", NPU)),
        )
        if not tasks:
            return summarise(sequences, tasks, [])
        progress = Progress(tasks)
        started = time.monotonic()
        scheduler = _Scheduler(tasks, results, settings, cluster, progress, resources)
        try:
            outcomes = scheduler.run()
        finally:
            progress.close()
        _log_nodes(scheduler.tallies, time.monotonic() - started)
        return summarise(sequences, tasks, outcomes)
    finally:
        ray.shutdown()


def _log_nodes(tallies: dict[str, NodeTally], wall_s: float) -> None:
    for node, tally in sorted(tallies.items(), key=lambda item: item[1].address):
        logger.info(
            "node {} ({}): {} sequences, {} frames, {:.1f} frames/s over the run, {:.1f} per worker",
            tally.address, _short(node), tally.sequences, tally.frames, tally.frames / max(wall_s, 1e-9),
            tally.frames / max(tally.seconds, 1e-9),
        )
