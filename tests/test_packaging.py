"""The wheel that `pip install .` builds: every package the project declares, the web page's files, no warnings.

The build runs on a copy of the sources in a temporary folder, with the setuptools already installed
(no build isolation, so no network), so that it leaves nothing behind in the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "app", "acl_models", "convert", "scripts")
PAGE = "app/serve/static"
BUILD_TIMEOUT_S = 120


def test_the_wheel_holds_the_page_and_the_build_warns_of_nothing(tmp_path: Path) -> None:
    tree, wheels = tmp_path / "tree", tmp_path / "wheels"
    tree.mkdir()
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, tree / name)
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w", str(wheels), "."],
        cwd=tree, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
    )
    log = build.stdout + build.stderr
    assert build.returncode == 0, log[-3000:]
    assert "would be ignored" not in log and "SetuptoolsDeprecationWarning" not in log, log[-3000:]
    (wheel,) = wheels.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packed = {name for name in archive.namelist() if name.startswith(f"{PAGE}/")}
    expected = {f"{PAGE}/{path.name}" for path in (REPO / PAGE).iterdir() if path.is_file()}
    assert expected and packed == expected
