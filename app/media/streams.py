"""Network streams (rtsp://, rtsps://, http(s):// MJPEG or HLS) read with OpenCV's FFmpeg backend.

A stream is a `LiveSource`: the newest frame only, dropped frames counted, and a
stream that drops is reopened with backoff. Opening and reading give up after
`timeout_s` so that an unreachable camera ends with one line naming its host
instead of hanging. The URL's password never leaves this module unmasked.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import cv2

from app.media.credentials import mask_credentials, url_host
from app.media.live_sources import LiveSource, Reconnect
from app.media.sources import Capture, SourceError

STREAM_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://")
MS_PER_S = 1000
# RTSP over TCP: no lost packets (torn frames) behind NAT or on Wi-Fi, and a server
# that goes away closes the connection at once. Users can override it.
FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
RTSP_OVER_TCP = "rtsp_transport;tcp"

# FFmpeg's and OpenCV's own messages (quiet unless --verbose): they are several lines per
# failed open, while the run gives one line that says what to do.
FFMPEG_LOGLEVEL_ENV = "OPENCV_FFMPEG_LOGLEVEL"
FFMPEG_QUIET = "-8"

StreamCaptureFactory = Callable[[str, float], Capture]


def quiet_native_logs() -> None:
    """Silence FFmpeg (read by OpenCV at its first FFmpeg open) and OpenCV warnings."""
    os.environ.setdefault(FFMPEG_LOGLEVEL_ENV, FFMPEG_QUIET)
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def is_stream_url(spec: str) -> bool:
    return spec.lower().startswith(STREAM_SCHEMES)


def open_ffmpeg(url: str, timeout_s: float) -> Capture:
    """A `cv2.VideoCapture` on FFmpeg whose open and each read give up after `timeout_s`."""
    if url.lower().startswith(("rtsp://", "rtsps://")):
        os.environ.setdefault(FFMPEG_OPTIONS_ENV, RTSP_OVER_TCP)
    timeout_ms = int(timeout_s * MS_PER_S)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
    return cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)


class StreamSource(LiveSource):
    """A network stream; `label` (and so every message) shows the URL with its password masked."""

    def __init__(
        self,
        url: str,
        timeout_s: float = 10.0,
        reconnect: Reconnect = Reconnect(window_s=60.0),
        capture_factory: StreamCaptureFactory = open_ffmpeg,
    ):
        if timeout_s <= 0:
            raise SourceError(f"stream timeout {timeout_s:g} s must be > 0; pass --stream-timeout SECONDS")
        self.url = mask_credentials(url)
        self.host = url_host(url)
        self.timeout_s = timeout_s
        super().__init__(f"stream {self.url}", lambda: capture_factory(url, timeout_s), reconnect)

    def _open_failed(self) -> str:
        return (
            f"cannot open stream {self.url} from {self.host} within {self.timeout_s:g} s; check that the camera "
            "is on and reachable, the path and the user/password (--verbose shows FFmpeg's reason), "
            "or wait longer with --stream-timeout"
        )

    def _no_first_frame(self) -> str:
        return f"stream {self.url} from {self.host} opened but sent no frame; check that it carries video"

    def _read_failed(self, exc: cv2.error) -> str:
        return f"stream {self.url} failed: {mask_credentials(str(exc))}; check the camera and the network"
