"""The progress report: tqdm's bar on a terminal, a plain line every few seconds in a log (CI, the journal)."""

from __future__ import annotations

import fcntl
import math
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import time

from loguru import logger

from app.live.progress import ProgressLog
from app.live.stats import LoopStats
from tests.live_helpers import REPO, start_run, stop_process

BOX = "20,100,40,40"  # the leave clip's first box
RUN_TIMEOUT_S = 120.0
EXIT_OK = 0
# docs/usage.md: a log gets one progress line every 10 s.
LOG_EVERY_S = 10.0
PROGRESS = "progress: "
READ_BYTES = 4096
TERMINAL_ROWS, TERMINAL_COLUMNS = 24, 100  # a new pseudo-terminal is 0 x 0, where tqdm draws nothing


def _args(leave_clip, demo_models, out) -> list[str]:
    folder, _, _ = leave_clip
    return ["--video", str(folder), "--bbox", BOX, "--model-dir", str(demo_models), "--backend", "onnx", "--output",
            str(out), "--no-display"]


def test_a_log_file_gets_no_carriage_returns_and_few_lines(leave_clip, demo_models, tmp_path):
    log = tmp_path / "run.log"
    started = time.monotonic()
    run = start_run(_args(leave_clip, demo_models, tmp_path / "out"), log)
    try:
        assert run.wait(RUN_TIMEOUT_S) == EXIT_OK, log.read_text()[-3000:]
    finally:
        stop_process(run)
    elapsed = time.monotonic() - started
    text = log.read_text()
    lines = text.splitlines()
    # Neither redraws nor a line per frame (a bar's line each time, as tqdm writes to a file).
    assert "\r" not in text and len(lines) < len(leave_clip[1]), text[-3000:]
    assert sum(line.count(PROGRESS) for line in lines) <= math.floor(elapsed / LOG_EVERY_S), text


def test_a_terminal_gets_the_bar(leave_clip, demo_models, tmp_path):
    """stderr on a pseudo-terminal, as when a person runs the tracker in a shell."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", TERMINAL_ROWS, TERMINAL_COLUMNS, 0, 0))
    chunks: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, READ_BYTES)
            except OSError:  # EIO: every writer to the terminal has closed it
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    run = subprocess.Popen([sys.executable, str(REPO / "app" / "run.py"), *_args(leave_clip, demo_models,
                                                                                 tmp_path / "out")],
                           cwd=REPO, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    try:
        assert run.wait(RUN_TIMEOUT_S) == EXIT_OK
    finally:
        stop_process(run)
        reader.join(RUN_TIMEOUT_S)
        os.close(leader)
    text = b"".join(chunks).decode(errors="replace")
    frames = len(leave_clip[1])
    redraws = re.findall(r"\r(?!\n)", text)  # the terminal's own line ends are \r\n
    assert redraws and f"{frames}/{frames}" in text and "frame/s" in text, text[-3000:]
    assert PROGRESS not in text


def test_the_log_line_says_frames_fps_the_per_frame_figure_and_drops():
    lines: list[str] = []
    sink = logger.add(lines.append, format="{message}")
    every_s = 0.05
    try:
        report = ProgressLog(total=40, live=True, high_percentile=95.0, every_s=every_s)
        stats = LoopStats(frames=0, tracking_s=0.0, dropped=2)
        for step_ms in (20.0, 30.0, 40.0):
            stats.frames += 1
            stats.tracking_s += step_ms / 1000
            stats.latency.add(step_ms)
            report.update(stats)
        assert not lines, "a line before its interval"
        time.sleep(every_s * 2)
        stats.frames += 1
        stats.tracking_s += 0.04
        stats.latency.add(40.0)
        report.update(stats)
        report.update(stats)  # at once again: no second line
    finally:
        logger.remove(sink)
    assert [line.strip() for line in lines] == [(
        # 4 frames in 0.13 s; the median of 20, 30, 40, 40 ms; 40 ms lies in the 1 ms bin whose upper edge is 41
        "progress: 4/40 frames, 30.77 FPS, latency 35 ms (p95 41 ms), 2 dropped")]
