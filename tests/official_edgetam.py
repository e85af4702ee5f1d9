"""The official EdgeTAM code, run in its own environment (scripts/setup_official_edgetam.sh) on this project's inputs.

The official package's top-level name is `sam2`, like SAM 2.1's in .venv, so it
runs in a subprocess with that environment's Python and the test-only
`torchvision` stand-in (tests/official_edgetam/standin/) on its path. The
environment is made on first use when CI's set-up has not made it already.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-edgetam-official"
SETUP = ROOT / "scripts" / "setup_official_edgetam.sh"
HERE = Path(__file__).resolve().parent / "official_edgetam"
RUNNER = HERE / "run_official.py"
STANDIN = HERE / "standin"
# Building the official model and running a few modules on one thread.
TIMEOUT_S = 600


def official_python() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run(["bash", str(SETUP), sys.executable, str(VENV)], check=True, cwd=ROOT)
    return python


def run_official(checkpoint: Path, image_size: int, cases: dict, work: Path) -> dict:
    """{case: [official outputs]} plus "state_shapes", for `cases` = {case: {input: tensor}}."""
    cases_path, out_path = work / "official_cases.pt", work / "official_out.pt"
    torch.save(cases, cases_path)
    env = {**os.environ, "PYTHONPATH": str(STANDIN)}
    done = subprocess.run(
        [str(official_python()), str(RUNNER), str(checkpoint), str(image_size), str(cases_path), str(out_path)],
        env=env, cwd=work, capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(f"official EdgeTAM run failed:\n{done.stderr[-3000:]}")
    return torch.load(out_path, weights_only=True)
