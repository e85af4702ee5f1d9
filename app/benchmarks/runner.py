"""Track every sequence of a benchmark into a results folder that survives interruption.

`RESULTS/<sequence>.txt` (one `x,y,w,h` line per frame, the box of the mask
as SAMURAI's own inference writes it, `0,0,0,0` for an empty mask) and
`RESULTS/<sequence>_time.txt` (seconds per frame) are written whole, by
rename, when the sequence ends; a sequence is done exactly when its `.txt`
exists, so running the same command again does only what is missing.
`--workers N` tracks sequences in N processes, each with its own sub-model
runners; `--shard K/N` takes sequences K, K+N, K+2N, ... so N machines split
a dataset without talking to each other (app/benchmarks/ray_runner.py spreads
them over a Ray cluster instead). `RESULTS/run.json` records what produced the
folder, and a run with other settings refuses to mix into it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from loguru import logger
from PIL import Image
from tqdm import tqdm

from acl_models.bundle import choose_bundle
from acl_models.manifest import load_manifest
from app.benchmarks.datasets import Dataset, Sequence
from app.media.outputs import write_summary
from app.media.whole_files import replace_atomically
from app.samurai.boxes import BoxXYWH, box_or_missing
from app.samurai.config import load_config
from app.samurai.tracker import SamuraiTracker

RUN_FILE = "run.json"
TIME_SUFFIX = "_time"
PROGRESS_POLL_S = 0.1
TIME_FORMAT = "{:.6f}"


class RunError(ValueError):
    """A run that cannot start or go on (bad shard, mixed results folder, a worker that cannot load models)."""


@dataclass(frozen=True)
class RunSettings:
    model_dir: Path
    config: Path | None = None
    mode: str | None = None
    backend: str = "auto"
    onnx_variant: str = "fp32"
    threads: int | None = None  # ONNX Runtime threads per process
    overlap: bool = False  # encode the next frame while this one is tracked (same boxes; docs/speed.md)


@dataclass(frozen=True)
class Task:
    name: str
    frames: tuple[Path, ...]
    first_box: tuple[float, float, float, float]  # x, y, w, h


@dataclass(frozen=True)
class Outcome:
    name: str
    frames: int  # frames tracked
    error: str | None = None  # why the sequence has no result
    fatal: bool = False  # the worker could not start: nothing else will work either


@dataclass(frozen=True)
class Tracked:
    """A sequence's outcome with its boxes (None: the mask was empty) and per-frame seconds, before they are written."""

    outcome: Outcome
    boxes: list[BoxXYWH | None]
    seconds: list[float]


@dataclass(frozen=True)
class RunSummary:
    sequences: int  # in this shard
    already_done: int
    tracked: list[str]
    failed: dict[str, str]


def result_path(results: Path, name: str) -> Path:
    return Path(results) / f"{name}.txt"


def time_path(results: Path, name: str) -> Path:
    return Path(results) / f"{name}{TIME_SUFFIX}.txt"


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 1 <= K <= N."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise RunError(f"--shard {text!r} must be K/N, e.g. 1/4 for the first of four machines") from None
    if not 1 <= index <= count:
        raise RunError(f"--shard {text}: K must be between 1 and N")
    return index, count


def shard(sequences: tuple[Sequence, ...], index: int, count: int) -> tuple[Sequence, ...]:
    """Every count-th sequence, starting with the index-th (1-based)."""
    return sequences[index - 1 :: count]


def read_frame(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, decoded with Pillow as SAM 2's video predictor does."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def write_result(results: Path, name: str, boxes: list[BoxXYWH | None], seconds: list[float]) -> None:
    """Times first, boxes last: the boxes file is the mark that the sequence is complete (`0,0,0,0` for no box)."""
    replace_atomically(time_path(results, name), "".join(TIME_FORMAT.format(s) + "\n" for s in seconds).encode())
    lines = "".join(",".join(map(str, box_or_missing(b))) + "\n" for b in boxes)
    replace_atomically(result_path(results, name), lines.encode())


class SequenceTracker:
    """The sub-models opened once in this process, and a fresh tracker state per sequence."""

    def __init__(self, settings: RunSettings):
        models = choose_bundle(settings.model_dir, settings.backend, settings.onnx_variant)
        self.config = load_config(settings.config, models.manifest.model_size, settings.mode)
        self.overlap = settings.overlap
        self.bundle = models.open(settings.threads, settings.overlap)

    def track(self, task: Task, results: Path, on_frame: Callable[[], None]) -> Outcome:
        tracked = self.follow(task, on_frame)
        if not tracked.outcome.error:
            write_result(results, task.name, tracked.boxes, tracked.seconds)
        return tracked.outcome

    def follow(self, task: Task, on_frame: Callable[[], None]) -> Tracked:
        """Boxes and times of one sequence, kept in memory (a remote worker returns them to the driver)."""
        if not task.frames:
            return Tracked(Outcome(task.name, 0, "no frames found"), [], [])
        tracker = SamuraiTracker(self.bundle, self.config, num_frames=len(task.frames))
        x, y, w, h = task.first_box
        boxes, seconds = [], []
        unreadable: list[str] = []

        def frames():
            for index, path in enumerate(task.frames):
                try:
                    yield index, read_frame(path), None
                # Pillow raises OSError for missing or bad files, SyntaxError from some parsers.
                except (OSError, SyntaxError) as exc:
                    unreadable.append(f"frame {index} ({path}) cannot be read: {exc}")
                    return

        # Overlapped, a frame's time includes reading the next frame, which runs beside its image encoder.
        start = time.perf_counter()
        for frame in tracker.encoder.frames(frames(), self.overlap):
            result = tracker.track(frame, (x, y, x + w, y + h) if frame.frame_idx == 0 else None)
            done = time.perf_counter()
            seconds.append(done - start)
            start = done
            boxes.append(result.box)
            on_frame()
        if unreadable:
            return Tracked(Outcome(task.name, len(boxes), unreadable[0]), [], [])
        return Tracked(Outcome(task.name, len(boxes)), boxes, seconds)

    def close(self) -> None:
        self.bundle.close()


# One SequenceTracker per worker process, made by the pool's initializer.
_worker: SequenceTracker | None = None
_worker_error: str | None = None
_progress: multiprocessing.Queue | None = None


def _init_worker(settings: RunSettings, progress: multiprocessing.Queue) -> None:
    global _worker, _worker_error, _progress
    # Ctrl-C goes to the whole process group: the parent stops the pool, workers just end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logger.remove()
    logger.add(sys.stderr, level="WARNING", format="<level>{level: <7}</level> {message}")
    _progress = progress
    try:
        _worker = SequenceTracker(settings)
    except Exception as exc:  # reported to the parent as one line instead of a respawn loop
        _worker_error = str(exc)


def _track_in_worker(task: Task, results: Path) -> Outcome:
    if _worker is None:
        return Outcome(task.name, 0, _worker_error, fatal=True)
    return _worker.track(task, results, lambda: _progress.put(1))


def task_of(sequence: Sequence) -> Task:
    return Task(sequence.name, sequence.frames, tuple(float(v) for v in sequence.first_box))


def _check_run_file(results: Path, record: dict) -> None:
    """Refuse to resume into a folder that another model, mode or variant started."""
    path = results / RUN_FILE
    record = json.loads(json.dumps(record))  # tuples as lists, as they read back
    if path.is_file():
        previous = json.loads(path.read_text())
        differs = {k: (previous.get(k), v) for k, v in record.items() if previous.get(k) != v}
        if differs:
            what = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in differs.items())
            raise RunError(f"{results} holds results of another run ({what}); use another --out or the same settings")
    write_summary(path, record)


def run_record(dataset: Dataset, settings: RunSettings) -> dict:
    """What decides the boxes: dataset, checkpoint, image size, mode, variant (not the backend or threads)."""
    manifest = load_manifest(settings.model_dir)
    config = load_config(settings.config, manifest.model_size, settings.mode)
    return {
        "dataset": dataset.name,
        "checkpoint_sha256": manifest.checkpoint_sha256,
        "model_size": manifest.model_size,
        "image_size": manifest.image_size,
        "mode": config.mode,
        "onnx_variant": settings.onnx_variant,
        "config": asdict(config),
    }


class Progress:
    """One bar for the whole run: frames with ETA, sequences in the description."""

    def __init__(self, tasks: list[Task]):
        self.total_sequences = len(tasks)
        self.finished = 0
        self.bar = tqdm(total=sum(len(t.frames) for t in tasks), unit="frame", dynamic_ncols=True)
        self._describe()

    def _describe(self) -> None:
        self.bar.set_description(f"sequences {self.finished}/{self.total_sequences}")

    def frame(self, count: int = 1) -> None:
        self.bar.update(count)

    def sequence(self, task: Task, outcome: Outcome) -> None:
        self.finished += 1
        if outcome.frames < len(task.frames):
            self.bar.total -= len(task.frames) - outcome.frames
        self._describe()
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def prepare_run(
    dataset: Dataset, results: Path, settings: RunSettings, shard_of: tuple[int, int]
) -> tuple[tuple[Sequence, ...], list[Task]]:
    """This shard's sequences and those of them without results yet; refuses a folder of other settings."""
    results = Path(results)
    sequences = shard(dataset.sequences, *shard_of)
    results.mkdir(parents=True, exist_ok=True)
    _check_run_file(results, run_record(dataset, settings))
    return sequences, [task_of(s) for s in sequences if not result_path(results, s.name).is_file()]


def summarise(sequences: tuple[Sequence, ...], tasks: list[Task], outcomes: list[Outcome]) -> RunSummary:
    failed = {o.name: o.error for o in outcomes if o.error}
    for name, error in failed.items():
        logger.error("{}: {}", name, error)
    return RunSummary(len(sequences), len(sequences) - len(tasks), [o.name for o in outcomes if not o.error], failed)


def run_dataset(
    dataset: Dataset, results: Path, settings: RunSettings, workers: int = 1, shard_of: tuple[int, int] = (1, 1)
) -> RunSummary:
    if workers < 1:
        raise RunError(f"--workers {workers} must be at least 1")
    sequences, tasks = prepare_run(dataset, results, settings, shard_of)
    logger.info(
        "{}: {} sequences in shard {}/{}, {} already in {}, {} to track with {} worker(s)",
        dataset.name, len(sequences), *shard_of, len(sequences) - len(tasks), results, len(tasks), workers,
    )
    if settings.threads is None:
        settings = RunSettings(**{**asdict(settings), "threads": max(1, (os.cpu_count() or 1) // workers)})
    progress = Progress(tasks)
    try:
        if workers == 1 or len(tasks) <= 1:
            outcomes = _run_here(tasks, Path(results), settings, progress)
        else:
            outcomes = _run_in_pool(tasks, Path(results), settings, min(workers, len(tasks)), progress)
    finally:
        progress.close()
    return summarise(sequences, tasks, outcomes)


def _run_here(tasks: list[Task], results: Path, settings: RunSettings, progress: Progress) -> list[Outcome]:
    if not tasks:
        return []
    tracker = SequenceTracker(settings)
    outcomes = []
    try:
        for task in tasks:
            outcome = tracker.track(task, results, progress.frame)
            progress.sequence(task, outcome)
            outcomes.append(outcome)
    finally:
        tracker.close()
    return outcomes


def _run_in_pool(
    tasks: list[Task], results: Path, settings: RunSettings, workers: int, progress: Progress
) -> list[Outcome]:
    context = multiprocessing.get_context("spawn")
    frames_done = context.Queue()
    outcomes = []
    with context.Pool(workers, _init_worker, (settings, frames_done)) as pool:
        pending = {pool.apply_async(_track_in_worker, (task, results)): task for task in tasks}
        while pending:
            try:
                progress.frame(frames_done.get(timeout=PROGRESS_POLL_S))
            except queue.Empty:
                pass
            for handle in [h for h in pending if h.ready()]:
                task = pending.pop(handle)
                outcome = handle.get()
                if outcome.fatal:
                    raise RunError(f"a worker cannot load the models: {outcome.error}")
                progress.sequence(task, outcome)
                outcomes.append(outcome)
        while not frames_done.empty():
            progress.frame(frames_done.get())
    return outcomes
