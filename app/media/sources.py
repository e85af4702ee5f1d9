"""Frame sources: a video file, a folder of frames, a live camera or stream, as context-managed iterators.

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

import queue
import re
import threading
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
# How often a consumer waiting for a live frame checks whether the reader ended.
LIVE_POLL_S = 0.1
# A driver stuck inside read() must not hang shutdown; the reader is a daemon thread.
LIVE_JOIN_TIMEOUT_S = 2.0
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


def _bgr_to_rgb(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _positive_or_none(value: float) -> float | None:
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
        self.fps = _positive_or_none(self._capture.get(cv2.CAP_PROP_FPS))
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
                return Frame(index, _bgr_to_rgb(bgr), timestamp)
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


@dataclass(frozen=True)
class Reconnect:
    """How a live source that stops delivering is reopened: backoff doubling from `first_delay_s`
    up to `max_delay_s`, for at most `window_s` seconds (0: the source ends instead)."""

    window_s: float = 0.0
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0


class LiveSource(FrameSource):
    """A live feed (camera or network stream) that keeps only the newest frame.

    A reader thread grabs frames as fast as the feed delivers them into a queue of
    one; a frame the consumer has not taken when the next arrives is replaced and
    counted in `dropped`, so a slow tracker always works on the present. A feed
    that stops is reopened with backoff for `reconnect.window_s` seconds; indices
    and timestamps (seconds since the source was opened) keep increasing across
    the gap. Subclasses name the feed and word its errors.
    """

    is_live = True
    num_frames = None

    def __init__(self, label: str, open_capture: Callable[[], Capture], reconnect: Reconnect = Reconnect()):
        self.label = label
        self.dropped = 0
        self.reconnects = 0
        # monotonic time the feed stopped delivering, None while it delivers (the health check reads it).
        self.down_since: float | None = None
        self._open_capture = open_capture
        self._reconnect = reconnect
        self._closed = False
        self._error: SourceError | None = None
        self._capture = open_capture()
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(self._open_failed())
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            self._capture.release()
            raise SourceError(self._no_first_frame())
        self._start = time.monotonic()
        first = Frame(0, _bgr_to_rgb(bgr), 0.0)
        height, width = first.image.shape[:2]
        self.size = (width, height)
        self.fps = _positive_or_none(self._capture.get(cv2.CAP_PROP_FPS))
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=1)
        self._queue.put_nowait(first)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read_loop, name=f"{label.replace(' ', '')}-reader", daemon=True)
        self._thread.start()

    # -- wording, per kind of feed ------------------------------------------------------

    @abstractmethod
    def _open_failed(self) -> str: ...

    @abstractmethod
    def _no_first_frame(self) -> str: ...

    @abstractmethod
    def _read_failed(self, exc: cv2.error) -> str: ...

    # -- reader thread ------------------------------------------------------------------

    def _read_loop(self) -> None:
        index = 1
        try:
            while not self._stop.is_set():
                ok, bgr = self._capture.read()
                if not ok or bgr is None:
                    if self._stop.is_set():
                        return
                    bgr = self._reopen(index - 1)
                    if bgr is None:
                        return
                now = time.monotonic()
                frame = Frame(index, _bgr_to_rgb(bgr), now - self._start, captured=now)
                index += 1
                # Only this thread puts, so after taking the stale frame the put cannot block.
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass
                self._queue.put_nowait(frame)
        except cv2.error as exc:
            self._error = SourceError(self._read_failed(exc))

    def _reopen(self, last_index: int) -> np.ndarray | None:
        """Reopen a feed that stopped, with backoff; its first frame, or None when it stays away.

        A feed is back when it delivers a frame, not when it merely opens: a server that
        accepts the connection but sends nothing is still away, and the window runs on.
        """
        window = self._reconnect.window_s
        if window <= 0:
            logger.warning("{} stopped delivering frames after frame {}", self.label, last_index)
            return None
        logger.warning(
            "{} stopped delivering frames after frame {}; reconnecting for up to {:g} s", self.label, last_index, window
        )
        lost = self.down_since = time.monotonic()
        self._capture.release()
        delay = self._reconnect.first_delay_s
        while not self._stop.wait(min(delay, max(lost + window - time.monotonic(), 0.0))):
            capture = self._open_capture()
            if self._stop.is_set():
                capture.release()
                return None
            if capture.isOpened():
                ok, bgr = capture.read()
                if ok and bgr is not None:
                    self._capture = capture
                    self.down_since = None
                    self.reconnects += 1
                    logger.info("{} is back after {:.1f} s", self.label, time.monotonic() - lost)
                    return bgr
            capture.release()
            if time.monotonic() - lost >= window:
                break
            delay = min(2 * delay, self._reconnect.max_delay_s)
        # The capture is released; keep a released object so close() has one to release again harmlessly.
        self._capture = _Released()
        if not self._stop.is_set():
            self._error = SourceLostError(
                f"{self.label} did not come back within {window:g} s after frame {last_index}; "
                "check the camera and the network, or allow longer with --reconnect-s"
            )
        return None

    # -- consumer -----------------------------------------------------------------------

    def __next__(self) -> Frame:
        if self._closed:
            raise StopIteration
        while True:
            try:
                return self._queue.get(timeout=LIVE_POLL_S)
            except queue.Empty:
                if self._thread.is_alive():
                    continue
            # The reader ended; it may have put a last frame after the timeout.
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                if self._error is not None:
                    raise self._error from None
                raise StopIteration from None

    def close(self) -> None:
        """Stop and join the reader, then release the feed; safe to call twice.

        A frame left unread counts as dropped, so frames read = frames taken + `dropped`.
        """
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout=LIVE_JOIN_TIMEOUT_S)
        if self._thread.is_alive():
            logger.warning(
                "{} reader did not stop within {} s (blocked in the driver or the network); releasing anyway",
                self.label,
                LIVE_JOIN_TIMEOUT_S,
            )
        try:
            self._queue.get_nowait()
            self.dropped += 1
        except queue.Empty:
            pass
        # Released even when the join timed out: the device must be free for the next open.
        self._capture.release()


class _Released:
    """Stands for a capture that was released and could not be reopened."""

    def release(self) -> None:
        """Nothing is held."""


class CameraSource(LiveSource):
    """A local camera (`cam0`, `/dev/video0`); it ends when the device stops delivering."""

    def __init__(self, device: int, capture_factory: CaptureFactory = cv2.VideoCapture, reconnect: Reconnect = Reconnect()):
        self.device = device
        super().__init__(f"camera {device}", lambda: capture_factory(device), reconnect)

    def _open_failed(self) -> str:
        return (
            f"camera {self.device} (/dev/video{self.device}) does not open; check that it exists "
            "(ls /dev/video*) and that you may read it (group video)"
        )

    def _no_first_frame(self) -> str:
        return (
            f"camera {self.device} opened but returned no frame; check that no other program uses it "
            "and that it is a capture device (v4l2-ctl --list-devices)"
        )

    def _read_failed(self, exc: cv2.error) -> str:
        return f"camera {self.device} failed: {exc}; check the cable and the driver"
