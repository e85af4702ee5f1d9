"""The synthetic colour checkpoint on the demo clip: the tracker follows the target and SAMURAI's choices show.

Design. Random weights test the numerics of the port but not its SAMURAI
decisions: SAM 2 and SAMURAI pick the same scattered masks (SAMURAI.md, 7).
The hand-set colour checkpoint (`convert/demo_checkpoint.py`) segments the
red target (token 1), the green distractor (token 2) or both (token 3) and
predicts IoUs from the colours' areas, and the demo clip grows the distractor
past the target after SAMURAI's 15 warm-up frames. So plain SAM 2 selection
must jump to the distractor exactly when its predicted IoU overtakes, while
SAMURAI's Kalman score keeps the target; the PyTorch SAMURAI reference must
make the same choices frame by frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from acl_models.bundle import open_bundle_with
from acl_models.manifest import load_manifest
from acl_models.onnx_runner import OnnxRunner
from app.benchmarks.metrics import box_iou
from app.media.colour_clip import make_frames
from app.media.textured_clip import write_clip
from app.samurai.config import load_config
from app.samurai.results import FrameResult
from app.samurai.tracker import SamuraiTracker
from convert.demo_checkpoint import TOKEN_GREEN, TOKEN_RED, TOKEN_SINGLE
from tests.backends import REDUCED_PRECISIONS, assert_same_decisions, reduced, track_clip
from tests.demo_model import IMAGE_SIZE, TEST_THREADS
from tests.reference_predictor import OFFICIAL_PARAMS
from tests.synthetic import read_jpeg_folder

NUM_FRAMES = 40
# Measured: the first frame whose green mask has the higher predicted IoU (the
# distractor's side, 41 px, first exceeds the target's 40 px). From there to the
# end SAM 2 follows the distractor and SAMURAI keeps the target.
TAKEOVER_FRAME = 23
DIVERGENT_FRAMES = list(range(TAKEOVER_FRAME, NUM_FRAMES))
# Box IoU of the mask's box with the true box. A perfect mask scores
# (39/40)^2 = 0.95 (the box convention has no +1), the frames where the grey
# bar hides an edge of the target ~0.7; measured means are 0.93 (frames before
# the takeover, both modes) and 0.94 (samurai, whole clip). A frame on the
# distractor scores 0, so 0.85 fails once the tracker loses the target on ~2 of
# the 23 frames before the takeover (~4 of the clip), and leaves room for JPEG
# and resize differences.
MIN_MEAN_IOU = 0.85
# Masks from ONNX Runtime and PyTorch differ only where a logit is ~0 (as in test_parity).
MIN_MASK_IOU = 0.99
# float64 Kalman arithmetic on boxes of integer pixels: identical unless a box differs.
KALMAN_ATOL = 1e-9
# The filter's IoU is rounded to float32 on both sides.
KF_SCORE_ATOL = 1e-6


@dataclass
class TrackedFrame:
    result: FrameResult
    iou_pred: np.ndarray  # (4,) predicted IoUs of all decoder tokens
    stable_frames: int
    kf_mean: np.ndarray | None
    memory_frames: list[int]  # frames whose memory this frame attended to (empty on the prompt frame)


class RecordingRunner(OnnxRunner):
    """ONNX Runtime runner that keeps every predicted-IoU vector the decoder returns."""

    def __init__(self, path: Path):
        super().__init__(path, threads=TEST_THREADS)
        self.iou_preds: list[np.ndarray] = []

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = super().run(inputs)
        if "iou_pred" in outputs:
            self.iou_preds.append(outputs["iou_pred"][0].copy())
        return outputs


@pytest.fixture(scope="session")
def demo_clip(tmp_path_factory) -> tuple[Path, list[np.ndarray], np.ndarray]:
    frames, boxes = make_frames(NUM_FRAMES)
    folder = tmp_path_factory.mktemp("demo_clip") / "colour_clip"
    write_clip(folder, frames, boxes)
    return folder, read_jpeg_folder(folder), np.asarray(boxes, dtype=np.float64)


def _prompt(boxes: np.ndarray) -> tuple[float, float, float, float]:
    x, y, w, h = boxes[0]
    return (x, y, x + w, y + h)


def _track(models: Path, images: list[np.ndarray], box, mode: str) -> list[TrackedFrame]:
    bundle = open_bundle_with(models, RecordingRunner)
    runners = bundle.runners
    config = load_config(None, bundle.manifest.model_size, mode)
    tracker = SamuraiTracker(bundle, config, num_frames=len(images))
    frames = []
    with bundle:
        for i, image in enumerate(images):
            memory = [e.frame_idx for _, e in tracker.state.memory.memory_frames(i)] if i else []
            result = tracker.step(i, image, box if i == 0 else None)
            motion = tracker.state.motion
            mean = None if motion.mean is None else motion.mean.copy()
            iou_pred = runners["mask_decoder"].iou_preds[-1]
            frames.append(TrackedFrame(result, iou_pred, motion.stable_frames, mean, memory))
    return frames


@pytest.fixture(scope="session")
def tracks(demo_models, demo_clip) -> dict[str, list[TrackedFrame]]:
    _, images, boxes = demo_clip
    return {mode: _track(demo_models, images, _prompt(boxes), mode) for mode in ("sam2", "samurai")}


def _predicted_boxes(frames: list[TrackedFrame]) -> np.ndarray:
    return np.array([f.result.box or (0, 0, 0, 0) for f in frames], dtype=np.float64)


def _box_ious(frames: list[TrackedFrame], boxes: np.ndarray) -> np.ndarray:
    return box_iou(_predicted_boxes(frames), boxes[: len(frames)])


@pytest.mark.parametrize("mode", ["sam2", "samurai"])
def test_follows_target_before_takeover(tracks, demo_clip, mode):
    frames = tracks[mode][:TAKEOVER_FRAME]
    assert frames[0].result.mask_index == TOKEN_SINGLE, "the prompt frame's single mask must be stable"
    assert all(f.result.mask_index == TOKEN_RED for f in frames[1:])
    assert _box_ious(frames, demo_clip[2]).mean() >= MIN_MEAN_IOU


def test_samurai_follows_target_through_clip(tracks, demo_clip):
    assert len(tracks["samurai"]) == NUM_FRAMES
    assert _box_ious(tracks["samurai"], demo_clip[2]).mean() >= MIN_MEAN_IOU


def test_modes_diverge_where_distractor_overtakes(tracks, demo_clip):
    sam2, samurai = tracks["sam2"], tracks["samurai"]
    overtaken = [i for i, f in enumerate(sam2) if i and f.iou_pred[TOKEN_GREEN] > f.iou_pred[TOKEN_RED]]
    assert overtaken == DIVERGENT_FRAMES
    divergent = [i for i, (a, b) in enumerate(zip(sam2, samurai)) if a.result.mask_index != b.result.mask_index]
    assert divergent == DIVERGENT_FRAMES
    for i in DIVERGENT_FRAMES:
        assert sam2[i].result.mask_index == TOKEN_GREEN, f"frame {i}"
        assert samurai[i].result.mask_index == TOKEN_RED, f"frame {i}"
        # SAMURAI holds the target with its Kalman filter voting, not by a lost track restarting.
        assert samurai[i].result.kf_score is not None and samurai[i].stable_frames > 0, f"frame {i}"
    # The distractor's box never touches the target's (8 px gap): SAM 2 scores 0 there.
    assert not _box_ious(sam2, demo_clip[2])[DIVERGENT_FRAMES].any()


@pytest.mark.parametrize("precision", REDUCED_PRECISIONS)
@pytest.mark.parametrize("mode", ["sam2", "samurai"])
def test_reduced_precision_keeps_every_decision(demo_models, demo_clip, tracks, mode, precision):
    """A precision docs/usage.md recommends chooses the same mask as fp32 on every frame, distractor included."""
    _, images, boxes = demo_clip
    config = load_config(None, load_manifest(demo_models).model_size, mode)
    ours = track_clip(demo_models, images, _prompt(boxes), config, reduced(precision, TEST_THREADS))
    assert_same_decisions(ours, [f.result for f in tracks[mode]])


def test_samurai_matches_pytorch_reference(demo_checkpoint, demo_clip, tracks, official_run):
    folder, _, boxes = demo_clip
    official = official_run(demo_checkpoint, folder, _prompt(boxes), IMAGE_SIZE, OFFICIAL_PARAMS["t"])
    predictor, masks = official.predictor, official.masks
    ours = tracks["samurai"]
    for i, frame in enumerate(ours[1:], 1):
        log = predictor.log[i]
        assert frame.result.mask_index - 1 == log.index, f"frame {i}"
        assert (frame.result.kf_score is None) == (log.kf_score is None), f"frame {i}"
        if log.kf_score is not None:
            assert frame.result.kf_score == pytest.approx(log.kf_score, abs=KF_SCORE_ATOL), f"frame {i}"
        assert frame.stable_frames == log.stable_frames, f"frame {i}"
        np.testing.assert_allclose(frame.kf_mean, log.kf_mean, rtol=0, atol=KALMAN_ATOL, err_msg=f"frame {i}")
        assert frame.memory_frames == log.memory_frames, f"frame {i}"
    for frame in ours:
        mask, reference = frame.result.mask, masks[frame.result.frame_idx]
        union = np.logical_or(mask, reference).sum()
        assert np.logical_and(mask, reference).sum() / union >= MIN_MASK_IOU, f"frame {frame.result.frame_idx}"


def test_acl_backend_gives_the_same_track(acl, demo_om, demo_clip, tmp_path, capsys):
    """The CLI on the emulated NPU (.om from the stand-in ATC) writes the same track.txt as ONNX Runtime."""
    from app import run

    folder, _, boxes = demo_clip
    models = demo_om
    x, y, w, h = boxes[0]
    tracks = {}
    for backend in ("acl", "onnx"):
        out = tmp_path / backend
        code = run.main(["--video", str(folder), "--bbox", f"{x},{y},{w},{h}", "--model-dir", str(models),
                         "--output", str(out), "--no-display", "--backend", backend])
        assert code == 0, capsys.readouterr().err
        tracks[backend] = (out / "track.txt").read_text()
    assert tracks["acl"] == tracks["onnx"] and len(tracks["acl"].splitlines()) == NUM_FRAMES
