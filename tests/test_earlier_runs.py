"""A restart into the same --output never destroys the earlier run (docs/service.md): it moves to earlier/<start>/."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from app import run
from app.media.earlier_runs import keep_earlier_run
from tests.script_runs import run_script

BOX = "20,100,40,40"  # the leave clip's first box (scripts/make_demo_clip.py)
FIRST_FRAMES, SECOND_FRAMES = 9, 3  # the restart: 9 lines, then 3
# 2026-12-06 22:35:05 UTC, the earlier run's start in the summary-less case.
EARLIER_MTIME = 1796596505


def _run(capsys, leave_clip, demo_models, out: Path, frames: int, *extra: str) -> str:
    code = run.main(["--video", str(leave_clip[0]), "--bbox", BOX, "--model-dir", str(demo_models), "--backend",
                     "onnx", "--output", str(out), "--no-display", "--save-masks", "--max-frames", str(frames),
                     *extra])
    err = capsys.readouterr().err
    assert code == 0, err[-3000:]
    return err


def _folder_name(started: str) -> str:
    """The documented folder name of a start time: UTC, seconds, dashes for colons."""
    when = datetime.fromisoformat(started).astimezone(timezone.utc)
    return f"{when:%Y-%m-%d}T{when:%H}-{when:%M}-{when:%S}"


def test_a_restart_keeps_the_earlier_run(leave_clip, demo_models, tmp_path, capsys):
    out = tmp_path / "out"
    events, decisions = out / "events.jsonl", out / "decisions.jsonl"
    logs = ["--events", str(events), "--log-decisions", str(decisions)]
    _run(capsys, leave_clip, demo_models, out, FIRST_FRAMES, *logs)
    first_track = (out / "track.txt").read_text()
    first = json.loads((out / "summary.json").read_text())
    err = _run(capsys, leave_clip, demo_models, out, SECOND_FRAMES, *logs)
    second = json.loads((out / "summary.json").read_text())

    kept = out / "earlier" / _folder_name(first["started"])
    assert [p.name for p in (out / "earlier").iterdir()] == [kept.name]
    assert f"kept in {kept}" in err
    assert (kept / "track.txt").read_text() == first_track and len(first_track.splitlines()) == FIRST_FRAMES
    assert len(list((kept / "masks").glob("*.png"))) == FIRST_FRAMES
    assert json.loads((kept / "summary.json").read_text()) == first
    # The new run's files, alone, in OUTPUT.
    assert len((out / "track.txt").read_text().splitlines()) == SECOND_FRAMES
    assert len(list((out / "masks").glob("*.png"))) == SECOND_FRAMES and second["frames"] == SECOND_FRAMES
    assert second["started"] > first["started"]
    # The JSON lines keep both runs, told apart by their start.
    records = [json.loads(line) for line in events.read_text().splitlines()]
    tracks = [r for r in records if r["type"] == "track"]
    assert [(r["run"], r["frame"]) for r in tracks] == (
        [(first["started"], i) for i in range(FIRST_FRAMES)] + [(second["started"], i) for i in range(SECOND_FRAMES)])
    lines = [json.loads(line) for line in decisions.read_text().splitlines()]
    assert [(r["run"], r["frame"]) for r in lines] == [(r["run"], r["frame"]) for r in tracks]


def test_results_without_a_summary_are_named_by_their_oldest_file_and_never_overwritten(tmp_path):
    out = tmp_path / "out"
    (out / "masks").mkdir(parents=True)
    files = {"track_2.txt": "1,2,3,4\n", "frames_2.txt": "0,0.000\n", "masks/00000.png": "png", "track.mp4": "mp4"}
    for name, text in files.items():
        (out / name).write_text(text)
        os.utime(out / name, (EARLIER_MTIME + 60, EARLIER_MTIME + 60))
    os.utime(out / "masks" / "00000.png", (EARLIER_MTIME, EARLIER_MTIME))
    (out / "notes.txt").write_text("the user's own file")
    (out / "earlier" / "2026-12-06T22-35-05").mkdir(parents=True)  # a name already taken

    kept = keep_earlier_run(out)

    assert kept == out / "earlier" / "2026-12-06T22-35-05-2"
    assert {str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()} == set(files)
    assert all((kept / name).read_text() == text for name, text in files.items())
    assert sorted(p.name for p in out.iterdir()) == ["earlier", "notes.txt"]
    assert keep_earlier_run(out) is None  # nothing left to move


def test_a_decision_log_of_two_runs_is_summarised_run_by_run(tmp_path):
    log = tmp_path / "decisions.jsonl"
    runs = {"2026-12-06T22:35:05.000+00:00": ["tracking", "lost"], "2026-12-06T22:40:00.000+00:00": ["tracking"]}
    log.write_text("".join(
        json.dumps({"frame": i, "object": 1, "state": s, "object_score": 1.0, "run": started}) + "\n"
        for started, states in runs.items() for i, s in enumerate(states)))
    done = run_script("summarise_decisions", log)
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    assert [line for line in out if not line.startswith("  ")] == [
        "run 2026-12-06T22:35:05.000+00:00:", "object 1: tracking 0, lost 1",
        "run 2026-12-06T22:40:00.000+00:00:", "object 1: tracking 0"]
