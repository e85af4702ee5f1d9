"""A full disk stops the run as a requested stop does; a failing network sink does not (docs/service.md).

Each case mounts a small tmpfs (as root, as CI runs; skipped otherwise) and tracks the
leave clip (44 frames, tests/conftest.py) at 128 px with one output on it, sized so
that the disk fills mid-run. Wanted: exit 4, exactly one ERROR line naming the file
and the space left, no traceback, and every output readable up to where it stopped.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from app import run
from app.media.outputs import LiveTrackWriter
from app.media.whole_files import WriteFailed
from tests.live_helpers import REPO

BOX = "20,100,40,40"  # the leave clip's first box (scripts/make_demo_clip.py)
CLIP_FRAMES = 44
EXIT_OK, EXIT_OUTPUT_FAILED = 0, 4
RUN_TIMEOUT_S = 120.0
# tmpfs sizes that fill mid-clip (a tmpfs counts whole 4 KiB pages): a whole run writes about
# 176 KiB of masks (a page each), about 260 KiB with the video, 9 KiB of events, 20 KiB of decisions.
KIB = 1024
OUTPUT_DISK = 96 * KIB
VIDEO_DISK = 224 * KIB
EVENTS_DISK = 4 * KIB
PAGE = 4 * KIB  # a tmpfs gives each file whole pages
LATE_TIMESTAMP_S = 1e9  # long frames.txt lines
MQTT_TOPIC_MAX = 65_536  # one more byte than an MQTT topic may hold
SINK_FRAMES = 5
WIDTH, HEIGHT = 32, 24
DECISIONS_DISK = 8 * KIB
# --prompts: this many box corrections on one frame make more prompt records than EVENTS_DISK holds.
PROMPT_FRAME, PROMPTS_ON_IT = 2, 40
ERROR_LINE = re.compile(r"^ERROR\s+cannot write (\S+) \(.*; ([\d.]+ (?:B|KiB|MiB)) free there\)")


@pytest.fixture
def small_disk(tmp_path):
    """mount(size) → a fresh folder on a tmpfs of that many bytes, unmounted after the test."""
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root (CI runs the tests as root)")
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def _track(capsys, leave_clip, demo_models, out: Path, *extra: str) -> tuple[int, str]:
    code = run.main(["--video", str(leave_clip[0]), "--bbox", BOX, "--model-dir", str(demo_models), "--backend",
                     "onnx", "--output", str(out), "--no-display", *extra])
    return code, capsys.readouterr().err


def _one_error_naming(err: str, path: Path) -> None:
    errors = [line[line.index("ERROR"):] for line in err.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    match = ERROR_LINE.match(errors[0])
    assert match is not None, errors[0]
    assert Path(match.group(1)) == path or path in Path(match.group(1)).parents, (errors[0], path)


def _track_lines(out: Path) -> list[list[int]]:
    lines = [[int(v) for v in line.split(",")] for line in (out / "track.txt").read_text().splitlines()]
    assert all(len(line) == 4 for line in lines)
    return lines


def _json_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "a half line"
    return [json.loads(line) for line in text.splitlines()]


def _summary(out: Path) -> dict | None:
    path = out / "summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def _stopped_mid_run(lines: list, err: str) -> None:
    assert 0 < len(lines) < CLIP_FRAMES, (len(lines), err[-3000:])


def test_output_on_a_full_disk_masks(small_disk, leave_clip, demo_models, capsys):
    """Without a video, the disk fills on a real write (a mask or a track line): it is cut back or removed."""
    out = small_disk(OUTPUT_DISK)
    code, err = _track(capsys, leave_clip, demo_models, out, "--save-masks")
    assert code == EXIT_OUTPUT_FAILED, err[-3000:]
    _one_error_naming(err, out)
    lines = _track_lines(out)
    _stopped_mid_run(lines, err)
    masks = sorted(p.name for p in (out / "masks").iterdir())
    assert masks == [f"{i:05d}.png" for i in range(len(masks))] and len(lines) - 1 <= len(masks) <= len(lines)
    assert all(cv2.imread(str(out / "masks" / name), cv2.IMREAD_UNCHANGED) is not None for name in masks)
    assert not list(out.rglob("*.tmp")), "a half-written mask left behind"
    summary = _summary(out)
    assert summary is None or summary["frames"] >= len(lines), summary
    if summary is None:
        assert "summary.json could not be completed" in err, err[-3000:]


def test_output_on_a_full_disk_video_and_masks(small_disk, leave_clip, demo_models, capsys):
    """The video stops while the disk still holds what closing it writes: it plays, up to the last frame written."""
    out = small_disk(VIDEO_DISK)
    code, err = _track(capsys, leave_clip, demo_models, out, "--save-video", "--save-masks")
    assert code == EXIT_OUTPUT_FAILED, err[-3000:]
    _one_error_naming(err, out)
    lines = _track_lines(out)
    _stopped_mid_run(lines, err)
    video = cv2.VideoCapture(str(out / "track.mp4"))
    frames = 0
    while video.read()[0]:
        frames += 1
    assert len(lines) - 1 <= frames <= len(lines), (frames, len(lines))
    summary = _summary(out)
    assert summary is not None and summary["frames"] >= len(lines), err[-3000:]
    assert not list(out.rglob("*.tmp")), "a temporary file left behind"


@pytest.mark.parametrize(("option", "size"), [("--events", EVENTS_DISK), ("--log-decisions", DECISIONS_DISK)])
def test_json_lines_on_a_full_disk(option, size, small_disk, leave_clip, demo_models, tmp_path, capsys):
    """The JSON-lines file fills mid-run: whole lines up to there, and OUTPUT (another disk) complete."""
    path = small_disk(size) / "log.jsonl"
    out = tmp_path / "out"
    code, err = _track(capsys, leave_clip, demo_models, out, option, str(path))
    assert code == EXIT_OUTPUT_FAILED, err[-3000:]
    _one_error_naming(err, path)
    # The result stream has a `track` record per frame; the decision log, which has no `type`, a line per frame.
    frames = [r["frame"] for r in _json_lines(path) if r.get("type", "track") == "track"]
    _stopped_mid_run(frames, err)
    lines = _track_lines(out)
    assert frames == list(range(len(frames))) and len(frames) <= len(lines)
    assert _summary(out)["frames"] >= len(lines)


def test_prompt_records_on_a_full_disk(small_disk, leave_clip, demo_models, tmp_path, capsys):
    """`--prompts` with `--events` on a disk that fills with the prompt records of one frame: exit 4, one line,
    whole records only (a prompt record is never cut), and the outputs on another disk complete."""
    prompts = tmp_path / "prompts.jsonl"
    x, y, w, h = (int(v) for v in BOX.split(","))
    prompts.write_text("".join(json.dumps({"frame": PROMPT_FRAME, "id": 1, "box": [x + i % 3, y, w, h],
                                           "reset": True}) + "\n" for i in range(PROMPTS_ON_IT)))
    path = small_disk(EVENTS_DISK) / "events.jsonl"
    out = tmp_path / "out"
    code, err = _track(capsys, leave_clip, demo_models, out, "--prompts", str(prompts), "--events", str(path))
    assert code == EXIT_OUTPUT_FAILED, err[-3000:]
    _one_error_naming(err, path)
    records = _json_lines(path)
    frames = [r["frame"] for r in records if r["type"] == "track"]
    assert frames == list(range(len(frames))) and len(frames) <= PROMPT_FRAME + 1, frames
    written = [r for r in records if r["type"] == "prompt"]
    assert len(written) < PROMPTS_ON_IT and all(r["frame"] == PROMPT_FRAME for r in written), written
    lines = _track_lines(out)
    _stopped_mid_run(lines, err)
    assert len(frames) <= len(lines) and _summary(out)["frames"] >= len(lines)


def test_a_reader_that_goes_away_does_not_stop_tracking(leave_clip, demo_models, tmp_path):
    """`--events -` into a pipe whose reader leaves after one line: one warning, and every frame is tracked."""
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, str(REPO / "app" / "run.py"), "--video", str(leave_clip[0]), "--bbox", BOX, "--model-dir",
         str(demo_models), "--backend", "onnx", "--output", str(out), "--no-display", "--events", "-"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        json.loads(process.stdout.readline())
        process.stdout.close()
        _, err = process.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == EXIT_OK and "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    # The progress bar ends its line with a carriage return only, so a warning may follow it on one line.
    assert err.count("WARNING") == 1 and err.count("went away") == 1, err[-3000:]
    assert len(_track_lines(out)) == CLIP_FRAMES and _summary(out)["frames"] == CLIP_FRAMES


def test_a_full_disk_leaves_whole_lines_in_step(small_disk):
    """track.txt and frames.txt: a line the disk cuts in half is taken back, and so is its companion line in the
    other file, so line N of one stays line N of the other. A tmpfs of two pages gives each file one page;
    frames.txt's longer lines fill its page first, in the middle of a line."""
    folder = small_disk(2 * PAGE)
    written = 0
    with LiveTrackWriter(folder) as writer:
        with pytest.raises(WriteFailed) as failed:
            for index in range(PAGE):
                writer.write(index, (index, 2, 3, 4), LATE_TIMESTAMP_S)
                written += 1
    assert failed.value.filename == str(folder / "frames.txt")
    track = (folder / "track.txt").read_text()
    frames = (folder / "frames.txt").read_text()
    assert written > 0 and track.endswith("\n") and frames.endswith("\n")
    assert [line.split(",")[0] for line in track.splitlines()] == [str(i) for i in range(written)]
    assert [line.split(",")[0] for line in frames.splitlines()] == [str(i) for i in range(written)]


def test_a_sink_that_fails_is_closed_and_the_others_go_on(tmp_path, warnings):
    """A real MQTT client that refuses every message (a topic longer than MQTT allows) is dropped with one warning;
    the --events file goes on receiving every frame."""
    import numpy as np

    from app.live.control import TrackController
    from app.live.tracked import Tracked
    from app.media.sources import Frame
    from app.publish.events import EventStream
    from app.publish.jsonl import JsonLinesSink
    from app.publish.mqtt import BrokerAddress, MqttPublisher
    from app.samurai.results import FrameResult
    from tests.live_helpers import free_port

    port = free_port()  # no broker: the client retries in the background, as it does when one goes away
    address = BrokerAddress(f"mqtt://127.0.0.1:{port}/x", False, "127.0.0.1", port, None, None, "x" * MQTT_TOPIC_MAX)
    publisher = MqttPublisher(address, TrackController((WIDTH, HEIGHT)))
    events_file = tmp_path / "events.jsonl"
    file_sink = JsonLinesSink(str(events_file))
    stream = EventStream([publisher, file_sink], run="2026-12-06T22:35:05.000+00:00")
    image, mask = np.zeros((HEIGHT, WIDTH, 3), np.uint8), np.zeros((HEIGHT, WIDTH), bool)
    mask[2:7, 1:5] = True  # its box: 1, 2, 3, 4
    try:
        for index in range(SINK_FRAMES):
            result = FrameResult(index, mask, mask.astype(np.float32), 0, 1.0, 2.0, None)
            stream(Tracked(Frame(index, image, index / 30), {1: result}))
        stream.end()
    finally:
        file_sink.close()
        publisher.close()
    assert stream.sinks == [file_sink]
    assert sum("MqttPublisher failed" in message for message in warnings) == 1, warnings
    tracks = [r for r in _json_lines(events_file) if r["type"] == "track"]
    assert [r["frame"] for r in tracks] == list(range(SINK_FRAMES))
