"""Prompts on live sources and on overlapped runs, against file runs given the same prompts through `--prompts`.

Random weights (the textured clip, `export_128`): a click moves the mask a lot there, so a prompt applied on
another frame, to another picture or not at all writes other masks.

A click on an older live frame K, once frame A > K was tracked, refines the object from its state on K and the
object goes on from K's corrected state: frames K+1..A are not tracked again. Its reference is a file run of the
same clip whose frames K+1..A cannot be decoded (a folder skips them, keeping every other frame's index), with the
same command in its prompt file for frame K: the object there sees exactly the frames the live object's track is
made of.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import astuple
from pathlib import Path

import cv2
import numpy as np
import pytest

from acl_models.bundle import ModelBundle, open_bundle_with
from acl_models.onnx_runner import OnnxRunner
from app import run
from app.live.commands import parse_commands
from app.live.control import TrackController
from app.live.pipeline import TrackingLoop
from app.live.stats import LoopStats
from app.live.tracked import Tracked
from app.media.sources import FolderSource
from app.samurai.boxes import Box
from app.samurai.config import load_config
from app.samurai.multi_tracker import MultiObjectTracker
from app.samurai.results import FrameResult
from tests.demo_model import TEST_THREADS
from tests.live_helpers import LiveClip, start_run, stop_process
from tests.synthetic import make_frames, read_jpeg_folder, write_jpeg_folder

EXIT_OK = 0
# A live source's length is unknown, so its objects keep the export's most pointers (max_obj_ptrs_in_encoder: 16);
# a file caps them by its length, as the official predictor does: a file that is the live run's reference has as many.
NUM_FRAMES = 16
# The live click: on frame CLICKED, sent once frame ASKED_AT - 1 was published, so applied after ASKED_AT is tracked.
CLICKED, ASKED_AT = 3, 6
NEGATIVE_CLICK = (20, 200)  # background, far from the moving square
SECOND_BOX = (200, 20, 60, 50)  # a background patch: x, y, w, h
NOT_AN_IMAGE = b"not an image"
DECISIONS = "decisions.jsonl"
REMOVED_AT = 3
RUN_TIMEOUT_S = 120.0
# What a decision-log line says of a result that the arithmetic decides (the masks are compared as files).
DECIDED = ("object_score", "ious", "mask_index", "memory_frames")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """(folder, its frames as decoded, the square's true x, y, w, h boxes)."""
    frames, boxes = make_frames(NUM_FRAMES)
    folder = write_jpeg_folder(tmp_path_factory.mktemp("live_prompts") / "frames", frames)
    return folder, read_jpeg_folder(folder), boxes


def _centre(box) -> list[int]:
    x, y, w, h = box
    return [int(x + w / 2), int(y + h / 2)]


def _bbox(box) -> str:
    return ",".join(str(int(v)) for v in box)


def _file_run(models: Path, folder: Path, out: Path, prompts: list[dict], *extra: str) -> Path:
    """`app/run.py` on the folder with these commands as its prompt file; the output folder."""
    out.mkdir(parents=True, exist_ok=True)
    prompt_file = out.parent / f"{out.name}.jsonl"
    prompt_file.write_text("".join(json.dumps(command) + "\n" for command in prompts))
    assert run.main(["--video", str(folder), "--model-dir", str(models), "--backend", "onnx", "--output", str(out),
                     "--no-display", "--save-masks", "--log-decisions", str(out / DECISIONS), "--prompts",
                     str(prompt_file), *extra]) == EXIT_OK
    return out


def _decisions(out: Path) -> dict[int, dict]:
    """The run's decision log by frame (one object), less its run's start time."""
    lines = [json.loads(line) for line in (out / DECISIONS).read_text().splitlines()]
    return {line["frame"]: {k: v for k, v in line.items() if k in DECIDED} for line in lines}


def _decided(result: FrameResult) -> dict:
    """What the decision log says of a result, to the last bit (floats as JSON writes them)."""
    return {"object_score": result.object_score, "ious": [float(v) for v in result.ious],
            "mask_index": result.mask_index, "memory_frames": result.memory_frames}


def _mask(out: Path, index: int) -> np.ndarray:
    return cv2.imread(str(out / "masks" / f"{index:05d}.png"), cv2.IMREAD_GRAYSCALE)


def _bundle(models: Path) -> ModelBundle:
    return open_bundle_with(models, lambda path: OnnxRunner(path, threads=TEST_THREADS))


# -- a click on an older live frame ------------------------------------------------------------------------------

def test_clicks_on_an_older_live_frame_equal_a_file_run_of_the_frames_the_object_went_on_from(
        export_128, clip, tmp_path):
    folder, frames, boxes = clip
    click = {"frame": CLICKED, "id": 1, "points": [_centre(boxes[CLICKED]), list(NEGATIVE_CLICK)], "labels": [1, 0]}
    bundle = _bundle(export_128)
    config = load_config(None, bundle.manifest.model_size)
    assert config.prompt_history > ASKED_AT - CLICKED
    assert NUM_FRAMES >= bundle.manifest.hyper["max_obj_ptrs_in_encoder"]
    refusals: list[str] = []
    items: list[Tracked] = []
    source = LiveClip(frames, ASKED_AT, lambda _at: controller.submit(parse_commands(json.dumps(click)),
                                                                       refusals.append))
    controller = TrackController(source.size)
    controller.track(Box(*boxes[0]))
    stats = TrackingLoop(source, lambda: MultiObjectTracker(bundle, config), controller, [items.append],
                         pipelined=False).run()
    assert not refusals and [(p.frame, p.obj_id, p.kind) for p in stats.prompts] == [(CLICKED, 1, "points")]
    (corrected,) = [item for item in items if item.prompts]
    (uncorrected,) = [item for item in items if item.record and item.frame.index == CLICKED]
    assert corrected.frame.index == CLICKED and not corrected.record
    assert np.array_equal(corrected.frame.image, frames[CLICKED])  # the decoded frame, not a picture of it
    assert not np.array_equal(corrected.results[1].low_res_logits, uncorrected.results[1].low_res_logits)
    ours = {CLICKED: corrected.results[1]}
    after = {item.frame.index: item.results[1] for item in items if item.record and item.frame.index > ASKED_AT}
    assert sorted(after) == list(range(ASKED_AT + 1, NUM_FRAMES))

    # The reference: the object's frames (0..CLICKED, then ASKED_AT + 1..), the click in the prompt file.
    gapped = Path(shutil.copytree(folder, tmp_path / "gapped"))  # the same files: the same decoded frames
    for index in range(CLICKED + 1, ASKED_AT + 1):
        (gapped / f"{index:05d}.jpg").write_bytes(NOT_AN_IMAGE)
    ref = _file_run(export_128, gapped, tmp_path / "ref", [click], "--bbox", _bbox(boxes[0]))
    decided = _decisions(ref)
    assert sorted(decided) == [*range(CLICKED + 1), *after]
    for index, result in {**ours, **after}.items():
        assert np.array_equal(result.mask, _mask(ref, index) > 0), f"frame {index}"
        assert _decided(result) == decided[index], f"frame {index}"


# -- a prompt file that removes every object ----------------------------------------------------------------------

def test_a_file_whose_objects_a_prompt_file_removes_goes_on_to_its_end(export_128, clip, tmp_path):
    """Only a file's first frame waits for a prompt (from the page): once its objects were tracked and all removed,
    there may be nothing left to send one, so the run goes on (here it would wait forever)."""
    folder, _, boxes = clip
    prompt_file = tmp_path / "remove.jsonl"
    prompt_file.write_text(json.dumps({"frame": REMOVED_AT, "id": 1, "remove": True}) + "\n")
    out, log = tmp_path / "out", tmp_path / "run.log"
    process = start_run(["--video", str(folder), "--model-dir", str(export_128), "--backend", "onnx", "--output",
                         str(out), "--no-display", "--bbox", _bbox(boxes[0]), "--prompts", str(prompt_file)], log)
    try:
        code = process.wait(RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        stop_process(process)
    assert code == EXIT_OK, log.read_text()[-3000:]
    assert "waiting for a box" not in log.read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prompts"] == [{"type": "prompt", "frame": REMOVED_AT, "id": 1, "kind": "remove", "remove": True}]
    assert summary["frames"] == REMOVED_AT + 1


# -- prompts with --overlap ---------------------------------------------------------------------------------------

def _disc_png(path: Path, box, size: tuple[int, int]) -> str:
    """A disc inside the box as a mask PNG of the frame's size; its name for the prompt file."""
    width, height = size
    x, y, w, h = box
    ys, xs = np.mgrid[0:height, 0:width]
    disc = (xs - (x + w / 2)) ** 2 + (ys - (y + h / 2)) ** 2 <= (min(w, h) / 2) ** 2
    assert cv2.imwrite(str(path), disc.astype(np.uint8) * 255)
    return path.name


def _prompt_cases(boxes, mask_name: str) -> dict[str, tuple[list[dict], list[str]]]:
    """name → (the prompt file's commands, the command line's boxes): every kind of prompt, and prompts that start
    the only object after frames without any, remove it, and start another (frames tracked, then none, then again)."""
    clicks = {"points": [_centre(boxes[2]), list(NEGATIVE_CLICK)], "labels": [1, 0]}
    return {
        "every kind": ([
            {"frame": 2, "id": 1, **clicks},
            {"frame": 3, "id": 2, "box": list(SECOND_BOX)},
            {"frame": 4, "id": 1, "mask": mask_name},
            {"frame": 5, "id": 2, "points": [_centre(SECOND_BOX)], "labels": [0]},
            {"frame": 5, "id": 2, "undo": True},
            {"frame": 6, "id": 1, "box": [int(v) for v in boxes[6]], "reset": True},
            {"frame": 7, "id": 2, "remove": True},
        ], ["--bbox", _bbox(boxes[0])]),
        "no object between prompts": ([
            {"frame": 2, "id": 1, **clicks},
            {"frame": 4, "id": 1, "remove": True},
            {"frame": 6, "id": 2, "box": list(SECOND_BOX)},
        ], []),
    }


@pytest.mark.parametrize("case", ["every kind", "no object between prompts"])
def test_overlap_writes_what_a_sequential_run_writes_with_a_prompt_file(export_128, clip, tmp_path, case):
    folder, frames, boxes = clip
    size = (frames[0].shape[1], frames[0].shape[0])
    mask_name = _disc_png(tmp_path / "disc.png", boxes[4], size)
    prompts, boxes_given = _prompt_cases(boxes, mask_name)[case]
    outs = {name: _file_run(export_128, folder, tmp_path / name, prompts, *boxes_given, *extra)
            for name, extra in (("sequential", ["--no-overlap"]), ("overlapped", ["--overlap"]))}
    tracks = sorted(path.name for path in outs["sequential"].glob("track*.txt"))
    assert len(tracks) == 2, tracks  # both objects
    for name in tracks:
        assert (outs["overlapped"] / name).read_text() == (outs["sequential"] / name).read_text(), name
    masks = sorted(path.name for path in (outs["sequential"] / "masks").glob("*.png"))
    assert masks and masks == sorted(path.name for path in (outs["overlapped"] / "masks").glob("*.png"))
    for name in masks:
        assert (outs["overlapped"] / "masks" / name).read_bytes() == (outs["sequential"] / "masks" / name).read_bytes()
    decisions = {name: [{k: v for k, v in json.loads(line).items() if k != "run"}
                        for line in (out / DECISIONS).read_text().splitlines()] for name, out in outs.items()}
    assert decisions["overlapped"] == decisions["sequential"]
    summaries = {name: json.loads((out / "summary.json").read_text()) for name, out in outs.items()}
    assert summaries["overlapped"]["overlap"] is True and summaries["sequential"]["overlap"] is False
    assert summaries["overlapped"]["prompts"] == summaries["sequential"]["prompts"]
    assert [(p["frame"], p["id"]) for p in summaries["overlapped"]["prompts"]] == [(c["frame"], c["id"])
                                                                                  for c in prompts]


def _door_run(models: Path, folder: Path, box, overlap: bool, given: dict[int, dict]) -> tuple[list[Tracked],
                                                                                                  LoopStats]:
    """A file run whose prompts come through the controller, as a page's or MQTT's do: `given[n]` is submitted once
    n frames were tracked and published; the items handed to the outputs, and the run's counts."""
    bundle = _bundle(models)
    config = load_config(None, bundle.manifest.model_size)
    source = FolderSource(folder)
    controller = TrackController(source.size)
    controller.track(Box(*box))
    items: list[Tracked] = []

    def on_frame(stats: LoopStats) -> None:
        if stats.frames in given:
            controller.submit(parse_commands(json.dumps(given[stats.frames])))

    loop = TrackingLoop(source, lambda: MultiObjectTracker(bundle, config, num_frames=source.num_frames), controller,
                        [items.append], overlap=overlap, on_frame=on_frame)
    try:
        return items, loop.run()
    finally:
        source.close()


def test_overlap_applies_a_door_prompt_before_the_next_frame_as_a_sequential_run_does(export_128, clip):
    """A command without a frame applies to the newest tracked frame: with --overlap too, the frame after it is
    tracked from the corrected state even though its encoder ran before the command came; an older frame's
    command applies there."""
    folder, _, boxes = clip
    newest, older = 4, 6  # submitted once 4 frames (0..3) and once 6 frames (0..5) were tracked
    given = {newest: {"id": 1, "points": [_centre(boxes[newest]), list(NEGATIVE_CLICK)], "labels": [1, 0]},
             older: {"frame": older - 1, "id": 2, "box": list(SECOND_BOX)}}
    runs = {overlap: _door_run(export_128, folder, boxes[0], overlap, given) for overlap in (False, True)}
    for items, stats in runs.values():
        assert [(p.frame, p.obj_id, p.kind) for p in stats.prompts] == [(newest, 1, "points"), (older - 1, 2, "box")]
    sequential, overlapped = (runs[overlap][0] for overlap in (False, True))
    assert [(item.frame.index, item.record, sorted(item.results)) for item in overlapped] == [
        (item.frame.index, item.record, sorted(item.results)) for item in sequential]
    for ours, reference in zip(overlapped, sequential):
        for obj_id, result in reference.results.items():
            assert np.array_equal(ours.results[obj_id].low_res_logits, result.low_res_logits), (ours.frame.index,
                                                                                                 obj_id)
    # The click moved the object: without it, its frame is another.
    unprompted, _ = _door_run(export_128, folder, boxes[0], False, {})
    (clicked,) = [item.results[1] for item in sequential if item.frame.index == newest]
    assert not np.array_equal(unprompted[newest].results[1].low_res_logits, clicked.low_res_logits)
