"""Preprocessing and the image encoder: the step of a frame that every object shares, run once per frame,
in order or overlapped with the caller's tracking of the previous frame."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from acl_models.base import Pending
from app.samurai import preprocess
from app.samurai.config import TrackerConfig
from app.samurai.timing import StageTimer

if TYPE_CHECKING:  # the algorithm reads a bundle; opening one (and its runtimes) is the caller's business
    from acl_models.bundle import ModelBundle


@dataclass
class EncodedFrame:
    """A frame after the image encoder: what every object's step reads."""

    frame_idx: int
    width: int
    height: int
    features: dict[str, np.ndarray]
    timings: dict[str, float]


@dataclass
class PendingFrame:
    """A frame whose image encoder was submitted to its runner; `wait()` gives the encoded frame.

    Its "image_encoder" time is what the caller spent submitting and waiting, not
    the encoder's own time, which ran beside the caller's other work.
    """

    frame_idx: int
    width: int
    height: int
    pending: Pending
    timings: dict[str, float]
    clock: Callable[[], float]

    def wait(self) -> EncodedFrame:
        start = self.clock()
        features = self.pending.wait()
        self.timings["image_encoder"] = self.timings.get("image_encoder", 0.0) + 1000.0 * (self.clock() - start)
        return EncodedFrame(self.frame_idx, self.width, self.height, features, self.timings)


# What `FrameEncoder.frames` reads: frame index, image, and its prepared model input or None.
SourceFrame = tuple[int, np.ndarray, np.ndarray | None]


class FrameEncoder:
    """Preprocessing and the image encoder: the part of a frame's work that objects share."""

    clock: Callable[[], float] = staticmethod(time.perf_counter)

    def __init__(self, bundle: ModelBundle, config: TrackerConfig):
        hyper = bundle.manifest.hyper
        self.runner = bundle.runners["image_encoder"]
        self.image_size = bundle.manifest.image_size
        self.resize = config.resize
        self.normalise = preprocess.Normaliser.for_stats(hyper["image_mean"], hyper["image_std"])

    def prepare_input(self, image: np.ndarray) -> np.ndarray:
        """The image encoder's input for a frame; pure, so a caller may run it ahead of `encode`."""
        resized = preprocess.resize_frame(image, self.image_size, self.resize)
        if self.runner.takes_pixels:
            return resized[None]
        return self.normalise(resized)

    def encode(self, frame_idx: int, image: np.ndarray, model_input: np.ndarray | None = None) -> EncodedFrame:
        """`model_input` is `prepare_input(image)` when the caller prepared it ahead."""
        timer = StageTimer(self.clock)
        with timer.stage("preprocess"):
            x = self.prepare_input(image) if model_input is None else model_input
        with timer.stage("image_encoder"):
            features = self.runner.run({"image": x})
        return EncodedFrame(frame_idx, image.shape[1], image.shape[0], features, timer.ms)

    def submit(self, frame_idx: int, image: np.ndarray, model_input: np.ndarray | None = None) -> PendingFrame:
        """`encode`, started on the runner and returned at once where the runner computes in the background."""
        timer = StageTimer(self.clock)
        with timer.stage("preprocess"):
            x = self.prepare_input(image) if model_input is None else model_input
        with timer.stage("image_encoder"):
            pending = self.runner.submit({"image": x})
        return PendingFrame(frame_idx, image.shape[1], image.shape[0], pending, timer.ms, self.clock)

    def frames(self, frames: Iterable[SourceFrame], overlap: bool) -> Iterator[EncodedFrame]:
        """(frame index, image, model input or None) -> each frame encoded, in order.

        With `overlap`, frame t+1 is read and its encoder submitted before frame t
        is handed out, so that the encoder runs in the runner's background while
        the caller tracks frame t: the same arithmetic in another order, since the
        encoder reads nothing but its frame. Without, each frame is encoded when
        it is handed out.
        """
        if not overlap:
            for frame_idx, image, model_input in frames:
                yield self.encode(frame_idx, image, model_input)
            return
        pending: PendingFrame | None = None
        for frame_idx, image, model_input in frames:
            ready = pending.wait() if pending is not None else None
            pending = self.submit(frame_idx, image, model_input)
            if ready is not None:
                yield ready
        if pending is not None:
            yield pending.wait()
