"""Frame sources: what every source is (`FrameSource`, `Frame`), a video file and a folder of frames.

The live ones, a camera and the network streams, are in `live_sources.py` and
`streams.py`; all are context-managed iterators.

Every source yields `Frame(index, image, timestamp)` with an RGB uint8 image and
exposes `num_frames`, `fps`, `size` (width, height of the first frame) and
`is_live`. Resources are acquired when a source is opened and released by
`close()` (or leaving its `with` block); `close()` may be called twice.

Alignment: `Frame.index` is the frame's position in the source, not a count of
frames yielded. A frame that cannot be decoded is skipped with a warning and
never replaced by a stand-in (a black frame would poison the tracker's memory
bank), so the indices have a gap there, and a live camera's dropped frames leave
gaps too. The writers in `app.media.outputs` key lines and file names by this index,
which keeps line N of `track.txt` and `masks/0000N.png` about frame N.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from loguru import logger
from PIL import Image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
# A folder carries no frame rate; 30 fps is the common camera rate. It only sets
# timestamps and the rate of an output video; pass `fps` when the rate is known.
DEFAULT_FOLDER_FPS = 30.0
MS_PER_S = 1000.0
# Failed reads in a row after which a video with a known frame count is taken to
# have ended (a truncated file); shorter runs followed by a good frame are corrupt
# frames and are skipped. One second of video at 25 fps.
MAX_CONSECUTIVE_READ_FAILURES = 25
_DIGITS = re.compile(r"(\d+)")


class SourceError(ValueError):
    """A source that cannot be opened or read; the one-line message says what to do."""


class SourceLostError(SourceError):
    """A live source that stayed away longer than its reconnect window (a service restarts on it)."""


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded frame: `image` is (H, W, 3) uint8 RGB, `timestamp` in seconds from the start.

    `captured` is `time.monotonic()` when the frame was read, the start of its latency.
    """

    index: int
    image: np.ndarray
    timestamp: float
    captured: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(
                f"frame {self.index} image must be (H, W, 3) uint8 RGB, got {self.image.shape} {self.image.dtype}"
            )


class Capture(Protocol):
    """The part of `cv2.VideoCapture` the sources use, so tests can pass a fake."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...

    def get(self, prop: int) -> float: ...


CaptureFactory = Callable[[Any], Capture]


class FrameSource(ABC):
    """An iterator of `Frame`s that owns its resources; use it as a context manager."""

    num_frames: int | None
    fps: float | None
    size: tuple[int, int]
    is_live: bool

    def __iter__(self) -> FrameSource:
        return self

    @abstractmethod
    def __next__(self) -> Frame: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bgr_to_rgb(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def positive_or_none(value: float) -> float | None:
    """OpenCV reports an unknown property as 0 (or -1)."""
    return value if value > 0 else None


def natural_key(name: str) -> list[int | str]:
    """Sort key that orders digit runs by value, so `2.jpg` comes before `10.jpg`."""
    # re.split with a group alternates text and digits, so positions compare like with like.
    return [int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(name)]


class VideoSource(FrameSource):
    """A video file read with OpenCV. `timestamp` is the container's presentation time."""

    is_live = False

    def __init__(self, path: Path | str, capture_factory: CaptureFactory = cv2.VideoCapture):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"video {self.path} does not exist; check the path")
        self._capture = capture_factory(str(self.path))
        self._closed = False
        if not self._capture.isOpened():
            self.close()
            raise SourceError(
                f"cannot open video {self.path}: OpenCV has no decoder for it or it is damaged; "
                f"re-encode it (ffmpeg -i {self.path} -c:v libx264 out.mp4) or pass a folder of frames"
            )
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.num_frames = count if count > 0 else None
        self.fps = positive_or_none(self._capture.get(cv2.CAP_PROP_FPS))
        self._position = 0
        self._ended = False
        # Read ahead once: `size` is the first frame's, and a video without a single
        # decodable frame fails here instead of yielding nothing.
        self._pending = self._read_next()
        if self._pending is None:
            self.close()
            raise SourceError(f"video {self.path} has no decodable frame; re-encode it or pass a folder of frames")
        height, width = self._pending.image.shape[:2]
        self.size = (width, height)

    def __next__(self) -> Frame:
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame
        frame = self._read_next()
        if frame is None:
            raise StopIteration
        return frame

    def _read_next(self) -> Frame | None:
        """The next decodable frame, or None at the end.

        A read can fail on a corrupt frame or at the end of the file, and OpenCV does
        not say which: failures followed by a good frame were corrupt frames; failures
        that run to the header's frame count (or, without a count, any failure) end it.
        """
        if self._ended:
            return None
        failed: list[int] = []
        failure_limit = MAX_CONSECUTIVE_READ_FAILURES if self.num_frames is not None else 1
        while len(failed) < failure_limit and (self.num_frames is None or self._position < self.num_frames):
            index = self._position
            self._position += 1
            ok, bgr = self._capture.read()
            if ok and bgr is not None:
                for bad in failed:
                    logger.warning("frame {} of video {} cannot be decoded; skipped", bad, self.path)
                timestamp = self._capture.get(cv2.CAP_PROP_POS_MSEC) / MS_PER_S
                return Frame(index, bgr_to_rgb(bgr), timestamp)
            failed.append(index)
        self._ended = True
        if failed and self.num_frames is not None:
            logger.warning(
                "video {} ended at frame {} but its header reports {} frames; the file may be truncated "
                "(some containers only estimate the count)",
                self.path,
                failed[0],
                self.num_frames,
            )
        return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._capture.release()


class FolderSource(FrameSource):
    """A folder of .jpg/.jpeg/.png frames in natural name order, read with Pillow like SAM 2's predictor.

    `timestamp` is `index / fps`.
    """

    is_live = False

    def __init__(self, path: Path | str, fps: float = DEFAULT_FOLDER_FPS):
        self.path = Path(path)
        if not self.path.is_dir():
            raise SourceError(f"frame folder {self.path} does not exist; check the path")
        if fps <= 0:
            raise SourceError(f"folder frame rate {fps} must be > 0")
        self._files = sorted(
            (p for p in self.path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: natural_key(p.name),
        )
        if not self._files:
            raise SourceError(
                f"folder {self.path} has no .jpg/.jpeg/.png frames; put the frames there or pass a video file"
            )
        self.num_frames = len(self._files)
        self.fps = fps
        self.size = self._first_size()
        self._position = 0

    def _first_size(self) -> tuple[int, int]:
        """Size of the first frame whose header reads; unreadable ones are reported while iterating."""
        for path in self._files:
            try:
                with Image.open(path) as image:
                    return image.size
            except OSError:
                continue
        raise SourceError(f"no frame in folder {self.path} can be read as an image; check the files")

    def __next__(self) -> Frame:
        while self._position < len(self._files):
            index = self._position
            self._position += 1
            path = self._files[index]
            try:
                with Image.open(path) as image:
                    rgb = np.asarray(image.convert("RGB"))
            # Pillow raises OSError (UnidentifiedImageError, "image file is truncated")
            # for bad bytes, and SyntaxError from some plugin parsers, e.g. a broken PNG chunk.
            except (OSError, SyntaxError) as exc:
                logger.warning("frame {} ({}) cannot be read ({}); skipped", index, path.name, exc)
                continue
            return Frame(index, rgb, index / self.fps)
        raise StopIteration

    def close(self) -> None:
        """Nothing is held open between frames."""
