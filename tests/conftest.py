"""Shared fixtures: random-weight, demo and stress checkpoints and exports at two image sizes per test session.

The suite runs on every core with pytest-xdist (`-n auto`, one test file per worker at a time).
The costly session fixtures below are built once per session, not once per worker: the first
worker to need one builds it under a file lock in the session's shared temporary folder and the
others read it (`_built_once`).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from loguru import logger

SEED = 0
EMULATION_DIR = Path(__file__).resolve().parent / "emulated_acl"
# Workers for `-n auto`: every core up to this many (each worker holds its own PyTorch and models).
MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config) -> int:
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


def _built_once(tmp_path_factory, name: str, build: Callable[[Path], Path]) -> Path:
    """`build(empty folder)` run once per test session, whichever worker asks first; its result path for all.

    Without workers it is a plain `mktemp`. With them, the session's base folder is shared
    (each worker's own is one level down), and a marker written after the build holds the path,
    so a worker never reads a half-built folder.
    """
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent
    marker = shared / f"{name}.built"
    with FileLock(str(shared / f"{name}.lock")):
        if not marker.exists():  # a worker whose build failed left no marker: start again
            folder = shared / name
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            marker.write_text(str(build(folder)))
    return Path(marker.read_text())


def _checkpoint_once(tmp_path_factory, name: str, state_dict: Callable[[], dict]) -> Path:
    """`state_dict()` saved once per session in the official checkpoint format, as `name`."""
    def build(folder: Path) -> Path:
        torch.save({"model": state_dict()}, folder / name)
        return folder / name

    return _built_once(tmp_path_factory, Path(name).stem, build)


def _export_once(tmp_path_factory, name: str, checkpoint: Path, **options) -> Path:
    """`convert.export_onnx.export(checkpoint, folder, **options)` once per session; the folder."""
    from convert.export_onnx import export

    def build(out: Path) -> Path:
        export(checkpoint, out, **options)
        return out

    return _built_once(tmp_path_factory, name, build)


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """PyTorch on one thread in the test process: its worker threads spin and collapse when other processes share
    the cores (tests/demo_model.py; an official memory attention: 0.1 s on one thread, 0.75 s on two, busy)."""
    from tests.demo_model import TEST_THREADS, torch_threads

    with torch_threads(TEST_THREADS):
        yield


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    from convert.random_checkpoint import random_state_dict

    return _checkpoint_once(tmp_path_factory, "sam2.1_hiera_tiny.pt", lambda: random_state_dict("t", SEED))


@pytest.fixture(scope="session")
def edgetam_checkpoint(tmp_path_factory) -> Path:
    """A random-weight EdgeTAM checkpoint in the official `edgetam.pt` format."""
    from convert.random_checkpoint import random_edgetam_state_dict

    return _checkpoint_once(tmp_path_factory, "edgetam.pt", lambda: random_edgetam_state_dict(SEED))


@pytest.fixture(scope="session")
def edgetam_export_256(edgetam_checkpoint, tmp_path_factory) -> Path:
    """EdgeTAM exported at 256 px, the smallest size whose 1/16 feature map fits the perceiver's 16x16 grid."""
    return _export_once(tmp_path_factory, "edgetam_256", edgetam_checkpoint, image_size=256)


@pytest.fixture(scope="session")
def demo_checkpoint(tmp_path_factory) -> Path:
    """The hand-set colour checkpoint (convert/demo_checkpoint.py) in the official format."""
    from convert.demo_checkpoint import demo_state_dict

    return _checkpoint_once(tmp_path_factory, "demo_colour_sam2.1_hiera_tiny.pt", demo_state_dict)


@pytest.fixture(scope="session")
def stress_checkpoint(tmp_path_factory) -> Path:
    """Random weights with outlier residual channels and sharpened attention (convert/stress_checkpoint.py)."""
    from convert.stress_checkpoint import stress_state_dict

    return _checkpoint_once(tmp_path_factory, "stress_sam2.1_hiera_tiny.pt", lambda: stress_state_dict(SEED))


@pytest.fixture(scope="session")
def torch_model_512(checkpoint):
    from convert.checkpoint import load_model

    return load_model(checkpoint, None, 512)[0]


@pytest.fixture(scope="session")
def export_512(checkpoint, tmp_path_factory) -> Path:
    return _export_once(tmp_path_factory, "om512", checkpoint, image_size=512)


@pytest.fixture(scope="session")
def export_256_variants(checkpoint, tmp_path_factory) -> Path:
    """A second image size, with the fp16 and int8 variants and simplification."""
    return _export_once(tmp_path_factory, "om256", checkpoint, image_size=256, simplify_graphs=True, fp16=True,
                        int8=True)


@pytest.fixture(scope="session")
def export_128(checkpoint, tmp_path_factory) -> Path:
    """The random weights at 128 px, simplified: for the tests that track whole clips to compare runs, where the
    size does not matter and a frame costs a quarter of 256 px on both sides."""
    return _export_once(tmp_path_factory, "om128", checkpoint, image_size=128, simplify_graphs=True)


@pytest.fixture(scope="session")
def demo_models(demo_checkpoint, tmp_path_factory) -> Path:
    """The demo checkpoint exported once (tests/demo_model.py's size), for every test that tracks the colour model."""
    from tests.demo_model import IMAGE_SIZE

    return _export_once(tmp_path_factory, f"demo_om{IMAGE_SIZE}", demo_checkpoint, image_size=IMAGE_SIZE)


def _converted_once(tmp_path_factory, name: str, models: Path) -> Path:
    """`models` converted once per session by the stand-in ATC (the emulated NPU's .om files), in a folder of its
    own next to links to the export's files."""
    from convert.atc_args import Settings
    from tests.ascend_helpers import SOC, convert, linked_copy

    return _built_once(tmp_path_factory, name, lambda folder: convert(linked_copy(models, folder / "om"), Settings(SOC)))


@pytest.fixture(scope="session")
def demo_om(demo_models, tmp_path_factory) -> Path:
    """`demo_models` converted by the stand-in ATC."""
    return _converted_once(tmp_path_factory, "demo_atc", demo_models)


@pytest.fixture(scope="session")
def om_256(export_256_variants, tmp_path_factory) -> Path:
    """`export_256_variants` converted by the stand-in ATC: the random weights give every output values to compare."""
    return _converted_once(tmp_path_factory, "om256_atc", export_256_variants)


@pytest.fixture(scope="session")
def edgetam_om_256(edgetam_export_256, tmp_path_factory) -> Path:
    return _converted_once(tmp_path_factory, "edgetam_om_256", edgetam_export_256)


@pytest.fixture(scope="session")
def om_128(export_128, tmp_path_factory) -> Path:
    """`export_128` converted by the stand-in ATC, for the clips tracked on the emulated NPU."""
    return _converted_once(tmp_path_factory, "om128_atc", export_128)


@pytest.fixture(scope="session")
def demo_lasot(tmp_path_factory) -> Path:
    """tests/demo_lasot.py's dataset, written once for the evaluation tests."""
    from tests.demo_lasot import write_demo_lasot

    return _built_once(tmp_path_factory, "lasot", write_demo_lasot)


@pytest.fixture(scope="session")
def whole_run(demo_lasot, demo_models, tmp_path_factory) -> Path:
    """One uninterrupted single-worker run on the ONNX Runtime backend: what every other run must equal."""
    from tests.demo_lasot import run_eval

    def build(out: Path) -> Path:
        assert run_eval(demo_lasot, demo_models, out, "--backend", "onnx") == 0
        return out

    return _built_once(tmp_path_factory, "whole", build)


@pytest.fixture
def acl(monkeypatch):
    """The emulation as `import acl`, fresh for each test."""
    monkeypatch.syspath_prepend(str(EMULATION_DIR))
    monkeypatch.delitem(sys.modules, "acl", raising=False)
    module = importlib.import_module("acl")
    module.reset()
    yield module
    sys.modules.pop("acl", None)


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """Messages logged at WARNING or above during the test."""
    messages: list[str] = []
    sink = logger.add(messages.append, level="WARNING", format="{message}")
    yield messages
    logger.remove(sink)


@pytest.fixture(scope="session")
def official_run():
    """`tests.reference_predictor.run_official`, each distinct run computed once per session (one torch thread)."""
    from tests.demo_model import TEST_THREADS
    from tests.reference_predictor import run_official

    runs = {}

    def get(checkpoint, folder, box_xyxy, image_size, samurai=None):
        key = (str(checkpoint), str(folder), tuple(float(v) for v in box_xyxy), image_size, samurai)
        if key not in runs:
            runs[key] = run_official(checkpoint, folder, box_xyxy, image_size, samurai, TEST_THREADS)
        return runs[key]

    return get


@pytest.fixture(scope="session")
def leave_clip(tmp_path_factory):
    """The demo clip whose target leaves the view and returns: (folder, RGB frames, true x,y,w,h boxes)."""
    import numpy as np

    from app.media.colour_clip import make_leave_frames
    from app.media.textured_clip import write_clip
    from tests.synthetic import read_jpeg_folder

    frames, boxes = make_leave_frames()
    folder = tmp_path_factory.mktemp("leave_clip") / "leave_clip"
    write_clip(folder, frames, boxes)
    return folder, read_jpeg_folder(folder), np.asarray(boxes, dtype=np.float64)
