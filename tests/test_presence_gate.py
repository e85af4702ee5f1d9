"""The object-presence gate: SAMURAI counts an object present above score logit -1, SAM 2 above 0.

Design. The demo colour checkpoint's object scores stay at least 1 away from 0,
so no other test meets a score between the two gates. Here its score head is
replaced by a constant: the last layer's weights are zeroed and its bias set to
GATED_SCORE, halfway between the gates, on every frame. The official SAMURAI
code then keeps every mask and the decoder's object pointer, while the official
SAM 2 predictor replaces every mask by its "no object" logit. The tracker must
follow each predictor in its own mode: masks, logits and decisions against the
PyTorch references (SAMURAI's transcription, the official sam2 predictor), and
the state the service reports (tracking in samurai mode, lost in sam2 mode).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acl_models.bundle import open_bundle_with
from acl_models.onnx_runner import OnnxRunner
from app.samurai.config import TrackerConfig
from app.samurai.results import LOST, TRACKING
from app.samurai.tracker import SamuraiTracker
from tests.demo_model import IMAGE_SIZE, TEST_THREADS, torch_threads
from tests.reference_predictor import OFFICIAL_PARAMS
from tests.synthetic import read_jpeg_folder, write_jpeg_folder

GATED_SCORE = -0.5  # between SAMURAI's gate (-1) and SAM 2's (0)
SCORE_HEAD = "sam_mask_decoder.pred_obj_score_head.layers.2"
NUM_FRAMES = 8
# As in test_parity: ONNX Runtime and PyTorch agree to ~1e-5 per graph.
LOGIT_ATOL = 1e-2
MIN_MASK_IOU = 0.99


@pytest.fixture(scope="module")
def gated(tmp_path_factory):
    """(checkpoint, exported models) of the demo checkpoint with a constant GATED_SCORE object score."""
    from convert.demo_checkpoint import demo_state_dict
    from convert.export_onnx import export

    state = demo_state_dict()
    state[SCORE_HEAD + ".weight"].zero_()
    state[SCORE_HEAD + ".bias"].fill_(GATED_SCORE)
    folder = tmp_path_factory.mktemp("gated")
    checkpoint = folder / "gated_sam2.1_hiera_tiny.pt"
    torch.save({"model": state}, checkpoint)
    with torch_threads(TEST_THREADS):
        export(checkpoint, folder / "models", image_size=IMAGE_SIZE)
    return checkpoint, folder / "models"


@pytest.fixture(scope="module")
def short_clip(leave_clip, tmp_path_factory):
    """The leave clip's first frames, saved again so that both sides read the same JPEG pixels."""
    _, images, truth = leave_clip
    short = write_jpeg_folder(tmp_path_factory.mktemp("short") / "clip", images[:NUM_FRAMES])
    x, y, w, h = truth[0]
    return short, read_jpeg_folder(short), (x, y, x + w, y + h)


def _track(models, images, box, mode: str):
    bundle = open_bundle_with(models, lambda path: OnnxRunner(path, threads=TEST_THREADS))
    tracker = SamuraiTracker(bundle, TrackerConfig(mode=mode), len(images))
    return [tracker.step(i, image, box if i == 0 else None) for i, image in enumerate(images)]


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else np.logical_and(a, b).sum() / union


def test_samurai_keeps_an_object_scored_between_the_gates(gated, short_clip, official_run):
    checkpoint, models = gated
    folder, images, box = short_clip
    official = official_run(checkpoint, folder, box, IMAGE_SIZE, OFFICIAL_PARAMS["t"])
    results = _track(models, images, box, "samurai")
    for r in results:
        i = r.frame_idx
        assert r.object_score == pytest.approx(GATED_SCORE, abs=1e-6)
        assert official.object_scores[i] == pytest.approx(GATED_SCORE, abs=1e-6)
        assert r.state == TRACKING, f"frame {i}"
        assert np.abs(r.low_res_logits - official.logits[i]).max() <= LOGIT_ATOL, f"frame {i}"
        assert _mask_iou(r.mask, official.masks[i]) >= MIN_MASK_IOU, f"frame {i}"
        if i:
            assert r.mask_index - 1 == official.predictor.log[i].index, f"frame {i}"
    # The gate must have mattered: the kept masks are not SAM 2's empty ones.
    assert all(r.mask.any() for r in results)


def test_sam2_drops_an_object_scored_between_the_gates(gated, short_clip, official_run):
    checkpoint, models = gated
    folder, images, box = short_clip
    official = official_run(checkpoint, folder, box, IMAGE_SIZE)
    results = _track(models, images, box, "sam2")
    for r in results:
        i = r.frame_idx
        assert r.state == LOST, f"frame {i}"
        assert not r.mask.any() and not official.masks[i].any(), f"frame {i}"
        assert np.abs(r.low_res_logits - official.logits[i]).max() <= LOGIT_ATOL, f"frame {i}"
