"""A session replayed from its records, and the mask decoder's point cap at every door.

The replay test's session is a `--serve` run steered through `POST /api/prompts` (clicks that add up, an undo, a
mask, a box correction with clicks, a removal); its `prompt` records, kept as the docs say (the lines of
events.jsonl whose type is prompt), are then the `--prompts` file of a plain file run, which must write the same
track files, masks and records.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from acl_models.manifest import load_manifest
from app import run
from app.live.control import LoopStatus, ObjectStatus, TrackController
from app.live.prompt_file import read_prompt_file
from app.media.earlier_runs import keep_earlier_run
from app.media.prompt import PromptError
from app.publish.sse import SseBroadcaster
from app.serve.hub import FrameHub
from app.serve.server import WebServer
from tests.live_helpers import (HeldFrames, SseReader, copy_frames, end_served_run, free_port, http, start_run,
                                status, stop_process, wait_for)

RUN_TIMEOUT_S = 180.0
EXIT_OK, EXIT_BAD_INPUT = 0, 2
FRAMES = 12
CLICKED, MASKED, CORRECTED, REMOVED = 5, 7, 9, 10  # the first after the frames read ahead on frame 0
MASK_ROWS, MASK_COLUMNS = slice(30, 64), slice(150, 186)  # object 2's mask on frame MASKED
PROMPT_LINE = '"type": "prompt"'  # what the docs' grep keeps of events.jsonl


def _mask(size: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((size[1], size[0]), bool)
    mask[MASK_ROWS, MASK_COLUMNS] = True
    return mask


def _base64_png(mask: np.ndarray) -> str:
    ok, data = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    assert ok
    return base64.b64encode(data.tobytes()).decode()


def _session(truth: np.ndarray, size: tuple[int, int]) -> dict[int, list[list[dict]]]:
    """The requests sent while the run waits for each frame (none names its frame: the loop's newest applies)."""
    x, y, w, h = (int(v) for v in truth[CLICKED])
    return {
        0: [[{"id": 1, "box": [int(v) for v in truth[0]]}]],
        CLICKED: [[{"id": 1, "points": [[x + w // 2, y + h // 2]], "labels": [1]}],
                  [{"id": 1, "points": [[x + 1, y + 1], [x + w - 2, y + 2]], "labels": [0, 1]}],
                  [{"id": 1, "undo": True}]],
        MASKED: [[{"id": 2, "mask": _base64_png(_mask(size))}]],
        CORRECTED: [[{"id": 1, "box": [int(v) for v in truth[CORRECTED]], "points": [[x + w // 2, y]],
                      "labels": [0]},
                     {"id": 2, "points": [[160, 40]], "labels": [1]}]],
        REMOVED: [[{"id": 2, "remove": True}]],
    }


def _results(out: Path) -> dict[str, object]:
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    return {"track": (out / "track.txt").read_text(), "track_2": (out / "track_2.txt").read_text(),
            "masks": {path.name: path.read_bytes() for path in sorted((out / "masks").iterdir())},
            "prompts": [{k: v for k, v in e.items() if k != "run"} for e in events if e["type"] == "prompt"]}


def _common(folder: Path, models: Path, out: Path) -> list[str]:
    return ["--video", str(folder), "--model-dir", str(models), "--backend", "onnx", "--output", str(out),
            "--no-display", "--max-frames", str(FRAMES), "--save-masks", "--no-overlap",
            "--events", str(out / "events.jsonl")]


def test_a_door_session_replays_from_its_prompt_records(leave_clip, export_128, tmp_path):
    """On the random-weight export, where clicks change the masks."""
    folder, frames, truth = leave_clip
    size = (frames[0].shape[1], frames[0].shape[0])
    session = _session(truth, size)
    session_out, replay_out = tmp_path / "session", tmp_path / "replay"
    for out in (session_out, replay_out):
        out.mkdir()
    port, log = free_port(), tmp_path / "session.log"
    later = [frame for frame in session if frame]
    pipes = HeldFrames(copy_frames(folder, tmp_path / "frames", FRAMES), later)
    served = start_run([*_common(pipes.paths[CLICKED].parent, export_128, session_out), "--serve", str(port)], log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: status(base)["frame"] == 0, RUN_TIMEOUT_S, "the run waiting on frame 0", served, log)
        pipes.hold()
        for frame in session:
            if frame:
                wait_for(lambda: status(base)["frame"] == frame - 1, RUN_TIMEOUT_S, f"frame {frame - 1}", served, log)
            for request in session[frame]:
                code, answer = http("POST", f"{base}/api/prompts", request)
                assert code == 200, answer
            if frame:
                pipes.give(frame)
        end_served_run(base, served, log, RUN_TIMEOUT_S)
    finally:
        stop_process(served)

    prompts = session_out / "prompts.jsonl"  # beside prompt_masks/, which its mask lines name
    prompts.write_text("".join(line + "\n" for line in (session_out / "events.jsonl").read_text().splitlines()
                               if PROMPT_LINE in line))
    assert run.main([*_common(folder, export_128, replay_out), "--prompts", str(prompts)]) == EXIT_OK

    played, replayed = _results(session_out), _results(replay_out)
    assert [(p["frame"], p["id"], p["kind"]) for p in played["prompts"]] == [
        (0, 1, "box"), (CLICKED, 1, "points"), (CLICKED, 1, "points"), (CLICKED, 1, "undo"), (MASKED, 2, "mask"),
        (CORRECTED, 1, "box+points"), (CORRECTED, 2, "points"), (REMOVED, 2, "remove")]
    mask_record = played["prompts"][4]
    assert mask_record["mask"] == f"prompt_masks/{MASKED:05d}_2.png"  # named, never inline
    kept = cv2.imread(str(session_out / mask_record["mask"]), cv2.IMREAD_GRAYSCALE) > 0
    assert np.array_equal(kept, _mask(size))
    assert played["prompts"][1]["points"] == session[CLICKED][0][0]["points"]
    assert replayed == played
    assert (replay_out / mask_record["mask"]).read_bytes() == (session_out / mask_record["mask"]).read_bytes()
    summary = json.loads((session_out / "summary.json").read_text())["prompts"]
    assert summary == played["prompts"]


def test_records_that_cannot_replay_are_refused_with_their_line(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"type": "prompt", "frame": 0, "id": 1, "kind": "box", "box": [1, 2, 30, 40], "run": "x"}\n'
                       '{"type": "track", "frame": 0, "id": 1, "state": "tracking", "box": [1, 2, 30, 40]}\n')
    with pytest.raises(PromptError, match="line 2: a 'track' record is not a prompt; keep only the prompt records"):
        read_prompt_file(prompts)
    prompts.write_text('{"type": "prompt", "frame": 3, "id": 2, "kind": "mask", "mask": null}\n')
    with pytest.raises(PromptError, match="line 1: the session's mask was not kept"):
        read_prompt_file(prompts)


# -- the point cap: max_prompt_points of the manifest, per object and frame ------------------------------------------

def _clicks(count: int, frame: int = 1) -> dict:
    return {"frame": frame, "id": 1, "points": [[10 + i, 20] for i in range(count)], "labels": [1] * count}


def _run_prompts(lines: list[dict], leave_clip, models: Path, tmp_path: Path, capsys) -> tuple[int, list[str]]:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    code = run.main(["--video", str(leave_clip[0]), "--model-dir", str(models), "--backend", "onnx", "--output",
                     str(out), "--no-display", "--max-frames", "3", "--prompts", str(prompts)])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.startswith("ERROR")]


@pytest.mark.parametrize("name", ["one line", "lines that add up", "a box and clicks"])
def test_a_prompt_file_over_the_point_cap_exits_2_before_models_load(name, leave_clip, demo_models, tmp_path,
                                                                     capsys):
    most = load_manifest(demo_models).hyper["max_prompt_points"]
    start = {"frame": 0, "id": 1, "box": [20, 100, 40, 40]}
    lines = {"one line": [start, _clicks(most + 1)],
             "lines that add up": [start, _clicks(most - 1), _clicks(1, frame=2), _clicks(2)],
             "a box and clicks": [start, {**_clicks(most - 1), "box": [20, 100, 40, 40]}]}[name]
    code, errors = _run_prompts(lines, leave_clip, demo_models, tmp_path, capsys)
    assert code == EXIT_BAD_INPUT and len(errors) == 1, errors
    assert f"line {len(lines)}" in errors[0] and f"at most {most}" in errors[0], errors[0]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_box_or_an_undo_brings_the_points_back_under_the_cap(leave_clip, demo_models, tmp_path, capsys):
    most = load_manifest(demo_models).hyper["max_prompt_points"]
    lines = [{"frame": 0, "id": 1, "box": [20, 100, 40, 40]}, _clicks(most), {"frame": 1, "id": 1, "undo": True},
             _clicks(most), {"frame": 1, "id": 1, "box": [20, 100, 40, 40]}, _clicks(most - 2)]
    code, errors = _run_prompts(lines, leave_clip, demo_models, tmp_path, capsys)
    assert code == EXIT_OK and not errors, errors


MOST = 8  # the cap the controller is given here (the export's)


@pytest.fixture
def served(leave_clip):
    frames = leave_clip[1]
    controller = TrackController((frames[0].shape[1], frames[0].shape[0]), MOST)
    controller.publish(LoopStatus(frame=4, objects={1: ObjectStatus("tracking")}, held=range(0, 5), history=5))
    events = SseBroadcaster(controller.status)
    server = WebServer(controller, FrameHub(), "127.0.0.1", free_port(), events=events)
    yield controller, f"http://127.0.0.1:{server.port}"
    server.close()


def test_post_api_prompts_refuses_a_command_over_the_cap(served):
    controller, base = served
    code, answer = http("POST", f"{base}/api/prompts", _clicks(MOST + 1))
    assert code == 400 and f"{MOST + 1} points for one object on one frame" in json.loads(answer)["error"]
    code, answer = http("POST", f"{base}/api/prompts", {**_clicks(MOST - 1), "box": [1, 1, 9, 9]})
    assert code == 400 and f"at most {MOST}" in json.loads(answer)["error"]
    assert controller.take_commands() == []
    assert http("POST", f"{base}/api/prompts", _clicks(MOST))[0] == 200


def test_a_prompt_the_loop_refuses_later_reaches_the_page(served):
    """The loop refuses a prompt POST /api/prompts took (as it does: through the queued command's callback); the
    page's event stream carries the reason as a `refused` event."""
    controller, base = served
    reader = SseReader(f"{base}/api/events")
    wait_for(lambda: reader.named("status"), 10.0, "the event stream")
    assert http("POST", f"{base}/api/prompts", _clicks(MOST))[0] == 200
    (queued,) = controller.take_commands()
    queued.on_refused("9 points for one object on one frame; the models take at most 8")
    wait_for(lambda: reader.named("refused"), 10.0, "the refused event")
    reader.close()
    assert reader.named("refused") == [{"type": "refused", "error": "9 points for one object on one frame; the "
                                                                    "models take at most 8"}]


def test_an_earlier_runs_prompt_masks_move_aside_with_its_results(tmp_path):
    """A new session into the same folder must not find the last one's masks under the names its records use."""
    (tmp_path / "track.txt").write_text("1,2,3,4\n")
    (tmp_path / "prompt_masks").mkdir()
    (tmp_path / "prompt_masks" / "00004_2.png").write_bytes(b"last run's mask")
    moved = keep_earlier_run(tmp_path)
    assert moved is not None and not (tmp_path / "prompt_masks").exists()
    assert (moved / "prompt_masks" / "00004_2.png").read_bytes() == b"last run's mask"
