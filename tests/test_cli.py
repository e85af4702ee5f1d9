"""`python app/run.py` on each input kind and on every bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from acl_models.bundle import open_bundle_with
from acl_models.onnx_runner import OnnxRunner
from app import run
from app.media.live_sources import CameraSource
from app.samurai.config import load_config
from app.samurai.tracker import SamuraiTracker
from tests.ascend_helpers import linked_copy
from tests.synthetic import make_frames, read_jpeg_folder, write_jpeg_folder

NUM_FRAMES = 6
VARIANT_FRAMES = 3
# Mask IoU of a reduced-precision run with the fp32 run of the same export, frame by frame (measured: fp16 0.9999,
# int8 0.9993 at worst on the random-weight clip).
VARIANT_MIN_MASK_IOU = {"fp16": 0.99, "int8": 0.98}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, boxes = make_frames(NUM_FRAMES)
    root = tmp_path_factory.mktemp("cli")
    folder = write_jpeg_folder(root / "frames", frames)
    video = root / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    x, y, w, h = boxes[0]
    return {"folder": folder, "video": video, "bbox": f"{x},{y},{w},{h}", "frames": frames}


@pytest.fixture(scope="module")
def models(export_256_variants) -> Path:
    """The session's 256 px random-weight export: no test here depends on the image size."""
    return export_256_variants


def _run(capsys, *args):
    code = run.main(list(args))
    return code, capsys.readouterr().err


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _track_lines(out):
    return (out / "track.txt").read_text().splitlines()


@pytest.mark.parametrize("kind", ["folder", "video"])
def test_file_inputs(clip, models, tmp_path, capsys, kind):
    out = tmp_path / "out"
    code, err = _run(
        capsys, "--video", str(clip[kind]), "--bbox", clip["bbox"], "--model-dir", str(models),
        "--output", str(out), "--no-display", "--save-masks", "--save-video", "--backend", "onnx",
    )
    assert code == 0, err
    lines = _track_lines(out)
    assert len(lines) == NUM_FRAMES and all(len(line.split(",")) == 4 for line in lines)
    assert len(list((out / "masks").glob("*.png"))) == NUM_FRAMES
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == NUM_FRAMES and summary["backend"] == "onnx" and "image_encoder" in summary["stage_ms_mean"]
    assert cv2.VideoCapture(str(out / "track.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == NUM_FRAMES
    # A file reports the tracker's step time (its capture → result time is queueing), and a box given on the
    # command line is never waited for.
    assert summary["per_frame"] == "step" and summary["latency_ms"] is None and summary["step_ms"]["p50"] > 0
    assert " step p50 " in err and "latency" not in err and "waiting for a box" not in err


class FakeCapture:
    def __init__(self, frames):
        self.frames = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]

    def isOpened(self):
        return True

    def read(self):
        return (True, self.frames.pop(0)) if self.frames else (False, None)

    def release(self):
        self.frames = []

    def get(self, prop):
        return 0.0


class EndlessCapture(FakeCapture):
    """A camera that goes on delivering the clip, one frame per period, for up to `limit_s`."""

    PERIOD_S = 0.01

    def __init__(self, frames, limit_s: float = 120.0):
        super().__init__(frames)
        self.reads, self.limit = 0, int(limit_s / self.PERIOD_S)

    def read(self):
        if self.reads >= self.limit:
            return False, None
        time.sleep(self.PERIOD_S)
        self.reads += 1
        return True, self.frames[self.reads % len(self.frames)]


def test_fake_camera(clip, models, tmp_path, capsys, monkeypatch):
    """A camera never ends by itself: --max-frames 3 stops the run after exactly 3 tracked frames.

    track.txt keeps one line per camera frame index (0,0,0,0 for frames dropped or before the start), so it
    ends at the last tracked frame; at most 3 lines hold a box."""
    camera = EndlessCapture(clip["frames"])
    monkeypatch.setattr(run, "open_source", lambda spec, live: CameraSource(0, capture_factory=lambda _: camera))
    out = tmp_path / "cam"
    code, err = _run(capsys, "--video", "cam0", "--bbox", clip["bbox"], "--model-dir", str(models),
                     "--output", str(out), "--no-display", "--max-frames", "3")
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["frames"] == 3
    assert camera.reads < camera.limit, "the run stopped at --max-frames, not at the camera's end"
    lines = _track_lines(out)
    assert len(lines) >= 3 and sum(line != "0,0,0,0" for line in lines) <= 3


def test_camera_without_box_and_display(models, tmp_path, capsys, monkeypatch, clip):
    monkeypatch.setattr(run, "open_source", lambda spec, live: CameraSource(0, capture_factory=lambda _: FakeCapture(clip["frames"])))
    monkeypatch.delenv("DISPLAY", raising=False)
    code, err = _run(capsys, "--video", "cam0", "--model-dir", str(models), "--output", str(tmp_path / "o"))
    assert code == run.EXIT_BAD_INPUT and "--bbox" in err and "Traceback" not in err


@pytest.fixture
def broken_models(models, tmp_path):
    return linked_copy(models, tmp_path / "models")


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_dir", "manifest.json not found"),
        ("missing_file", "memory_encoder.onnx is missing"),
        ("mismatch", "do not match manifest.json"),
        ("old_export", "has format 1, this tracker reads format 4"),
        ("zero_box", "zero"),
        ("bad_box", "bbox"),
        ("outside_box", "outside"),
        ("no_video", "does not exist"),
        ("empty_folder", "no"),
        ("camera", "camera"),
    ],
)
def test_bad_inputs(case, message, clip, broken_models, tmp_path, capsys):
    video, bbox, models = str(clip["folder"]), clip["bbox"], broken_models
    if case == "missing_dir":
        models = tmp_path / "nothing"
    elif case == "missing_file":
        (models / "memory_encoder.onnx").unlink()
    elif case == "mismatch":
        manifest = json.loads((models / "manifest.json").read_text())
        manifest["models"]["mask_decoder"]["inputs"][0]["name"] = "renamed"
        (models / "manifest.json").write_text(json.dumps(manifest))
    elif case == "old_export":  # memory attention with dynamic memory sizes, before validity inputs
        manifest = json.loads((models / "manifest.json").read_text())
        (models / "manifest.json").write_text(json.dumps({**manifest, "format": 1}))
    elif case == "zero_box":
        bbox = "10,10,0,20"
    elif case == "bad_box":
        bbox = "ten,10,20,20"
    elif case == "outside_box":
        bbox = "5000,5000,20,20"
    elif case == "no_video":
        video = str(tmp_path / "missing.mp4")
    elif case == "empty_folder":
        (tmp_path / "empty").mkdir()
        video = str(tmp_path / "empty")
    elif case == "camera":
        video = "cam9"
    code, err = _run(capsys, "--video", video, "--bbox", bbox, "--model-dir", str(models),
                     "--output", str(tmp_path / "out"), "--no-display", "--backend", "onnx")
    errors = [line for line in err.splitlines() if line.startswith("ERROR")]
    assert code == run.EXIT_BAD_INPUT, err
    assert "Traceback" not in err and len(errors) == 1, err
    assert message in errors[0].lower(), errors[0]


def test_ctrl_c_keeps_complete_outputs(clip, models, tmp_path, capsys, monkeypatch):
    from app.samurai.multi_tracker import MultiObjectTracker

    track = MultiObjectTracker.track

    def interrupted(self, frame):
        if frame.frame_idx == 3:  # the next frame's encoder is already submitted (overlapped frames)
            raise KeyboardInterrupt
        return track(self, frame)

    monkeypatch.setattr(MultiObjectTracker, "track", interrupted)
    out = tmp_path / "ctrl_c"
    code, err = _run(capsys, "--video", str(clip["folder"]), "--bbox", clip["bbox"], "--model-dir", str(models),
                     "--output", str(out), "--no-display", "--save-video", "--backend", "onnx")
    assert code == run.EXIT_INTERRUPTED and "interrupted after 3 frames" in err and "Traceback" not in err
    assert len(_track_lines(out)) == 3
    assert json.loads((out / "summary.json").read_text())["frames"] == 3
    assert cv2.VideoCapture(str(out / "track.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 3


def test_onnx_variant(clip, export_256_variants, export_512, tmp_path, capsys):
    """fp16 and int8 graphs run through the tracker: same decisions as fp32, masks changed only at their edges."""
    masks = {}
    for variant in ("fp32", "fp16", "int8"):
        out = tmp_path / variant
        code, err = _run(capsys, "--video", str(clip["folder"]), "--bbox", clip["bbox"], "--model-dir",
                         str(export_256_variants), "--output", str(out), "--no-display", "--backend", "onnx",
                         "--onnx-variant", variant, "--max-frames", str(VARIANT_FRAMES), "--save-masks",
                         "--log-decisions", str(out / "decisions.jsonl"))
        assert code == 0, err
        assert json.loads((out / "summary.json").read_text())["onnx_variant"] == variant
        assert len(_track_lines(out)) == VARIANT_FRAMES
        decisions = [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]
        masks[variant] = ([d["mask_index"] for d in decisions],
                          [np.asarray(Image.open(p)) > 0 for p in sorted((out / "masks").glob("*.png"))])
    for variant in ("fp16", "int8"):
        assert masks[variant][0] == masks["fp32"][0], variant
        ious = [_mask_iou(a, b) for a, b in zip(masks[variant][1], masks["fp32"][1])]
        assert min(ious) >= VARIANT_MIN_MASK_IOU[variant], (variant, ious)
        # The variant's graphs ran: their rounding moves some mask pixel.
        assert any(not np.array_equal(a, b) for a, b in zip(masks[variant][1], masks["fp32"][1])), variant
    code, err = _run(capsys, "--video", str(clip["folder"]), "--bbox", clip["bbox"], "--model-dir", str(export_512),
                     "--output", str(out), "--no-display", "--backend", "onnx", "--onnx-variant", "fp16")
    assert code == run.EXIT_BAD_INPUT and "no fp16 variant" in err and "--fp16" in err


SECOND_BOX = "200,20,60,50"


def _mask_files(out):
    return sorted((out / "masks").glob("*.png"))


def test_several_objects_equal_single_runs(clip, models, tmp_path, capsys):
    """Each object's track_<id>.txt is the track.txt of a run with its box alone; masks are indexed by object id."""
    common = ["--video", str(clip["folder"]), "--model-dir", str(models), "--no-display", "--save-masks", "--backend", "onnx"]
    singles = {}
    for obj_id, bbox in ((1, clip["bbox"]), (2, SECOND_BOX)):
        out = tmp_path / f"alone{obj_id}"
        code, err = _run(capsys, *common, "--bbox", bbox, "--output", str(out))
        assert code == 0, err
        singles[obj_id] = out
    boxes_file = tmp_path / "boxes.txt"
    boxes_file.write_text(f"{clip['bbox']}\n\n{SECOND_BOX}\n")
    for how in (["--bbox", clip["bbox"], "--bbox", SECOND_BOX], ["--boxes-file", str(boxes_file)]):
        out = tmp_path / how[0].strip("-")
        code, err = _run(capsys, *common, *how, "--output", str(out), "--save-video", "--log-decisions", str(out / "log.jsonl"))
        assert code == 0, err
        assert not (out / "track.txt").exists()
        for obj_id, alone in singles.items():
            assert (out / f"track_{obj_id}.txt").read_text() == (alone / "track.txt").read_text()
        assert len(_mask_files(out)) == NUM_FRAMES
        for labelled, first, second in zip(_mask_files(out), _mask_files(singles[1]), _mask_files(singles[2])):
            image = Image.open(labelled)
            assert image.mode == "P" and image.getpalette()[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
            labels = np.asarray(image)
            mask1, mask2 = np.asarray(Image.open(first)) > 0, np.asarray(Image.open(second)) > 0
            assert np.array_equal(labels == 1, mask1)  # the smaller id wins where masks overlap
            assert np.array_equal(labels == 2, mask2 & ~mask1)
            assert set(np.unique(labels)) <= {0, 1, 2}
        summary = json.loads((out / "summary.json").read_text())
        assert set(summary["objects"]) == {"1", "2"}
        assert summary["objects"]["2"]["prompt_box"] == SECOND_BOX and summary["objects"]["2"]["frames"] == NUM_FRAMES
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        assert [(r["frame"], r["object"]) for r in log] == [(i, k) for i in range(NUM_FRAMES) for k in (1, 2)]
        assert cv2.VideoCapture(str(out / "track.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == NUM_FRAMES


def test_one_object_outputs_unchanged(clip, models, tmp_path, capsys):
    """One box: track.txt, 0/255 masks and a summary without a per-object section, as before several objects existed."""
    out = tmp_path / "one"
    code, err = _run(capsys, "--video", str(clip["folder"]), "--bbox", clip["bbox"], "--model-dir", str(models),
                     "--output", str(out), "--no-display", "--save-masks", "--backend", "onnx")
    assert code == 0, err
    bundle = open_bundle_with(models, OnnxRunner)
    tracker = SamuraiTracker(bundle, load_config(None, bundle.manifest.model_size), num_frames=NUM_FRAMES)
    x, y, w, h = (float(v) for v in clip["bbox"].split(","))
    images = read_jpeg_folder(clip["folder"])
    results = [tracker.step(i, image, (x, y, x + w, y + h) if i == 0 else None) for i, image in enumerate(images)]
    assert _track_lines(out) == [",".join(str(v) for v in r.box or (0, 0, 0, 0)) for r in results]
    for path, result in zip(_mask_files(out), results):
        assert np.array_equal(np.asarray(Image.open(path)), result.mask.astype(np.uint8) * 255)
    assert "objects" not in json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize(
    "lines, message",
    [
        (["10,10,40,40", "10,10,40"], "line 2: box '10,10,40' has 3 values"),
        (["10,10,40,40", "", "a,10,40,40"], "line 3: box 'a,10,40,40' has a value that is not a number"),
        (["10,10,40,40", "5000,5000,20,20"], "line 2: box 5000,5000,20,20 lies outside"),
        (["", " "], "has no box"),
    ],
)
def test_bad_boxes_file(lines, message, clip, models, tmp_path, capsys):
    boxes_file = tmp_path / "boxes.txt"
    boxes_file.write_text("\n".join(lines) + "\n")
    code, err = _run(capsys, "--video", str(clip["folder"]), "--boxes-file", str(boxes_file), "--model-dir", str(models),
                     "--output", str(tmp_path / "out"), "--no-display", "--backend", "onnx")
    errors = [line for line in err.splitlines() if line.startswith("ERROR")]
    assert code == run.EXIT_BAD_INPUT and "Traceback" not in err and len(errors) == 1, err
    assert message in errors[0], errors[0]


def test_bad_second_bbox_and_mixed_options(clip, models, tmp_path, capsys):
    base = ["--video", str(clip["folder"]), "--model-dir", str(models), "--output", str(tmp_path / "o"), "--no-display"]
    code, err = _run(capsys, *base, "--bbox", clip["bbox"], "--bbox", "10,10,0,5")
    assert code == run.EXIT_BAD_INPUT and "--bbox #2" in err and "zero width" in err and "Traceback" not in err
    code, err = _run(capsys, *base, "--bbox", clip["bbox"], "--boxes-file", str(tmp_path / "x.txt"))
    assert code == run.EXIT_BAD_INPUT and "one way" in err
