"""Shared by the Ascend tests: converting an export with the stand-in ATC."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from convert.atc_args import Settings, build_jobs

REPO = Path(__file__).resolve().parents[1]
EMULATION_DIR = REPO / "tests" / "emulated_acl"
FAKE_ATC = REPO / "tests" / "fake_atc" / "atc"
SOC = "Ascend310B4"


def linked_copy(export: Path, dest: Path) -> Path:
    """The export as symlinks plus a private manifest.json, so the test may write .om files beside it."""
    dest.mkdir(parents=True)
    for item in export.iterdir():
        if item.name == "manifest.json":
            shutil.copy(item, dest / item.name)
        elif item.suffix in (".onnx", ".npy"):
            (dest / item.name).symlink_to(item)
    return dest


def convert(model_dir: Path, settings: Settings, only: str | None = None, extra: tuple[str, ...] = ()) -> Path:
    """Run the stand-in ATC on the commands convert/atc_args.py builds (plus `extra` flags)."""
    for job in build_jobs(model_dir, settings):
        if only in (None, job.model):
            result = subprocess.run(
                [sys.executable, str(FAKE_ATC), *job.argv[1:], *extra], capture_output=True, text=True
            )
            assert result.returncode == 0, result.stdout
    return model_dir
