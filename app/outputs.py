"""Result writers for the CLI: boxes, masks, an annotated video and a JSON summary.

Each writer is a context manager whose files are complete and readable however
the run ends (Ctrl-C or an error): track lines are flushed one by one, masks and
the summary are written to a temporary name and renamed, and the video is
finalised by `close()`, which leaving the `with` block always calls. `close()`
may be called twice.

Writers are keyed by `Frame.index` (see `app.sources`): line N of `track.txt`
and `masks/0000N.png` belong to frame N of the source.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from loguru import logger

TRACK_FILE = "track.txt"
MASK_DIR = "masks"
VIDEO_FILE = "track.mp4"
MASK_NAME_DIGITS = 5
MASK_ON = 255
VIDEO_FOURCC = "mp4v"
# No prediction for a frame: the same marker `box_from_mask` gives an empty mask,
# which benchmark toolkits score as a miss.
EMPTY_BOX = (0, 0, 0, 0)
BOX_VALUES = 4
# Colours and opacity of the SAM 2 notebooks' show_mask / show_box (RGB).
MASK_COLOR_RGB = (30, 144, 255)
MASK_ALPHA = 0.6
BOX_COLOR_RGB = (0, 255, 0)
BOX_THICKNESS = 2
JSON_INDENT = 2
_TMP_SUFFIX = ".tmp"


class OutputError(OSError):
    """An output file that cannot be written; the one-line message says what to check."""


def _check_mask(mask: np.ndarray) -> None:
    if mask.ndim != 2 or mask.dtype != np.bool_:
        raise ValueError(
            f"mask must be a 2-D bool array, got {mask.shape} {mask.dtype}; threshold logits first (logits > 0)"
        )


def box_from_mask(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x_min, y_min, x_max - x_min, y_max - y_min) of the true pixels of an (H, W) bool mask.

    The official SAMURAI demo's convention (no +1, so one pixel gives w = h = 0),
    kept so results compare with its output; an empty mask gives (0, 0, 0, 0).
    """
    _check_mask(mask)
    points = np.argwhere(mask)
    if len(points) == 0:
        return EMPTY_BOX
    y_min, x_min = points.min(axis=0).tolist()
    y_max, x_max = points.max(axis=0).tolist()
    return (x_min, y_min, x_max - x_min, y_max - y_min)


def replace_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name, then rename: an interrupt leaves the old file or the new, never half."""
    tmp = path.with_name(path.name + _TMP_SUFFIX)
    tmp.write_bytes(data)
    os.replace(tmp, path)


class TrackWriter:
    """`DIR/track.txt`: one `x,y,w,h` line of ints per source frame, flushed as it is written."""

    def __init__(self, directory: Path | str):
        self.path = Path(directory) / TRACK_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w")
        self._next_index = 0

    def write(self, index: int, box: Sequence[float]) -> None:
        """Write frame `index`'s box, rounded to whole pixels.

        Frames the source skipped get `0,0,0,0` lines, so line N stays frame N.
        """
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
                EMPTY_BOX,
            )
        lines = [EMPTY_BOX] * (index - self._next_index) + [tuple(round(float(value)) for value in box)]
        self._file.write("".join(",".join(str(value) for value in line) + "\n" for line in lines))
        self._file.flush()
        self._next_index = index + 1

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> TrackWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
        path = self.directory / f"{index:0{MASK_NAME_DIGITS}d}.png"
        replace_atomically(path, png.tobytes())
        return path

    def close(self) -> None:
        """Every mask is complete once `write` returns; nothing stays open."""

    def __enter__(self) -> MaskWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def annotate(image: np.ndarray, mask: np.ndarray | None = None, box: Sequence[float] | None = None) -> np.ndarray:
    """A copy of an (H, W, 3) uint8 RGB image with a translucent mask and the box drawn on it."""
    out = image.copy()
    if mask is not None:
        _check_mask(mask)
        tinted = (1 - MASK_ALPHA) * out[mask] + MASK_ALPHA * np.asarray(MASK_COLOR_RGB)
        out[mask] = np.round(tinted).astype(np.uint8)
    if box is not None:
        x, y, w, h = (round(float(value)) for value in box)
        cv2.rectangle(out, (x, y), (x + w, y + h), BOX_COLOR_RGB, BOX_THICKNESS)
    return out


class VideoWriter:
    """`DIR/track.mp4` (fourcc mp4v) of annotated frames; `frame_size` is (width, height)."""

    def __init__(self, directory: Path | str, fps: float, frame_size: tuple[int, int]):
        if fps <= 0:
            raise ValueError(f"video frame rate {fps} must be > 0")
        self.path = Path(directory) / VIDEO_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.frame_size = frame_size
        self.frames_written = 0
        self._closed = False
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*VIDEO_FOURCC), fps, frame_size)
        if not self._writer.isOpened():
            self._closed = True
            raise OutputError(
                f"cv2.VideoWriter cannot open {self.path} with fourcc {VIDEO_FOURCC}; "
                "check that the folder is writable and OpenCV was built with FFmpeg"
            )

    def write(self, image: np.ndarray, mask: np.ndarray | None = None, box: Sequence[float] | None = None) -> None:
        """Append an (H, W, 3) uint8 RGB frame with its mask and box drawn."""
        width, height = self.frame_size
        # cv2.VideoWriter silently drops frames of another size, which would shorten the video.
        if image.shape != (height, width, 3) or image.dtype != np.uint8:
            raise ValueError(f"frame must be ({height}, {width}, 3) uint8 RGB, got {image.shape} {image.dtype}")
        self._writer.write(cv2.cvtColor(annotate(image, mask, box), cv2.COLOR_RGB2BGR))
        self.frames_written += 1

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
