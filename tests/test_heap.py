"""Fixed glibc heap thresholds: a frame's freed arrays stay mapped instead of being page-faulted in again."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# A frame-like pattern: a few megabyte-sized arrays allocated, then freed together.
_PROGRAM = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from app.live import heap
    if sys.argv[1] == "fixed":
        assert heap.keep_freed_pages()
    def frame():
        arrays = [np.ones(3 * 2**20 // 8) for _ in range(4)]
        del arrays
    for _ in range(3):
        frame()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        frame()
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)
# 20 frames x 12 MB in 4 KiB pages would be ~60000 faults if every frame re-faulted its memory.
MAX_FAULTS_FIXED = 100
MIN_FAULTS_DEFAULT = 10_000


def _page_faults(thresholds: str) -> int:
    done = subprocess.run([sys.executable, "-c", _PROGRAM, thresholds], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_fixed_thresholds_stop_per_frame_page_faults():
    assert _page_faults("default") > MIN_FAULTS_DEFAULT
    assert _page_faults("fixed") < MAX_FAULTS_FIXED
