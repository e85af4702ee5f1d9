"""The backends the behavioural tests run on: every installed one at full precision (ONNX Runtime, OpenVINO and the
emulated pyACL of tests/emulated_acl), and OpenVINO's recommended reduced precisions."""

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
from acl_models.select import runner_factory
from app.samurai.config import TrackerConfig
from app.samurai.results import FrameResult
from app.samurai.tracker import SamuraiTracker
from tests.installed import needs

OPENVINO_PROBLEM = openvino_problem()
# Every backend at full precision must pass the same behavioural tests; OpenVINO's cases skip, naming why, only
# off CI where it does not import (tests/installed.py). The emulated NPU always runs.
EXACT_BACKENDS: dict[str, Callable[..., ModelRunner]] = {"onnx": OnnxRunner, "openvino": OpenVinoRunner}
EMULATED_NPU = "acl"
EXACT_BACKEND_PARAMS = [pytest.param("onnx"), pytest.param("openvino", marks=needs(OPENVINO_PROBLEM)),
                        pytest.param(EMULATED_NPU)]
# The emulated NPU runs the .om files of the session's stand-in ATC conversion of each export (tests/conftest.py).
CONVERTED = {"export_128": "om_128", "export_256_variants": "om_256", "demo_models": "demo_om",
             "edgetam_export_256": "edgetam_om_256"}


def models_for(request: pytest.FixtureRequest, backend: str, export: str) -> Path:
    """The model folder `backend` reads for the session export fixture named `export`: the export on a CPU; on the
    emulated NPU its stand-in ATC conversion, with the emulation importable as `acl` for the test (the `acl`
    fixture)."""
    if backend != EMULATED_NPU:
        return request.getfixturevalue(export)
    request.getfixturevalue("acl")
    return request.getfixturevalue(CONVERTED[export])


def exact_factory(backend: str, model_dir: Path, threads: int | None = None) -> Callable[[Path], ModelRunner]:
    """Sub-model path -> its runner on `backend` at full precision (`model_dir` from `models_for`)."""
    if backend == EMULATED_NPU:
        return runner_factory(EMULATED_NPU, model_dir)
    return partial(EXACT_BACKENDS[backend], threads=threads)


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
