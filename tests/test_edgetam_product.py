"""The rest of the product on an EdgeTAM export, unchanged: prompts (a click, a new object), the service's result
stream, and the benchmark evaluation.

The export is the session's 256 px EdgeTAM one (random weights): what is checked is that every door takes the
family's export as it takes SAM 2.1's, and writes what a plain run of the same export writes. References are plain
`--bbox` runs (a folder that begins on the prompt's frame for a new object), written without the prompt code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from app import run
from app.benchmarks import runner
from tests.demo_lasot import SEQUENCES, result_files, run_eval
from tests.live_helpers import SseReader, free_port, http, start_run, stop_process, wait_for

EXIT_OK = 0
IMAGE_SIZE = 256
FRAMES = 8
# The leave clip's first frames: object 1 from frame 0, a click on it on CLICKED, object 2 from NEW.
CLICKED, NEW = 2, 4
SECOND_BOX = [150, 30, 40, 40]
RUN_TIMEOUT_S = 180.0


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _common(models: Path, out: Path) -> list[str]:
    return ["--model-dir", str(models), "--backend", "onnx", "--output", str(out), "--no-display"]


def _scores(records) -> list[float]:
    """Object 1's object score on each frame, from a run's result stream."""
    return [r["object_score"] for r in records if r["type"] == "track" and r["id"] == 1]


def _start_folder(folder: Path, first: int, into: Path) -> Path:
    """The clip's frames from `first` on, renumbered from 0 by their sorted names."""
    into.mkdir()
    for path in sorted(folder.iterdir())[first:]:
        shutil.copy(path, into / path.name)
    return into


def _prompted_run(folder: Path, models: Path, box: list[int], click: list[int], label: int, out: Path) -> list[dict]:
    """A run from a prompt file: `box` for object 1 on frame 0, a click on it on CLICKED, object 2 on NEW; its
    result stream's records."""
    prompts = out.parent / f"{out.name}.jsonl"
    prompts.write_text("\n".join(json.dumps(c) for c in (
        {"frame": 0, "id": 1, "box": box},
        {"frame": CLICKED, "id": 1, "points": [click], "labels": [label]},
        {"frame": NEW, "id": 2, "box": SECOND_BOX})) + "\n")
    events = out.parent / f"{out.name}_events.jsonl"
    assert run.main(["--video", str(folder), *_common(models, out), "--max-frames", str(FRAMES),
                     "--prompts", str(prompts), "--events", str(events)]) == EXIT_OK
    return [json.loads(line) for line in events.read_text().splitlines()]


def test_a_prompt_file_clicks_and_adds_an_object_on_edgetam(leave_clip, edgetam_export_256, tmp_path):
    """A click on object 1 and a new object 2 through `--prompts`: object 2 tracks as a run started on its frame,
    object 1 as the plain run until the click, the click's label changes object 1 from its frame, and the result
    stream lists the prompts."""
    folder, _, truth = leave_clip
    box = [int(v) for v in truth[0]]
    x, y, w, h = (int(v) for v in truth[CLICKED])
    click = [x + w // 2, y + h // 2]
    out = tmp_path / "positive"
    records = _prompted_run(folder, edgetam_export_256, box, click, 1, out)
    negative = _prompted_run(folder, edgetam_export_256, box, click, 0, tmp_path / "negative")
    plain, plain_events = tmp_path / "plain", tmp_path / "plain_events.jsonl"
    assert run.main(["--video", str(folder), *_common(edgetam_export_256, plain), "--max-frames", str(FRAMES),
                     "--bbox", ",".join(map(str, box)), "--events", str(plain_events)]) == EXIT_OK
    second = tmp_path / "second"
    assert run.main(["--video", str(_start_folder(folder, NEW, tmp_path / "from_new")),
                     *_common(edgetam_export_256, second), "--max-frames", str(FRAMES - NEW),
                     "--bbox", ",".join(map(str, SECOND_BOX))]) == EXIT_OK
    assert len(_lines(out / "track.txt")) == FRAMES
    unclicked = _scores(json.loads(line) for line in plain_events.read_text().splitlines())
    assert _scores(records)[:CLICKED] == unclicked[:CLICKED]
    # Random weights give whole-frame boxes whatever the click, but its label changes object 1's score on its frame.
    assert _scores(records)[CLICKED] != _scores(negative)[CLICKED], (_scores(records), _scores(negative))
    assert _lines(out / "track_2.txt") == ["0,0,0,0"] * NEW + _lines(second / "track.txt")
    assert [(r["frame"], r["id"], r["kind"]) for r in records if r["type"] == "prompt"] == [
        (0, 1, "box"), (CLICKED, 1, "points"), (NEW, 2, "box")]


def test_the_service_streams_an_edgetam_run(leave_clip, edgetam_export_256, tmp_path):
    """`--serve` on an EdgeTAM export: a box posted on frame 0, the SSE stream's track records equal track.txt."""
    folder, _, truth = leave_clip
    box = [int(v) for v in truth[0]]
    port, out, log = free_port(), tmp_path / "out", tmp_path / "run.log"
    base = f"http://127.0.0.1:{port}"
    process = start_run(["--video", str(folder), *_common(edgetam_export_256, out), "--max-frames", str(FRAMES),
                         "--serve", f"127.0.0.1:{port}"], log)
    try:
        wait_for(lambda: http("GET", f"{base}/api/status")[0] == 200, RUN_TIMEOUT_S, "the server", process, log)
        reader = SseReader(f"{base}/api/events")
        wait_for(lambda: http("GET", f"{base}/api/frame.jpg")[0] == 200, RUN_TIMEOUT_S, "frame 0", process, log)
        code, body = http("POST", f"{base}/api/track", {"box": box, "frame": 0})
        assert code == 200, body
        wait_for(lambda: any(r.get("event") == "ended" for r in reader.named("state")), RUN_TIMEOUT_S, "the end",
                 process, log)
        assert http("POST", f"{base}/api/stop")[0] == 200
        assert process.wait(RUN_TIMEOUT_S) == EXIT_OK
    finally:
        stop_process(process)
    assert f"models: edgetam at {IMAGE_SIZE} px" in log.read_text()
    tracks = [r for r in reader.named("track")]
    lines = [[int(v) for v in line.split(",")] for line in _lines(out / "track.txt")]
    assert len(lines) == FRAMES
    assert [r["frame"] for r in tracks] == list(range(FRAMES))
    assert [r["box"] or [0, 0, 0, 0] for r in tracks] == lines


def test_the_evaluation_runs_an_edgetam_export(demo_lasot, edgetam_export_256, tmp_path):
    """`scripts/eval.py run` on the demo LaSOT set: every sequence's files, the run's record names EdgeTAM."""
    out = tmp_path / "results"
    assert run_eval(demo_lasot, edgetam_export_256, out, "--backend", "onnx") == EXIT_OK
    results = result_files(out)
    assert sorted(results) == [f"{name}.txt" for name in SEQUENCES]
    for name, (_, length) in SEQUENCES.items():
        assert len(results[f"{name}.txt"].splitlines()) == length
    record = json.loads((out / runner.RUN_FILE).read_text())
    assert record["model_size"] == "edgetam" and record["image_size"] == IMAGE_SIZE
