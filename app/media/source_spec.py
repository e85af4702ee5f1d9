"""Turn what the user typed after `--video` into a frame source.

Kept apart from `sources.py` and `streams.py` so that each of them stands on its
own: streams build on the live reader in `live_sources.py`, and only this module
knows every kind of source there is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from app.media.live_sources import CameraSource, Reconnect
from app.media.sources import FolderSource, FrameSource, SourceError, VideoSource
from app.media.streams import StreamSource, is_stream_url

_CAMERA_SPEC = re.compile(r"cam(\d+)|/dev/video(\d+)")


@dataclass(frozen=True)
class LiveOptions:
    """Network-stream settings from the command line: open/read timeout and how long to keep reconnecting."""

    timeout_s: float = 10.0
    reconnect_s: float = 60.0


def parse_camera(spec: str) -> int | None:
    """The camera index named by `cam0`, `cam1`, `/dev/video0`, ...; None for anything else."""
    match = _CAMERA_SPEC.fullmatch(spec)
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


def open_source(spec: str, live: LiveOptions = LiveOptions()) -> FrameSource:
    """Open a network stream (rtsp://, http://, ...), a camera (`cam0`, `/dev/video0`), a folder or a video file."""
    if not spec.strip():
        raise SourceError("no source given; pass a video file, a folder of .jpg/.png frames or a camera (cam0)")
    if is_stream_url(spec):
        return StreamSource(spec, live.timeout_s, Reconnect(window_s=live.reconnect_s))
    device = parse_camera(spec)
    if device is not None:
        return CameraSource(device)
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path)
    if path.is_file():
        return VideoSource(path)
    raise SourceError(
        f"{spec} does not exist; pass a video file, a folder of .jpg/.png frames, a camera (cam0, /dev/video0) "
        "or a stream URL (rtsp://host/path)"
    )
