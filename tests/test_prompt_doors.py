"""Prompts through every door: `--prompts`, `POST /api/prompts`, MQTT's `PREFIX/cmd`, with the real parts (the
demo models, Mosquitto, the web server).

The door-equivalence test's reference is the prompt file's run (the issue's replay door); the replay tests use
prompts whose meaning is a fresh start (a box for a new object, a reset box) or a removal: their reference is a plain
run started with `--bbox` on the prompt's frame (a folder that begins there), written without the prompt code.
"""

from __future__ import annotations

import base64
import json
import shutil
import urllib.error
import urllib.request
from dataclasses import astuple, replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from loguru import logger

from acl_models.bundle import open_bundle_with
from acl_models.manifest import load_manifest
from acl_models.onnx_runner import OnnxRunner
from app import run
from app.live.commands import parse_commands
from app.live.control import LoopStatus, ObjectStatus, TrackController
from app.live.pipeline import TrackingLoop
from app.live.tracked import Tracked
from app.media.prompt import PromptError
from app.publish.mqtt import MqttPublisher, parse_publish_url
from app.samurai.boxes import Box
from app.samurai.config import load_config
from app.samurai.multi_tracker import MultiObjectTracker
from app.serve.hub import FrameHub
from app.serve.server import WebServer
from tests.demo_model import TEST_THREADS
from tests.live_helpers import (HeldFrames, LiveClip, MqttSubscriber, SseReader, copy_frames, end_served_run,
                                free_port, http, start_broker, start_run, status, stop_process, wait_for)

PREFIX = "doors/p1"
RUN_TIMEOUT_S = 180.0
EXIT_OK, EXIT_BAD_INPUT = 0, 2
# What the network doors' controller is told the loop holds: frames 3..7 of a 5-frame history, object 1 tracked.
HELD, HISTORY, TRACKED = range(3, 8), 5, 1
HELD_FRAME, GONE_FRAME, FUTURE_FRAME = 5, 1, 1_000_000
SMALL = 8  # a mask of the wrong size: SMALL x SMALL


def _png(mask: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    assert ok
    return data.tobytes()


def _masks(size: tuple[int, int]) -> dict[str, np.ndarray]:
    width, height = size
    return {"empty": np.zeros((height, width), bool), "small": np.ones((SMALL, SMALL), bool)}


# name → (command, or raw text for a malformed one; the words the file door's ERROR line holds, or None where the
# case cannot happen in a file; the words the network doors' one line holds). "MASK:x" is the mask `x` of _masks:
# a PNG file named in a prompt file, base64 PNG over the network. W and H are the frame's width and height.
BAD_CASES = {
    "point outside the frame": ({"frame": HELD_FRAME, "id": 1, "points": [["W", 10]], "labels": [1]},
                                "lies outside the", "lies outside the"),
    "label not 0 or 1": ({"frame": HELD_FRAME, "id": 1, "points": [[5, 5]], "labels": [2]},
                         "must be 1 (positive) or 0", "must be 1 (positive) or 0"),
    "lengths differ": ({"frame": HELD_FRAME, "id": 1, "points": [[5, 5], [6, 6]], "labels": [1]},
                       "2 points but 1 labels", "2 points but 1 labels"),
    "empty mask": ({"frame": HELD_FRAME, "id": 1, "mask": "MASK:empty"}, "the mask is empty", "the mask is empty"),
    "mask of the wrong size": ({"frame": HELD_FRAME, "id": 1, "mask": "MASK:small"},
                               f"the mask is {SMALL}x{SMALL} but the frame is", f"the mask is {SMALL}x{SMALL} but"),
    "frame in the future": ({"frame": FUTURE_FRAME, "id": 1, "box": [1, 1, 9, 9]}, "past the source's last frame",
                            f"frame {FUTURE_FRAME} is in the future"),
    "frame past the history": ({"frame": GONE_FRAME, "id": 1, "box": [1, 1, 9, 9]}, None,
                               f"prompts can go back {HISTORY} frames"),
    "unknown id to remove": ({"frame": HELD_FRAME, "id": 9, "remove": True}, "object 9 is not tracked",
                             "object 9 is not tracked"),
    "undo with a box": ({"frame": HELD_FRAME, "id": 1, "undo": True, "box": [1, 1, 9, 9]}, '"undo" comes alone',
                        '"undo" comes alone'),
    "malformed line": ('{"frame": 5, "id": 1, "box": [1, 2', "is not JSON", "not JSON"),
}


def _network_body(case: object, size: tuple[int, int]) -> str:
    if isinstance(case, str):
        return case
    text = json.dumps(case).replace('"W"', str(size[0])).replace('"H"', str(size[1]))
    for name, mask in _masks(size).items():
        text = text.replace(f"MASK:{name}", base64.b64encode(_png(mask)).decode())
    return text


def _file_line(case: object, size: tuple[int, int], folder: Path) -> str:
    if isinstance(case, str):
        return case
    text = json.dumps(case).replace('"W"', str(size[0])).replace('"H"', str(size[1]))
    for name, mask in _masks(size).items():
        (folder / f"{name}.png").write_bytes(_png(mask))
        text = text.replace(f"MASK:{name}", f"{name}.png")
    return text


def _one_line(text: str) -> str:
    assert "\n" not in text.strip() and "Traceback" not in text, text
    return text


@pytest.fixture
def loop_status() -> LoopStatus:
    return LoopStatus(frame=HELD.stop - 1, objects={TRACKED: ObjectStatus("tracking")}, held=HELD, history=HISTORY)


# A prompt file's frame is always held when it applies: the history does not limit it.
FILE_CASES = [name for name, (_, file_words, _) in BAD_CASES.items() if file_words is not None]


@pytest.mark.parametrize("name", FILE_CASES)
def test_bad_input_through_the_prompt_file(name, leave_clip, demo_models, tmp_path, capsys):
    """Exit 2 and one ERROR line naming the file's line, before any result file exists (no model loads)."""
    case, file_words, _ = BAD_CASES[name]
    folder, frames, _ = leave_clip
    size = (frames[0].shape[1], frames[0].shape[0])
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"frame": 0, "id": 1, "box": [20, 100, 40, 40]}\n' + _file_line(case, size, tmp_path) + "\n")
    out = tmp_path / "out"
    code = run.main(["--video", str(folder), "--model-dir", str(demo_models), "--backend", "onnx", "--output",
                     str(out), "--no-display", "--prompts", str(prompts)])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ERROR")]
    assert code == EXIT_BAD_INPUT and len(errors) == 1, errors
    assert f"--prompts {prompts} line 2" in errors[0] and file_words in errors[0], errors[0]
    assert not out.exists() or not any(out.iterdir()), "a result file was written for a run that cannot start"


@pytest.fixture
def web(leave_clip, loop_status):
    frames = leave_clip[1]
    controller = TrackController((frames[0].shape[1], frames[0].shape[0]))
    controller.publish(loop_status)
    server = WebServer(controller, FrameHub(), "127.0.0.1", free_port())
    yield controller, f"http://127.0.0.1:{server.port}"
    server.close()


@pytest.mark.parametrize("name", BAD_CASES)
def test_bad_input_through_post_api_prompts(name, web):
    """400 and one line; nothing reaches the loop."""
    controller, base = web
    case, _, words = BAD_CASES[name]
    body = _network_body(case, controller.frame_size)
    for payload in (body, f"[{body}]" if not isinstance(case, str) else body):
        code, answer = _post_raw(f"{base}/api/prompts", payload.encode())
        error = json.loads(answer)["error"]
        assert code == 400 and words in _one_line(error), error
    assert controller.take_commands() == []


def _post_raw(url: str, data: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def broker(tmp_path):
    port = free_port()
    process = start_broker(port, tmp_path)
    yield port
    stop_process(process)


def test_bad_input_over_mqtt_is_a_warning_and_an_error_record(leave_clip, loop_status, broker):
    """Every bad case: one warning and one error record on PREFIX/error naming the problem; nothing queued."""
    frames = leave_clip[1]
    controller = TrackController((frames[0].shape[1], frames[0].shape[0]))
    controller.publish(loop_status)
    subscriber = MqttSubscriber(broker, f"{PREFIX}/error")
    publisher = MqttPublisher(parse_publish_url(f"mqtt://127.0.0.1:{broker}/{PREFIX}"), controller)
    warnings: list[str] = []
    sink = logger.add(warnings.append, level="WARNING", format="{message}")
    try:
        wait_for(lambda: publisher._connected.is_set(), 10.0, "the run's MQTT client")
        for case, _, _ in BAD_CASES.values():
            subscriber.publish(f"{PREFIX}/cmd", _network_body(case, controller.frame_size))
        wait_for(lambda: len(subscriber.on(f"{PREFIX}/error")) >= len(BAD_CASES), 10.0, "the error records")
    finally:
        logger.remove(sink)
        publisher.close()
        subscriber.close()
    errors = [record["error"] for record in subscriber.on(f"{PREFIX}/error")]
    for (_, _, words), error, warning in zip(BAD_CASES.values(), errors, warnings, strict=True):
        assert words in _one_line(error) and words in _one_line(warning), (words, error, warning)
    assert controller.take_commands() == []


def test_a_batch_is_taken_whole_or_refused_whole(web):
    controller, base = web
    good = {"frame": HELD_FRAME, "id": 2, "box": [1, 1, 9, 9]}
    code, answer = http("POST", f"{base}/api/prompts", [good, {"frame": HELD_FRAME, "id": 9, "remove": True}])
    assert code == 400 and json.loads(answer)["error"].startswith("command 2: object 9 is not tracked")
    assert controller.take_commands() == []
    code, answer = http("POST", f"{base}/api/prompts", [good, {"frame": HELD_FRAME, "id": 2, "remove": True}])
    assert code == 200 and json.loads(answer)["prompts"] == [
        {"frame": HELD_FRAME, "id": 2, "kind": "box", "box": [1, 1, 9, 9]},
        {"frame": HELD_FRAME, "id": 2, "kind": "remove", "remove": True}]


def test_points_and_masks_parse_to_the_prompt_the_tracker_gets(leave_clip):
    """Schema only (the tracker's handling of clicks and masks is tested with it)."""
    frames = leave_clip[1]
    height, width = frames[0].shape[:2]
    mask = np.zeros((height, width), bool)
    mask[10:20, 30:50] = True
    (clicks,) = parse_commands(json.dumps({"frame": 3, "id": 2, "points": [[5, 6.5], [7, 8]], "labels": [1, 0],
                                           "box": [1, 2, 30, 40]}))
    assert clicks.frame == 3 and clicks.kind == "box+points"
    assert clicks.prompt.points == ((5.0, 6.5), (7.0, 8.0)) and clicks.prompt.labels == (1, 0)
    assert clicks.prompt.box == Box(1, 2, 30, 40) and not clicks.prompt.reset
    (masked,) = parse_commands(json.dumps({"id": 1, "mask": "data:image/png;base64,"
                                           + base64.b64encode(_png(mask)).decode()}))
    assert masked.frame is None and masked.kind == "mask" and np.array_equal(masked.prompt.mask, mask)
    with pytest.raises(PromptError, match="a mask comes alone"):
        parse_commands(json.dumps({"id": 1, "mask": "x", "box": [1, 1, 2, 2]}))
    (undo,) = parse_commands(json.dumps({"frame": 4, "id": 3, "undo": True}))
    assert undo.frame == 4 and undo.kind == "undo" and undo.prompt.undo and undo.prompt.obj_id == 3


# -- the same prompts through every door ------------------------------------------------------------------------

# Frame 0 starts two objects; frame 5 clicks (a positive one on object 1, a positive and a negative one on object 2);
# frame 7 corrects object 1 with a box (no reset) and object 2 with a mask; frame 9 starts object 1 over and removes
# object 2. FRAMES frames in all.
CLICKED, CORRECTED, LAST = 5, 7, 9
FRAMES = LAST + 2
BOX_1, BOX_2 = [20, 100, 40, 40], [150, 30, 40, 40]
MASK_2 = (slice(32, 66), slice(148, 186))  # rows, columns of object 2's mask on frame CORRECTED
MASK_FILE = "mask_2.png"


def _schedule(truth: np.ndarray) -> dict[int, list[dict]]:
    """The prompts by frame, as a prompt file writes them (the mask as MASK_FILE)."""
    def centre(frame: int) -> list[int]:
        x, y, w, h = truth[frame]
        return [int(x + w // 2), int(y + h // 2)]

    return {
        0: [{"frame": 0, "id": 1, "box": BOX_1}, {"frame": 0, "id": 2, "box": BOX_2}],
        CLICKED: [{"frame": CLICKED, "id": 1, "points": [centre(CLICKED)], "labels": [1]},
                  {"frame": CLICKED, "id": 2, "points": [[170, 50], [120, 100]], "labels": [1, 0]}],
        CORRECTED: [{"frame": CORRECTED, "id": 1, "box": [int(v) for v in truth[CORRECTED]]},
                    {"frame": CORRECTED, "id": 2, "mask": MASK_FILE}],
        LAST: [{"frame": LAST, "id": 1, "box": [int(v) for v in truth[LAST]], "reset": True},
               {"frame": LAST, "id": 2, "remove": True}],
    }


def _mask_2(size: tuple[int, int]) -> np.ndarray:
    mask = np.zeros((size[1], size[0]), bool)
    mask[MASK_2] = True
    return mask


def _sent(commands: list[dict], size: tuple[int, int]) -> str:
    """A network door's request for frame K's prompts, sent while the run waits for frame K: without "frame" (the
    frame the loop is on; a frame not read yet is refused as in the future), the mask as base64 PNG."""
    sent = [{k: v for k, v in command.items() if k != "frame"} for command in commands]
    for command in sent:
        if command.get("mask") == MASK_FILE:
            command["mask"] = base64.b64encode(_png(_mask_2(size))).decode()
    return json.dumps(sent)


def _files(out: Path) -> dict[str, object]:
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    return {"track": (out / "track.txt").read_text(), "track_2": (out / "track_2.txt").read_text(),
            "masks": {path.name: path.read_bytes() for path in sorted((out / "masks").iterdir())},
            "prompts": [{k: e[k] for k in ("frame", "id", "kind")} for e in events if e["type"] == "prompt"],
            "summary": [{k: p[k] for k in ("frame", "id", "kind")}
                        for p in json.loads((out / "summary.json").read_text())["prompts"]]}


def _common(folder: Path, models: Path, out: Path) -> list[str]:
    # --no-overlap: the run reads frame K only after frame K-1's prompts (overlapped, it would read it while
    # tracking K-1); it is the default, said here because the network doors' timing rests on it.
    return ["--video", str(folder), "--model-dir", str(models), "--backend", "onnx", "--output", str(out),
            "--no-display", "--max-frames", str(FRAMES), "--save-masks", "--no-overlap",
            "--events", str(out / "events.jsonl")]


def test_the_same_prompts_through_every_door_give_the_same_files(leave_clip, export_128, broker, tmp_path):
    """Boxes, clicks, a box correction, a mask, a reset and a removal, on frames 0 to 9, through `--prompts`,
    `POST /api/prompts` and MQTT: the same track files, masks and prompt records (events, SSE, MQTT, summary.json).
    A bad points command over MQTT is one warning and one error record, and changes nothing. On the random-weight
    export, where a click changes the masks (the demo model's decoder, set by hand for boxes, ignores clicks)."""
    folder, frames, truth = leave_clip
    size = (frames[0].shape[1], frames[0].shape[0])
    schedule = _schedule(truth)
    held = [frame for frame in schedule if frame]
    outs = {door: tmp_path / door for door in ("file", "http", "mqtt")}
    for out in outs.values():
        out.mkdir()
    cv2.imwrite(str(tmp_path / MASK_FILE), _mask_2(size).astype(np.uint8) * 255)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(c) + "\n" for commands in schedule.values() for c in commands))
    assert run.main([*_common(folder, export_128, outs["file"]), "--prompts", str(prompts)]) == EXIT_OK

    port, log = free_port(), tmp_path / "http.log"
    pipes = HeldFrames(copy_frames(folder, tmp_path / "http_frames", FRAMES), held)
    served = start_run([*_common(pipes.paths[CLICKED].parent, export_128, outs["http"]), "--serve", str(port)], log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: status(base)["frame"] == 0, RUN_TIMEOUT_S, "the run waiting on frame 0", served, log)
        pipes.hold()
        events = SseReader(f"{base}/api/events")  # before the prompts: their records come through it too
        code, answer = http("POST", f"{base}/api/prompts", schedule[0])
        assert code == 200, answer
        for frame in held:
            wait_for(lambda: status(base)["frame"] == frame - 1, RUN_TIMEOUT_S, f"frame {frame - 1}", served, log)
            code, answer = _post_raw(f"{base}/api/prompts", _sent(schedule[frame], size).encode())
            assert code == 200, answer
            pipes.give(frame)
        end_served_run(base, served, log, RUN_TIMEOUT_S)
    finally:
        stop_process(served)
    wait_for(lambda: events.ended, RUN_TIMEOUT_S, "the end of the event stream")  # the server closed it
    sse_prompts = [{k: e[k] for k in ("frame", "id", "kind")} for e in events.named("prompt")]

    log = tmp_path / "mqtt.log"
    pipes = HeldFrames(copy_frames(folder, tmp_path / "mqtt_frames", FRAMES), held)
    published = start_run([*_common(pipes.paths[CLICKED].parent, export_128, outs["mqtt"]), "--publish",
                           f"mqtt://127.0.0.1:{broker}/{PREFIX}"], log)
    subscriber = MqttSubscriber(broker, f"{PREFIX}/#")
    accepted = f"on {PREFIX}/cmd\n"  # the run's log line for each command it took
    try:
        wait_for(lambda: "waiting for a box on frame 0" in log.read_text() and subscriber.on(f"{PREFIX}/status"),
                 RUN_TIMEOUT_S, "the run waiting on frame 0, online", published, log)
        pipes.hold()
        subscriber.publish(f"{PREFIX}/cmd", json.dumps({"frame": 0, "id": 1, "points": [[5, 5], [6, 6]],
                                                        "labels": [1]}))
        wait_for(lambda: subscriber.on(f"{PREFIX}/error"), RUN_TIMEOUT_S, "the error record", published, log)
        subscriber.publish(f"{PREFIX}/cmd", json.dumps(schedule[0]))
        for number, frame in enumerate(held, start=1):
            wait_for(lambda: any(r["frame"] == frame - 1 for r in subscriber.on(f"{PREFIX}/1/track")),
                     RUN_TIMEOUT_S, f"frame {frame - 1}", published, log)
            subscriber.publish(f"{PREFIX}/cmd", _sent(schedule[frame], size))
            wait_for(lambda: log.read_text().count(accepted) == number + 1, RUN_TIMEOUT_S,
                     f"frame {frame}'s prompts taken", published, log)
            pipes.give(frame)
        assert published.wait(RUN_TIMEOUT_S) == EXIT_OK, log.read_text()[-3000:]
    finally:
        stop_process(published)
        subscriber.close()
    (error,) = subscriber.on(f"{PREFIX}/error")
    warnings = [line for line in log.read_text().splitlines() if line.startswith("WARNING")]
    assert "2 points but 1 labels" in error["error"] and len(warnings) == 1 and "2 points but 1 labels" in warnings[0]
    mqtt_prompts = sorted(({k: r[k] for k in ("frame", "id", "kind")} for obj in (1, 2)
                           for r in subscriber.on(f"{PREFIX}/{obj}/prompt")), key=lambda r: (r["frame"], r["id"]))

    files = {door: _files(out) for door, out in outs.items()}
    expected = [{"frame": 0, "id": 1, "kind": "box"}, {"frame": 0, "id": 2, "kind": "box"},
                {"frame": CLICKED, "id": 1, "kind": "points"}, {"frame": CLICKED, "id": 2, "kind": "points"},
                {"frame": CORRECTED, "id": 1, "kind": "box"}, {"frame": CORRECTED, "id": 2, "kind": "mask"},
                {"frame": LAST, "id": 1, "kind": "reset"}, {"frame": LAST, "id": 2, "kind": "remove"}]
    assert files["file"]["prompts"] == files["file"]["summary"] == sse_prompts == mqtt_prompts == expected
    assert len(files["file"]["track"].splitlines()) == FRAMES
    assert len(files["file"]["track_2"].splitlines()) == LAST + 1
    assert len(files["file"]["masks"]) == FRAMES
    assert files["http"] == files["file"] and files["mqtt"] == files["file"]


def test_a_points_command_over_mqtt_that_the_loop_refuses_later_is_an_error_record(leave_clip, demo_models, broker,
                                                                                  tmp_path):
    """Without --serve: a click accepted on the oldest frame held, whose frame falls out of the history before the
    loop applies it (the next frame arrives), is refused by the loop: one warning and an error record on PREFIX/error;
    the run goes on and ends normally, its only prompt the box."""
    folder, frames, truth = leave_clip
    history = load_config(None, load_manifest(demo_models).model_size).prompt_history
    late = history + 4  # the frame the run waits for; frames late-history .. late-1 are held meanwhile
    oldest = late - history
    pipes = HeldFrames(copy_frames(folder, tmp_path / "frames", late + 2), [late])
    out, log = tmp_path / "out", tmp_path / "run.log"
    published = start_run(["--video", str(pipes.paths[late].parent), "--model-dir", str(demo_models), "--backend",
                           "onnx", "--output", str(out), "--no-display", "--no-overlap", "--publish",
                           f"mqtt://127.0.0.1:{broker}/{PREFIX}"], log)
    subscriber = MqttSubscriber(broker, f"{PREFIX}/#")
    x, y, w, h = (int(v) for v in truth[oldest])
    try:
        wait_for(lambda: "waiting for a box on frame 0" in log.read_text() and subscriber.on(f"{PREFIX}/status"),
                 RUN_TIMEOUT_S, "the run waiting on frame 0, online", published, log)
        pipes.hold()
        subscriber.publish(f"{PREFIX}/cmd", json.dumps({"frame": 0, "id": 1, "box": [int(v) for v in truth[0]]}))
        wait_for(lambda: any(r["frame"] == late - 1 for r in subscriber.on(f"{PREFIX}/1/track")), RUN_TIMEOUT_S,
                 f"frame {late - 1}", published, log)
        subscriber.publish(f"{PREFIX}/cmd", json.dumps({"frame": oldest, "id": 1, "points": [[x + w // 2, y + h // 2]],
                                                        "labels": [1]}))
        wait_for(lambda: "points for object 1 on" in log.read_text(), RUN_TIMEOUT_S, "the click taken", published, log)
        pipes.give(late)
        assert published.wait(RUN_TIMEOUT_S) == EXIT_OK, log.read_text()[-3000:]
    finally:
        stop_process(published)
        subscriber.close()
    (error,) = subscriber.on(f"{PREFIX}/error")
    assert f"frame {oldest} is no longer held: prompts can go back {history}" in _one_line(error["error"])
    text = log.read_text()
    warnings = [line for line in text.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and f"frame {oldest} is no longer held" in warnings[0], warnings
    assert "Traceback" not in text
    assert [(r["frame"], r["kind"]) for r in subscriber.on(f"{PREFIX}/1/prompt")] == [(0, "box")]
    assert len(_lines(out / "track.txt")) == late + 2


def _start_folder(folder: Path, first: int, into: Path) -> Path:
    """The clip's frames from `first` on, as a folder of their own (the reference run's source)."""
    into.mkdir()
    for path in sorted(folder.iterdir())[first:]:
        shutil.copy(path, into / path.name)
    return into


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def test_a_prompt_file_starts_and_removes_objects_on_their_frames(leave_clip, demo_models, tmp_path):
    """A new object on frame 3 tracks as a run started there; one added on 5 and removed on 7 ends after 7. Its
    masks are in masks_2/ (the run began with one object, so masks/ holds object 1's)."""
    folder, _, truth = leave_clip
    first, second, removed, frames = 3, 5, 7, 10
    box_1, box_2 = [int(v) for v in truth[first]], [150, 30, 40, 40]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps(c) for c in (
        {"frame": removed, "id": 2, "remove": True}, {"frame": second, "id": 2, "box": box_2},
        {"frame": first, "id": 1, "box": box_1})) + "\n")
    out = tmp_path / "out"
    assert run.main(["--video", str(folder), "--model-dir", str(demo_models), "--backend", "onnx", "--output",
                     str(out), "--no-display", "--max-frames", str(frames - first), "--prompts", str(prompts),
                     "--events", str(out.parent / "events.jsonl"), "--save-masks"]) == EXIT_OK
    references = {}
    for obj, (start, box, count) in {1: (first, box_1, frames - first), 2: (second, box_2, removed - second + 1)}.items():
        ref = tmp_path / f"ref_{obj}"
        assert run.main(["--video", str(_start_folder(folder, start, tmp_path / f"frames_{obj}")), "--model-dir",
                         str(demo_models), "--backend", "onnx", "--output", str(ref), "--no-display",
                         "--max-frames", str(count), "--bbox", ",".join(map(str, box)), "--save-masks"]) == EXIT_OK
        references[obj] = _lines(ref / "track.txt")
        masks = out / ("masks" if obj == 1 else f"masks_{obj}")
        assert sorted(p.name for p in masks.iterdir()) == [f"{start + i:05d}.png" for i in range(count)]
        for i in range(count):
            assert (masks / f"{start + i:05d}.png").read_bytes() == (ref / "masks" / f"{i:05d}.png").read_bytes()
    assert _lines(out / "track.txt") == ["0,0,0,0"] * first + references[1]
    assert _lines(out / "track_2.txt") == ["0,0,0,0"] * second + references[2]
    events = [json.loads(line) for line in (out.parent / "events.jsonl").read_text().splitlines()]
    assert [(e["frame"], e["id"], e["kind"]) for e in events if e["type"] == "prompt"] == [
        (first, 1, "box"), (second, 2, "box"), (removed, 2, "remove")]
    assert [(e["frame"], e["id"]) for e in events if e.get("event") == "dropped"] == [(removed + 1, 2)]


def test_a_click_then_its_undo_in_a_prompt_file_is_no_click(leave_clip, demo_models, tmp_path):
    """Through the file door, a click on frame 2 then its undo: both applied, in order, and the run writes what a
    run with the start box alone writes. On the demo model a click changes neither the boxes nor the object scores
    (measured), so that the undo restores the object exactly is checked on random weights, where a click does
    change the track: tests/test_corrections.py `test_undo_takes_a_prompt_back_exactly`."""
    folder, _, truth = leave_clip
    frames, clicked = 5, 2
    box = [int(v) for v in truth[0]]
    x, y, w, h = (int(v) for v in truth[clicked])
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n".join(json.dumps(c) for c in (
        {"frame": 0, "id": 1, "box": box}, {"frame": clicked, "id": 1, "points": [[x + w // 2, y + h // 2]],
                                            "labels": [0]},
        {"frame": clicked, "id": 1, "undo": True})) + "\n")
    outs = {name: tmp_path / name for name in ("undone", "plain")}
    common = ["--model-dir", str(demo_models), "--backend", "onnx", "--no-display", "--max-frames", str(frames)]
    assert run.main(["--video", str(folder), *common, "--output", str(outs["undone"]), "--prompts", str(prompts),
                     "--events", str(tmp_path / "events.jsonl")]) == EXIT_OK
    assert run.main(["--video", str(folder), *common, "--output", str(outs["plain"]),
                     "--bbox", ",".join(map(str, box))]) == EXIT_OK
    assert _lines(outs["undone"] / "track.txt") == _lines(outs["plain"] / "track.txt")
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["frame"], e["kind"]) for e in events if e["type"] == "prompt"] == [
        (0, "box"), (clicked, "points"), (clicked, "undo")]


# -- a prompt on an older live frame ------------------------------------------------------------------------------

def test_a_prompt_on_an_older_live_frame_uses_the_decoded_frame_and_is_refused_past_the_history(
        leave_clip, demo_models, tmp_path):
    folder, frames, truth = leave_clip
    history, older, asked_at, stop_at = 4, 5, 8, 10
    bundle = open_bundle_with(demo_models, lambda path: OnnxRunner(path, threads=TEST_THREADS))
    config = load_config(None, bundle.manifest.model_size)
    config = replace(config, prompt_history=history)
    box = Box(*truth[older])
    refusals: list[str] = []

    def prompt(at: int) -> None:
        gone = at - history - 1
        with pytest.raises(PromptError, match=f"frame {gone} is no longer held: prompts can go back {history}"):
            controller.submit(parse_commands(json.dumps({"frame": gone, "id": 1, "box": list(truth[gone]),
                                                         "reset": True})))
        controller.submit(parse_commands(json.dumps({"frame": older, "id": 1, "box": list(astuple(box)),
                                                     "reset": True})), refusals.append)

    items: list[Tracked] = []
    source = LiveClip(frames[:stop_at], asked_at, prompt)
    controller = TrackController(source.size)
    controller.track(Box(*truth[0]))
    loop = TrackingLoop(source, lambda: MultiObjectTracker(bundle, config), controller, [items.append],
                        pipelined=False)
    stats = loop.run()
    assert not refusals and [(p.frame, p.obj_id, p.kind) for p in stats.prompts] == [(older, 1, "reset")]
    (corrected,) = [item for item in items if item.prompts]
    assert corrected.frame.index == older and not corrected.record
    assert corrected.frame.image is frames[older] or np.array_equal(corrected.frame.image, frames[older])
    # The reference: a file run started on that frame with that box.
    ref = tmp_path / "ref"
    assert run.main(["--video", str(_start_folder(folder, older, tmp_path / "frames")), "--model-dir",
                     str(demo_models), "--backend", "onnx", "--output", str(ref), "--no-display", "--max-frames", "1",
                     "--save-masks", "--bbox", ",".join(map(str, astuple(box)))]) == EXIT_OK
    reference = cv2.imread(str(ref / "masks" / "00000.png"), cv2.IMREAD_GRAYSCALE) > 0
    assert np.array_equal(corrected.results[1].mask, reference)
