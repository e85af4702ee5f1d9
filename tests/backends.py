"""The CPU backends the tests run on: every installed one at full precision, and the recommended reduced ones."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from acl_models.base import ModelRunner
from acl_models.bundle import open_bundle_with
from acl_models.onnx_runner import OnnxRunner
from acl_models.openvino_runner import RECOMMENDED_REDUCED, OpenVinoRunner, openvino_problem, supported_precisions
from app.samurai.config import TrackerConfig
from app.samurai.tracker import FrameResult, SamuraiTracker
from tests.installed import needs

OPENVINO_PROBLEM = openvino_problem()
# Every CPU backend at full precision must pass the same parity tests; OpenVINO's cases skip, naming why, only
# off CI where it does not import (tests/installed.py).
EXACT_BACKENDS: dict[str, Callable[..., ModelRunner]] = {"onnx": OnnxRunner, "openvino": OpenVinoRunner}
EXACT_BACKEND_PARAMS = [pytest.param("onnx"), pytest.param("openvino", marks=needs(OPENVINO_PROBLEM))]


def _precision_marks(precision: str) -> list[pytest.MarkDecorator]:
    """No OpenVINO: as for any part the set-up installs. A CPU that does not report the precision skips it,
    on CI too: the hardware decides, not the set-up."""
    if OPENVINO_PROBLEM:
        return needs(OPENVINO_PROBLEM)
    supported = supported_precisions()
    if precision in supported:
        return []
    reason = f"this CPU does not report {precision} to OpenVINO (it reports {', '.join(supported)})"
    return [pytest.mark.skip(reason=reason)]


# Reduced precisions docs/usage.md recommends; each must keep every chosen mask.
REDUCED_PRECISIONS = [pytest.param(p, marks=_precision_marks(p)) for p in RECOMMENDED_REDUCED]
# bf16 keeps 8 mantissa bits: logits move by ~1e-1 where they are O(10), so mask edges move by a pixel or two.
REDUCED_MIN_MASK_IOU = 0.95


def reduced(precision: str, threads: int | None = None) -> Callable[[Path], ModelRunner]:
    return partial(OpenVinoRunner, precision=precision, threads=threads)


def track_clip(model_dir: Path, images: list[np.ndarray], box, config: TrackerConfig, factory) -> list[FrameResult]:
    """The tracker over a whole clip with every sub-model from `factory`, frames overlapped as a file run does."""
    with open_bundle_with(model_dir, factory) as bundle:
        tracker = SamuraiTracker(bundle, config, num_frames=len(images))
        source = ((i, image, None) for i, image in enumerate(images))
        return [tracker.track(frame, box if frame.frame_idx == 0 else None)
                for frame in tracker.encoder.frames(source, overlap=True)]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def assert_same_decisions(reduced_run: list[FrameResult], exact_run: list[FrameResult]) -> None:
    """Same chosen mask on every frame, and masks that differ only at their edges."""
    assert [r.mask_index for r in reduced_run] == [r.mask_index for r in exact_run]
    ious = [mask_iou(a.mask, b.mask) for a, b in zip(reduced_run, exact_run)]
    assert min(ious) >= REDUCED_MIN_MASK_IOU, f"min mask IoU {min(ious):.3f}"
