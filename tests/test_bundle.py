"""The model bundle: one call opens a folder on a backend, checks the variant against the backend, and closes
every runner it opened."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from acl_models.base import BackendError, WrappedRunner
from acl_models.bundle import choose_bundle, open_bundle
from acl_models.manifest import SUBMODELS, ModelFolderError
from acl_models.openvino_runner import openvino_problem
from tests.installed import needs

THREADS = 1


class _FailingClose(WrappedRunner):
    """A real runner whose close first closes it, then reports a failure, as a runtime's release error does."""

    def close(self) -> None:
        super().close()
        raise BackendError(f"releasing {self.path.name} failed")


def _closed(runner) -> bool:
    """A closed runner refuses any run with "was closed"; an open one fails on the empty feed in its runtime."""
    try:
        runner.run({})
    except BackendError as exc:
        return "was closed" in str(exc)
    except Exception:  # noqa: BLE001 - ONNX Runtime's own error for the missing inputs: the session is open
        return False
    return False


def test_an_onnx_variant_asks_for_onnx_runtime(export_128):
    assert choose_bundle(export_128, "auto", "fp16").backend == "onnx"
    assert choose_bundle(export_128, "onnx", "int8").variant == "int8"


@pytest.mark.parametrize("backend", [pytest.param("openvino", marks=needs(openvino_problem()))])
def test_an_onnx_variant_with_another_backend_is_refused(export_128, backend):
    with pytest.raises(BackendError, match=rf"^--onnx-variant applies to ONNX Runtime, not {backend}; use --backend onnx$"):
        open_bundle(export_128, backend, "fp16")


def test_an_openvino_precision_on_onnx_runtime_is_refused(export_128):
    with pytest.raises(BackendError, match=r"^--precision bf16 is OpenVINO's; on onnx use --onnx-variant$"):
        choose_bundle(export_128, "onnx", precision="bf16")


def test_closing_the_bundle_closes_every_runner(export_128):
    with open_bundle(export_128, "onnx", threads=THREADS) as bundle:
        assert list(bundle.runners) == list(SUBMODELS) and bundle.backend == "onnx"
        assert bundle.constants and all(isinstance(v, np.ndarray) for v in bundle.constants.values())
        assert not any(_closed(r) for r in bundle.runners.values())
    assert all(_closed(r) for r in bundle.runners.values())


def test_a_runner_that_fails_to_close_does_not_keep_the_others_open(export_128):
    bundle = open_bundle(export_128, "onnx", threads=THREADS)
    bundle = bundle.wrap(lambda runner: _FailingClose(runner) if runner.path.stem == SUBMODELS[1] else runner)
    with pytest.raises(BackendError, match=f"releasing {SUBMODELS[1]}.onnx failed"):
        bundle.close()
    assert all(_closed(r) for r in bundle.runners.values())


def test_a_folder_without_a_manifest_is_a_model_folder_error(tmp_path: Path):
    with pytest.raises(ModelFolderError, match=r"manifest.json not found; export the models with `python convert/"):
        open_bundle(tmp_path, "onnx")


def test_a_missing_variant_is_a_model_folder_error(export_128):
    with pytest.raises(ModelFolderError, match=r"has no fp16 variant of image_encoder; export with .* --fp16`"):
        open_bundle(export_128, "onnx", "fp16", threads=THREADS)
