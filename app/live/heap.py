"""Keep the C heap's freed pages mapped between frames (glibc only).

Every frame allocates and frees a few megabytes of numpy arrays (the
normalised image, the memory-attention inputs, frame-sized masks, the
runtime's outputs). With glibc's default, adaptive thresholds the free top of
the heap is handed back to the kernel after such a frame, and the next frame
page-faults and zeroes the same memory again: on one core that is about a
third of the CPU time spent outside the models at 640×360
(`scripts/bench.py --null-models --no-heap-tuning` shows it). Fixed
thresholds keep those pages; the process's peak memory is unchanged, it just
keeps its high-water mark instead of shrinking and regrowing every frame.
"""

from __future__ import annotations

import ctypes
import ctypes.util

from loguru import logger

# mallopt parameters, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks at or above this size get their own mapping, returned on free: far above
# any per-frame array (a 4K RGB frame is 25 MB) and glibc's maximum on 64-bit.
MMAP_THRESHOLD_BYTES = 32 * 2**20
# Free memory the heap keeps at its top before returning it to the kernel.
TRIM_THRESHOLD_BYTES = 128 * 2**20


def keep_freed_pages() -> bool:
    """Fix glibc's trim and mmap thresholds; False (and nothing changed) on another C library."""
    libc_name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(libc_name).mallopt
    except (OSError, AttributeError, TypeError):
        logger.debug("no glibc mallopt here; heap thresholds left at their defaults")
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success.
    mmap_set = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    return mmap_set and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
