"""Result writers for the CLI: boxes, masks, an annotated video, the decision log and a JSON summary.

Each writer is a context manager whose files are complete and readable however
the run ends (Ctrl-C, an error, a full disk): track and JSON lines are written
whole or not at all (`LineFile`), masks and the summary are written to a
temporary name and renamed, and the video is finalised by `close()`, which
leaving the `with` block always calls, with room kept on the disk to do it.
`close()` may be called twice. A write that fails raises `WriteFailed`, naming
the file; the loop turns it into a stop (`app.live.pipeline.OutputGuard`).

Writers are keyed by `Frame.index` (see `app.media.sources`): line N of `track.txt`
and `masks/0000N.png` belong to frame N of the source. With several objects,
each has its `track_<id>.txt`, and a frame's masks are one indexed PNG whose
pixel value is the object id, with the DAVIS palette (the convention of video
object segmentation benchmarks). A result without a box (lost) is a `0,0,0,0` line.
What is drawn on the video is `app.media.drawing`'s; the decision log's record is
`app.samurai.decisions`'.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from loguru import logger
from PIL import Image

from app.samurai.boxes import MISSING_BOX, box_or_missing

TRACK_FILE = "track.txt"
TIMESTAMP_DECIMALS = 3
MASK_DIR = "masks"
VIDEO_FILE = "track.mp4"
MASK_NAME_DIGITS = 5
MASK_ON = 255
VIDEO_FOURCC = "mp4v"
BOX_VALUES = 4
JSON_INDENT = 2
_TMP_SUFFIX = ".tmp"
SUMMARY_FILE = "summary.json"
# New files get these permissions before the umask, as open() gives them.
FILE_MODE = 0o666
# What closing the video writes: FFmpeg's output buffer, the mp4 index (sample sizes and offsets, under
# 16 bytes a frame) and its fixed part. A video that cannot write them is unreadable, so the video stops
# while they still fit, with this margin left for the run's last lines and summary.json.
FFMPEG_IO_BUFFER_BYTES = 32 * 1024
MP4_INDEX_BYTES_PER_FRAME = 16
CLOSE_MARGIN_BYTES = 64 * 1024
BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
BYTES_PER_UNIT = 1024
# Several objects: label masks with the DAVIS palette, one colour per object id.
PALETTE_SIZE = 256
MAX_OBJECT_ID = PALETTE_SIZE - 1
_PALETTE_BITS = 8


def track_file(obj_id: int) -> str:
    """A tracked object's box file when there are several objects."""
    return f"track_{obj_id}.txt"


def frames_file(track_name: str) -> str:
    """The live frames file beside a box file: track.txt → frames.txt, track_2.txt → frames_2.txt."""
    return track_name.replace("track", "frames", 1)


def davis_palette() -> np.ndarray:
    """(256, 3) uint8 RGB: the PASCAL VOC / DAVIS label colours (0 black, 1 dark red, 2 dark green, ...).

    Label bits are spread over the colour bits from the most significant down:
    bit 3k of the label sets red bit 7-k, bit 3k+1 green, bit 3k+2 blue.
    """
    palette = np.zeros((PALETTE_SIZE, 3), np.uint8)
    for label in range(PALETTE_SIZE):
        value = label
        for shift in range(_PALETTE_BITS - 1, -1, -1):
            for channel in range(3):
                palette[label, channel] |= ((value >> channel) & 1) << shift
            value >>= 3
    return palette


class OutputError(OSError):
    """An output file that cannot be written; the one-line message says what to check."""


class WriteFailed(OSError):
    """A result file that could not be written while the run went on (a full disk, a quota, an I/O error).

    `filename` is the file. Unlike a network sink's error it stops the run: its results would be incomplete.
    """


class OutputFailed(Exception):
    """The run stopped because a result file could not be written; the message names it and the space left."""

    def __init__(self, error: OSError):
        self.path = error.filename
        self.reason = error.strerror or str(error)
        self.free_bytes = free_space(self.path) if self.path else None
        free = "" if self.free_bytes is None else f"; {format_bytes(self.free_bytes)} free there"
        super().__init__(
            f"cannot write {self.path or 'an output'} ({self.reason}{free}): the run stopped and every output is "
            "complete up to the last frame written; free some space or write to another disk, then start again"
        )


def free_space(path: str | os.PathLike) -> int | None:
    """Bytes free to this user on the file system that holds `path` (or would: its nearest existing folder)."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def format_bytes(count: int) -> str:
    value, unit = float(count), BYTE_UNITS[0]
    for unit in BYTE_UNITS:
        if value < BYTES_PER_UNIT or unit == BYTE_UNITS[-1]:
            break
        value /= BYTES_PER_UNIT
    return f"{count} B" if unit == BYTE_UNITS[0] else f"{value:.1f} {unit}"


class LineFile:
    """A text file of whole lines, unbuffered: each write lands whole or, when it fails, not at all.

    A full disk can take half of a write; the file is cut back to its last whole line, so
    every line a reader finds parses. `append` keeps what the file held (JSON lines of earlier runs).
    """

    def __init__(self, path: Path | str, append: bool = False):
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        self._fd: int | None = os.open(self.path, flags, FILE_MODE)
        self._size = self._before = os.fstat(self._fd).st_size

    def write(self, text: str) -> None:
        data = text.encode()
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as exc:
            self._cut(self._size)
            raise WriteFailed(exc.errno, exc.strerror or str(exc), str(self.path)) from None
        self._before, self._size = self._size, self._size + len(data)

    def undo(self) -> None:
        """Take the last write back (its companion line in another file could not be written)."""
        self._cut(self._before)
        self._size = self._before

    def _cut(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
        except OSError:
            pass  # the write's own error is what the user needs; a cut that fails leaves the partial line

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _check_mask(mask: np.ndarray) -> None:
    if mask.ndim != 2 or mask.dtype != np.bool_:
        raise ValueError(
            f"mask must be a 2-D bool array, got {mask.shape} {mask.dtype}; threshold logits first (logits > 0)"
        )


def prepare_folder(path: Path, option: str) -> None:
    """Create an output folder now, before any model loads, or say in one line why it cannot be one."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{option} {path} is a file, not a folder; pass a folder for the results") from None
    except NotADirectoryError:
        raise OutputError(f"{option} {path} lies under a file, not a folder; pass a folder for the results") from None
    except OSError as exc:
        raise OutputError(f"cannot create {option} {path} ({exc.strerror or exc}); pass a writable folder") from None


def replace_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name, then rename: an interrupt or a full disk leaves the old file or the new, never half."""
    tmp = path.with_name(path.name + _TMP_SUFFIX)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WriteFailed(exc.errno, exc.strerror or str(exc), str(path)) from None


class TrackWriter:
    """`DIR/track.txt` (or another name): one `x,y,w,h` line of ints per source frame, flushed as it is written.

    A frame without a box (the object is lost, or the source skipped the frame) is a `0,0,0,0` line.
    """

    def __init__(self, directory: Path | str, name: str = TRACK_FILE):
        self.path = Path(directory) / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = LineFile(self.path)
        self._next_index = 0

    def write(self, index: int, box: Sequence[float] | None) -> None:
        """Write frame `index`'s box (None: it has none), rounded to whole pixels.

        Frames the source skipped get `0,0,0,0` lines, so line N stays frame N.
        """
        box = box_or_missing(box)
        if len(box) != BOX_VALUES:
            raise ValueError(f"box must have {BOX_VALUES} values x,y,w,h, got {len(box)}")
        if index < self._next_index:
            raise ValueError(f"frame {index} comes after frame {self._next_index - 1}; write frames in order")
        if index > self._next_index:
            # Debug, not warning: the source already warned about each skipped frame, and a
            # live camera that drops frames behind a slow tracker would warn on every frame.
            logger.debug(
                "frames {}-{} have no result (skipped by the source); writing {} for them",
                self._next_index,
                index - 1,
                MISSING_BOX,
            )
        lines = [MISSING_BOX] * (index - self._next_index) + [tuple(round(float(value)) for value in box)]
        self._file.write("".join(",".join(str(value) for value in line) + "\n" for line in lines))
        self._next_index = index + 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TrackWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LiveTrackWriter(TrackWriter):
    """A live source's `track.txt`: one line per tracked frame, and `frames.txt` beside it saying which.

    A camera tracked at 1 FPS of its 30 drops most frames; writing them as `0,0,0,0`
    would make them read as "lost". Here line N of `frames.txt` is `index,time`
    (the source's frame index and timestamp in seconds) of line N of `track.txt`:
    a dropped frame is absent from both, a lost object is a `0,0,0,0` line.
    """

    def __init__(self, directory: Path | str, name: str = TRACK_FILE):
        super().__init__(directory, name)
        self.frames_path = self.path.with_name(frames_file(name))
        self._frames = LineFile(self.frames_path)

    def write(self, index: int, box: Sequence[float] | None, timestamp: float = 0.0) -> None:  # type: ignore[override]
        if index < self._next_index:
            raise ValueError(f"frame {index} comes after frame {self._next_index - 1}; write frames in order")
        self._next_index = index  # no filler lines: the frame index is in frames.txt
        super().write(index, box)
        try:
            self._frames.write(f"{index},{timestamp:.{TIMESTAMP_DECIMALS}f}\n")
        except WriteFailed:
            self._file.undo()  # line N of track.txt stays line N of frames.txt
            raise

    def close(self) -> None:
        super().close()
        self._frames.close()


class MaskWriter:
    """`DIR/masks/NNNNN.png`: 8-bit single-channel PNGs, 255 where the mask is true, named by frame index."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory) / MASK_DIR
        self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, index: int, mask: np.ndarray) -> Path:
        """Write frame `index`'s (H, W) bool mask; returns the file's path."""
        _check_mask(mask)
        ok, png = cv2.imencode(".png", mask.astype(np.uint8) * MASK_ON)
        if not ok:
            raise OutputError(f"cv2.imencode failed to encode the mask of frame {index} as PNG")
        return self._save(index, png.tobytes())

    def _save(self, index: int, png: bytes) -> Path:
        path = self.directory / f"{index:0{MASK_NAME_DIGITS}d}.png"
        replace_atomically(path, png)
        return path

    def close(self) -> None:
        """Every mask is complete once `write` returns; nothing stays open."""

    def __enter__(self) -> MaskWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LabelMaskWriter(MaskWriter):
    """`DIR/masks/NNNNN.png`: indexed PNGs with the DAVIS palette whose pixel value is the object id (0 background)."""

    def __init__(self, directory: Path | str):
        super().__init__(directory)
        self._palette = davis_palette().ravel().tolist()

    def write(self, index: int, masks: Mapping[int, np.ndarray]) -> Path:  # type: ignore[override]
        """Write frame `index`'s masks by object id; where masks overlap the smaller id wins."""
        labels = None
        for obj_id in sorted(masks, reverse=True):
            if not 0 < obj_id <= MAX_OBJECT_ID:
                raise ValueError(f"object id {obj_id} does not fit an indexed PNG; use ids 1..{MAX_OBJECT_ID}")
            mask = masks[obj_id]
            _check_mask(mask)
            if labels is None:
                labels = np.zeros(mask.shape, np.uint8)
            labels[mask] = obj_id
        if labels is None:
            raise ValueError(f"frame {index} has no object mask to write")
        image = Image.fromarray(labels, mode="P")
        image.putpalette(self._palette)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return self._save(index, buffer.getvalue())


class VideoWriter:
    """`DIR/track.mp4` (fourcc mp4v) of annotated frames; `frame_size` is (width, height).

    FFmpeg reports no failed write: once one fails the file stays unplayable (no index). So a frame
    is written only while the disk keeps room to close the video (`room_to_close`); otherwise the
    write raises `WriteFailed` and the video closes playable with the frames it has.
    """

    def __init__(self, directory: Path | str, fps: float, frame_size: tuple[int, int]):
        if fps <= 0:
            raise ValueError(f"video frame rate {fps} must be > 0")
        self.path = Path(directory) / VIDEO_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.frame_size = frame_size
        self.frames_written = 0
        self._largest_step = 0  # the most the file grew by in one write: the next frame may need as much
        self._closed = False
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, frame_size)
        if not self._writer.isOpened():
            self._closed = True
            raise OutputError(
                f"cv2.VideoWriter cannot open {self.path} with fourcc {VIDEO_FOURCC}; "
                "check that the folder is writable and OpenCV was built with FFmpeg"
            )

    def write(self, image: np.ndarray) -> None:
        """Append an (H, W, 3) uint8 RGB frame as it is (drawn on by `app.media.drawing.annotate`)."""
        width, height = self.frame_size
        # cv2.VideoWriter silently drops frames of another size, which would shorten the video.
        if image.shape != (height, width, 3) or image.dtype != np.uint8:
            raise ValueError(f"frame must be ({height}, {width}, 3) uint8 RGB, got {image.shape} {image.dtype}")
        needed = self.room_to_close()
        free = free_space(self.path)
        if free is not None and free < needed:
            raise WriteFailed(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: {format_bytes(needed)} are kept "
                              "to close the video playable", str(self.path))
        size = self._size()
        self._writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self._largest_step = max(self._largest_step, self._size() - size)
        self.frames_written += 1

    def room_to_close(self) -> int:
        """Bytes the disk must keep free for one more frame and then the close (buffer, index, margin)."""
        index = MP4_INDEX_BYTES_PER_FRAME * (self.frames_written + 1)
        return self._largest_step + FFMPEG_IO_BUFFER_BYTES + index + CLOSE_MARGIN_BYTES

    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def close(self) -> None:
        """Release the writer, which writes the index that makes the mp4 playable."""
        if self._closed:
            return
        self._closed = True
        self._writer.release()
        if self.frames_written == 0:
            # An mp4 without frames is a header no player opens.
            self.path.unlink(missing_ok=True)
            logger.warning("no frames were written; removed the empty {}", self.path)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _json_default(value: Any) -> Any:
    """Numpy scalars and arrays, and paths, as JSON values; anything else is a caller's bug."""
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"summary value {value!r} of type {type(value).__name__} is not JSON serialisable")


def write_summary(path: Path | str, summary: Mapping[str, Any]) -> None:
    """Write `summary` as indented JSON, replacing the file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=JSON_INDENT, default=_json_default) + "\n"
    replace_atomically(path, text.encode())


class DecisionLog:
    """`FILE.jsonl`: one JSON line per frame and object with what the tracker decided and why
    (the record of `app.samurai.decisions.decision_record`).

    Lines are written whole as they come (`LineFile`), so an interrupted run leaves whole lines. The file
    is appended to, so a restart keeps the earlier runs; each line carries its run's start (`run`).
    """

    def __init__(self, path: Path | str, run: str | None = None):
        self.path = Path(path)
        self.run = run
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = LineFile(self.path, append=True)

    def write(self, record: Mapping[str, Any]) -> None:
        line = {**record, "run": self.run} if self.run is not None else record
        self._file.write(json.dumps(line, default=_json_default) + "\n")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
