"""Result writers for the CLI: boxes, masks, the decision log and a JSON summary, and the names of a run's files.

Each writer is a context manager whose files are complete and readable however
the run ends (Ctrl-C, an error, a full disk): track and JSON lines are written
whole or not at all (`LineFile`), masks and the summary are written to a
temporary name and renamed (`app.media.whole_files`); the annotated video is
`app.media.video_file`'s, closed playable with room kept on the disk to do it.
`close()` may be called twice. A write that fails raises `WriteFailed`, naming
the file; the loop turns it into a stop (`app.live.output_guard.OutputGuard`).

Writers are keyed by `Frame.index` (see `app.media.sources`): line N of `track.txt`
and `masks/0000N.png` belong to frame N of the source. With several objects,
each has its `track_<id>.txt`, and a frame's masks are one indexed PNG whose
pixel value is the object id, with the DAVIS palette (the convention of video
object segmentation benchmarks). A result without a box (lost) is a `0,0,0,0` line.
What is drawn on the video is `app.media.drawing`'s; the decision log's record is
`app.samurai.decisions`'.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from loguru import logger
from PIL import Image

from app.media.whole_files import LineFile, OutputError, WriteFailed, replace_atomically
from app.samurai.boxes import MISSING_BOX, box_or_missing

TRACK_FILE = "track.txt"
TIMESTAMP_DECIMALS = 3
MASK_DIR = "masks"
PROMPT_MASK_DIR = "prompt_masks"  # the masks of mask prompts (app/live/prompt_masks.py)
VIDEO_FILE = "track.mp4"
MASK_NAME_DIGITS = 5
MASK_ON = 255
BOX_VALUES = 4
JSON_INDENT = 2
SUMMARY_FILE = "summary.json"
# Several objects: label masks with the DAVIS palette, one colour per object id.
PALETTE_SIZE = 256
MAX_OBJECT_ID = PALETTE_SIZE - 1
_PALETTE_BITS = 8


def track_file(obj_id: int) -> str:
    """A tracked object's box file when there are several objects."""
    return f"track_{obj_id}.txt"


def mask_dir(obj_id: int) -> str:
    """The mask folder of an object added to a single-object run (by a prompt): masks/ stays the first object's."""
    return f"{MASK_DIR}_{obj_id}"


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


def _check_mask(mask: np.ndarray) -> None:
    if mask.ndim != 2 or mask.dtype != np.bool_:
        raise ValueError(
            f"mask must be a 2-D bool array, got {mask.shape} {mask.dtype}; threshold logits first (logits > 0)"
        )


def mask_png(mask: np.ndarray) -> bytes:
    """An (H, W) bool mask as the PNG every mask file is (MASK_ON where true, 0 elsewhere), which a prompt file and
    the network doors read back."""
    _check_mask(mask)
    ok, png = cv2.imencode(".png", mask.astype(np.uint8) * MASK_ON)
    if not ok:
        raise OutputError(f"cv2.imencode failed to encode a {mask.shape} mask as PNG")
    return png.tobytes()


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

    def __init__(self, directory: Path | str, folder: str = MASK_DIR):
        self.directory = Path(directory) / folder
        self.directory.mkdir(parents=True, exist_ok=True)

    def write(self, index: int, mask: np.ndarray) -> Path:
        """Write frame `index`'s (H, W) bool mask; returns the file's path."""
        return self._save(index, mask_png(mask))

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
