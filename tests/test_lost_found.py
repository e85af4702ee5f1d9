"""A target that leaves the view and returns: "lost" and "found" as the official predictors decide them.

Design. The colour checkpoint's object score is negative while no red is in
view, and the leave-and-return demo clip takes the target out of the frame for
LOST_FRAMES after SAMURAI's Kalman filter has become stable. On such frames SAM 2
replaces the masks by "no object" logits, mixes in the no-object pointer and
memory embedding, and SAMURAI's filter goes on with the empty masks' boxes; the
object then returns. The CLI's decision log must record, frame by frame, the
same decisions as the PyTorch SAMURAI reference (chosen mask, Kalman state and
score, stable-frame count, memory frames, object score and so the state), its
track.txt must hold 0,0,0,0 exactly on the lost frames, and its masks must match
the reference's. In sam2 mode the tracker's logits must match the official
sam2 video predictor's on every frame, at the tolerances of test_parity.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from acl_models.bundle import open_bundle_with
from acl_models.onnx_runner import OnnxRunner
from app import run
from app.live.control import TrackController
from app.live.pipeline import TrackingLoop
from app.media.sources import FolderSource
from app.samurai.boxes import Box
from app.samurai.config import TrackerConfig, load_config
from app.samurai.decisions import kalman_box
from app.samurai.multi_tracker import MultiObjectTracker
from app.samurai.results import LOST, TRACKING
from app.samurai.tracker import SamuraiTracker
from tests.demo_model import IMAGE_SIZE as DEMO_IMAGE_SIZE
from tests.demo_model import TEST_THREADS as DEMO_THREADS
from tests.reference_predictor import OFFICIAL_PARAMS

# Measured: the frames on which no red is in view (the target's last 15 px sliver
# still counts as present, see scripts/make_demo_checkpoint.py).
LOST_FRAMES = list(range(18, 26))
# As in test_parity and test_demo.
LOGIT_ATOL = 1e-2
MIN_MASK_IOU = 0.99
KALMAN_ATOL = 1e-9
KF_SCORE_ATOL = 1e-6
# Object-score logits are O(1-10) and at least 1 away from 0 on this clip; ONNX
# Runtime and PyTorch agree to ~1e-5.
SCORE_ATOL = 1e-3


def _prompt(truth: np.ndarray) -> tuple[float, float, float, float]:
    x, y, w, h = truth[0]
    return (x, y, x + w, y + h)


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def test_samurai_decision_log_matches_reference(
    demo_checkpoint, demo_models, leave_clip, official_run, tmp_path, capsys
):
    folder, images, truth = leave_clip
    official = official_run(demo_checkpoint, folder, _prompt(truth), DEMO_IMAGE_SIZE, OFFICIAL_PARAMS["t"])
    out = tmp_path / "out"
    x, y, w, h = truth[0]
    code = run.main(["--video", str(folder), "--bbox", f"{x},{y},{w},{h}", "--model-dir", str(demo_models), "--output", str(out),
                     "--no-display", "--backend", "onnx", "--save-masks", "--log-decisions", str(out / "decisions.jsonl")])
    assert code == 0, capsys.readouterr().err
    log = [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in log] == list(range(len(images)))
    height, width = images[0].shape[:2]
    for record in log:
        i, reference = record["frame"], official.predictor.log[record["frame"]]
        assert record["object_score"] == pytest.approx(official.object_scores[i], abs=SCORE_ATOL), f"frame {i}"
        present = official.object_scores[i] > OFFICIAL_PARAMS["t"].min_obj_score_logits
        assert record["state"] == (TRACKING if present else LOST), f"frame {i}"
        if i == 0:
            assert record["memory_frames"] == [] and record["kalman_box"] is None
            continue
        assert record["mask_index"] - 1 == reference.index, f"frame {i}"
        assert (record["kf_score"] is None) == (reference.kf_score is None), f"frame {i}"
        if reference.kf_score is not None:
            assert record["kf_score"] == pytest.approx(reference.kf_score, abs=KF_SCORE_ATOL), f"frame {i}"
        assert record["stable_frames"] == reference.stable_frames, f"frame {i}"
        expected_box = kalman_box(reference.kf_mean, width, height, DEMO_IMAGE_SIZE)
        np.testing.assert_allclose(record["kalman_box"], expected_box, rtol=0, atol=KALMAN_ATOL, err_msg=f"frame {i}")
        assert record["memory_frames"] == reference.memory_frames, f"frame {i}"
    lost = [r["frame"] for r in log if r["state"] == LOST]
    assert lost == LOST_FRAMES
    # Lost and found again, with SAMURAI's stable Kalman filter in play before the target left.
    assert log[LOST_FRAMES[0] - 1]["kf_score"] is not None and log[-1]["state"] == TRACKING
    lines = (out / "track.txt").read_text().splitlines()
    assert [i for i, line in enumerate(lines) if line == "0,0,0,0"] == LOST_FRAMES
    for i, path in enumerate(sorted((out / "masks").glob("*.png"))):
        ours = np.asarray(Image.open(path)) > 0
        assert _mask_iou(ours, official.masks[i]) >= MIN_MASK_IOU, f"frame {i}"
        assert ours.any() == (i not in LOST_FRAMES), f"frame {i}"


def test_sam2_mode_lost_and_found_matches_official(demo_checkpoint, demo_models, leave_clip, official_run):
    folder, images, truth = leave_clip
    official = official_run(demo_checkpoint, folder, _prompt(truth), DEMO_IMAGE_SIZE)
    bundle = open_bundle_with(demo_models, lambda path: OnnxRunner(path, threads=DEMO_THREADS))
    tracker = SamuraiTracker(bundle, TrackerConfig(mode="sam2"), num_frames=len(images))
    results = [tracker.step(i, image, _prompt(truth) if i == 0 else None) for i, image in enumerate(images)]
    for r in results:
        i = r.frame_idx
        assert np.abs(r.low_res_logits - official.logits[i]).max() <= LOGIT_ATOL, f"frame {i}"
        assert r.object_score == pytest.approx(official.object_scores[i], abs=SCORE_ATOL), f"frame {i}"
        assert _mask_iou(r.mask, official.masks[i]) >= MIN_MASK_IOU, f"frame {i}"
    assert [r.frame_idx for r in results if r.state == LOST] == LOST_FRAMES
    assert all(not r.mask.any() for r in results if r.state == LOST)


def test_the_status_names_a_lost_objects_box_as_track_txt_does(demo_models, leave_clip):
    """The page's status (GET /api/status) gives a lost object's box as 0,0,0,0 and a seen one's as its mask's."""
    folder, _, truth = leave_clip
    statuses: list[dict] = []
    with open_bundle_with(demo_models, lambda path: OnnxRunner(path, threads=DEMO_THREADS)) as bundle, \
            FolderSource(folder) as source:
        config = load_config(None, bundle.manifest.model_size)
        controller = TrackController(source.size)
        controller.track(Box(*truth[0]))
        loop = TrackingLoop(source, lambda: MultiObjectTracker(bundle, config),
                            controller, [], on_frame=lambda _stats: statuses.append(controller.status()))
        loop.run()
    assert [s["frame"] for s in statuses if s["state"] == LOST] == LOST_FRAMES
    assert all(s["box"] == [0, 0, 0, 0] for s in statuses if s["state"] == LOST)
    seen = [s["box"] for s in statuses if s["state"] == TRACKING]
    assert seen and all(len(box) == 4 and box[2] > 0 and box[3] > 0 for box in seen)
