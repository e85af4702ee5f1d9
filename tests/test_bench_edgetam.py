"""scripts/bench.py on an EdgeTAM export: the official EdgeTAM predictor and hiera-t in the same alternation."""

from __future__ import annotations

import os
from pathlib import Path

from tests.official_edgetam import official_python
from tests.script_runs import run_script


def test_bench_times_the_official_edgetam_predictor_and_a_compared_export(
    edgetam_export_256, edgetam_checkpoint, export_128
):
    official_python()  # the official environment, made once when missing
    # Paths as a user types them, relative to where they stand (the timed processes start elsewhere).
    here = Path(edgetam_export_256).parent
    done = run_script("bench", "--model-dir", os.path.relpath(edgetam_export_256, here), "--frames", "2",
                      "--repeats", "1", "--official", os.path.relpath(edgetam_checkpoint, here), "--pairs", "onnx:fp32",
                      "--compare", os.path.relpath(export_128, here), cwd=here)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[2:] if not line.startswith("speed-up")}
    assert set(rows) == {"official", "onnx:fp32", "hiera-t/onnx:fp32"}
    # The exact path agrees with itself; a compared export of another family has no agreement columns.
    assert rows["onnx:fp32"][-2:] == ["0", "1.000"] and rows["hiera-t/onnx:fp32"][-2:] == ["-", "-"]
    assert lines[-1].startswith("speed-up over hiera-t/onnx:fp32: onnx:fp32 ") and "x whole" in lines[-1]
