"""The synthetic colour checkpoint's test settings, shared by the tests that need a tracker that follows red."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

# The colour model's decisions do not depend on the resolution (the demo and leave clips make the same choices, the
# same takeover frame included, at 128 and 256 px); 128 px: a frame near 0.1 s on a busy core, a quarter of 256 px.
IMAGE_SIZE = 128
# One compute thread for ONNX Runtime and PyTorch: their spinning worker threads
# collapse when other processes share the cores (measured on 2 busy cores: the
# reference predictor 13 s with one thread, 190 s with two; our tracker 5 s vs 16 s).
TEST_THREADS = 1


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
