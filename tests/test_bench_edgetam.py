"""scripts/bench.py on an EdgeTAM export: the official EdgeTAM predictor and hiera-t in the same alternation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.benchmarks.speed import official
from app.benchmarks.speed.tracking import BenchSettings
from tests.official_edgetam import official_python
from tests.script_runs import run_script

VENV_TIMEOUT_S = 60


def test_bench_times_the_official_edgetam_predictor_and_a_compared_export(
    edgetam_export_256, edgetam_checkpoint, export_256_variants
):
    official_python()  # the official environment, made once when missing
    # Paths as a user types them, relative to where they stand (the timed processes start elsewhere).
    here = Path(edgetam_export_256).parent
    done = run_script("bench", "--model-dir", os.path.relpath(edgetam_export_256, here), "--frames", "2",
                      "--repeats", "1", "--official", os.path.relpath(edgetam_checkpoint, here), "--pairs", "onnx:fp32",
                      "--compare", os.path.relpath(export_256_variants, here), cwd=here)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[2:] if not line.startswith("speed-up")}
    assert set(rows) == {"official", "onnx:fp32", "hiera-t/onnx:fp32"}
    # The exact path agrees with itself; a compared export of another family has no agreement columns.
    assert rows["onnx:fp32"][-2:] == ["0", "1.000"] and rows["hiera-t/onnx:fp32"][-2:] == ["-", "-"]
    assert lines[-1].startswith("speed-up over hiera-t/onnx:fp32: onnx:fp32 ") and "x whole" in lines[-1]


@pytest.fixture(scope="module")
def bare_environment(tmp_path_factory) -> Path:
    """A real environment without the official EdgeTAM package and without `timm`."""
    venv = tmp_path_factory.mktemp("bare") / ".venv-edgetam-official"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=VENV_TIMEOUT_S)
    return venv


def test_official_edgetam_environment_is_checked_before_any_run(bare_environment, tmp_path):
    official_python()
    assert official.official_edgetam_problem(official.OFFICIAL_EDGETAM_VENV) is None
    missing = official.official_edgetam_problem(bare_environment)
    assert "lacks edgetam-dimos, timm" in missing and "setup_official_edgetam.sh" in missing
    assert "does not exist" in official.official_edgetam_problem(tmp_path / "nowhere")


def test_bench_official_without_timm_stops_with_one_line(bare_environment, edgetam_export_256, edgetam_checkpoint,
                                                          monkeypatch, capsys):
    """`--official` on an EdgeTAM export whose official environment lacks `timm`: one line, exit 2, nothing run."""
    monkeypatch.setattr(official, "OFFICIAL_EDGETAM_VENV", bare_environment)
    settings = BenchSettings(edgetam_export_256, frames=2, mode="sam2", repeats=1)
    code = official.side_by_side(settings, edgetam_checkpoint, "onnx:fp32", [sys.executable, "scripts/bench.py"])
    errors = capsys.readouterr().err.splitlines()
    assert code == 2
    assert len(errors) == 1 and errors[0].startswith("ERROR ") and "timm" in errors[0], errors


@pytest.mark.parametrize("compared, message", [
    ("export_128", "is a 128 px export but --model-dir"),  # hiera-t at 128 px against EdgeTAM at 256 px
    (None, "--compare: "),  # a folder without an export
])
def test_bench_refuses_a_compared_export_of_another_size_or_none(request, edgetam_export_256, edgetam_checkpoint, tmp_path,
                                                         compared, message):
    """Unlike work or no work to compare: one line, exit 2, nothing run."""
    folder = request.getfixturevalue(compared) if compared else tmp_path
    done = run_script("bench", "--model-dir", edgetam_export_256, "--frames", "2", "--repeats", "1",
                      "--official", edgetam_checkpoint, "--pairs", "onnx:fp32", "--compare", folder)
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and not done.stdout
    assert len(errors) == 1 and message in errors[0], errors
