"""A script run as a user runs it: `python scripts/NAME.py ARGS` in a process of its own, from the repository root.

Tests of scripts/ go through here rather than importing them: a script is a front door, and what it calls lives in
the packages (tests/test_architecture.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT_TIMEOUT_S = 300.0


def run_script(name: str, *args: object, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """The finished process of `scripts/NAME.py ARGS` started in `cwd`, its stdout and stderr as text."""
    return subprocess.run([sys.executable, str(REPO / "scripts" / f"{name}.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S)
