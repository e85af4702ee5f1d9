"""`track.mp4`: the annotated frames of a run, closed playable even when the disk fills.

FFmpeg reports no failed write, and an mp4 whose index could not be written
plays nowhere; so the writer keeps room on the disk to close the video and
stops taking frames before that room is gone.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import cv2
import numpy as np
from loguru import logger

from app.media.outputs import VIDEO_FILE
from app.media.whole_files import OutputError, WriteFailed, format_bytes, free_space

VIDEO_FOURCC = "mp4v"
# What closing the video writes: FFmpeg's output buffer, the mp4 index (sample sizes and offsets, under
# 16 bytes a frame) and its fixed part. A video that cannot write them is unreadable, so the video stops
# while they still fit, with this margin left for the run's last lines and summary.json.
FFMPEG_IO_BUFFER_BYTES = 32 * 1024
MP4_INDEX_BYTES_PER_FRAME = 16
CLOSE_MARGIN_BYTES = 64 * 1024


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
