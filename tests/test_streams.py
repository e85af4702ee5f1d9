"""Network streams with a scripted capture: reconnect with backoff, timeouts, masked credentials.

The real RTSP server is exercised end to end in test_rtsp.py; here the capture is
a fake so that every branch (drops, failed reopens, giving up) runs in milliseconds.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from app.media.credentials import mask_credentials, url_host
from app.media.source_spec import LiveOptions, open_source
from app.media import live_sources
from app.media.live_sources import Reconnect
from app.media.sources import SourceError
from app.media.streams import StreamSource, is_stream_url

URL = "rtsp://admin:hunter2@127.0.0.1:8554/live"
MASKED = "rtsp://admin:***@127.0.0.1:8554/live"
FAST = Reconnect(window_s=2.0, first_delay_s=0.01, max_delay_s=0.04)
WAIT_S = 5.0
# Long enough for the reopens of the first outage on a busy machine: the waits then keep their exact delays.
BACKOFF_WINDOW_S = 2.0


def _bgr(number: int) -> np.ndarray:
    return np.full((8, 8, 3), number % 256, dtype=np.uint8)


class Session:
    """One connection: delivers `frames` frames, then the stream drops."""

    def __init__(self, frames: int, opened: bool = True):
        self.frames, self.opened, self.reads, self.released = frames, opened, 0, 0

    def isOpened(self) -> bool:
        return self.opened

    def read(self):
        if self.reads >= self.frames:
            return False, None
        self.reads += 1
        time.sleep(0.002)
        return True, _bgr(self.reads)

    def release(self) -> None:
        self.released += 1

    def get(self, prop: int) -> float:
        return 0.0


class Server:
    """Hands out sessions in order; records every open with its URL and timeout."""

    def __init__(self, sessions: list[Session]):
        self.sessions = sessions
        self.opens: list[tuple[str, float, float]] = []

    def __call__(self, url: str, timeout_s: float) -> Session:
        self.opens.append((url, timeout_s, time.monotonic()))
        return self.sessions[min(len(self.opens), len(self.sessions)) - 1]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (URL, MASKED),
        ("http://u:p@cam.local/mjpg and rtsps://v:w@h:322/x", "http://u:***@cam.local/mjpg and rtsps://v:***@h:322/x"),
        ("rtsp://user@host/x", "rtsp://user@host/x"),
        ("rtsp://host:554/x", "rtsp://host:554/x"),
        ("rtsp://u:p@ss@host/x", "rtsp://u:***@host/x"),
    ],
)
def test_mask_credentials(text: str, expected: str) -> None:
    assert mask_credentials(text) == expected


def test_url_host_and_scheme() -> None:
    assert url_host(URL) == "127.0.0.1:8554" and url_host("http://cam.local/x") == "cam.local"
    assert all(is_stream_url(u) for u in ("rtsp://h/x", "RTSPS://h/x", "http://h/x", "https://h/x"))
    assert not any(is_stream_url(u) for u in ("cam0", "/dev/video0", "clip.mp4", "rtmp://h/x"))


def test_stream_that_does_not_open_names_host_without_password() -> None:
    server = Server([Session(0, opened=False)])
    with pytest.raises(SourceError) as info:
        StreamSource(URL, 3.0, FAST, capture_factory=server)
    message = str(info.value)
    assert "127.0.0.1:8554" in message and "3 s" in message and MASKED in message
    assert "hunter2" not in message and "\n" not in message
    assert server.opens[0][:2] == (URL, 3.0), "the real URL and the timeout reach the capture"
    assert server.sessions[0].released == 1


class RecordingEvent(threading.Event):
    """A stop event that records the timeout of every wait: the reconnect backoff asks it for its delays."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        if timeout is not None:
            self.timeouts.append(timeout)
        return super().wait(timeout)


def test_stream_reconnects_with_backoff_and_keeps_counting(warnings: list[str], monkeypatch) -> None:
    # Drops after 3 frames; two reopens fail; the third delivers 4 more frames, then it drops for good.
    server = Server([Session(3), Session(0, False), Session(0, False), Session(4), Session(0, False)])
    monkeypatch.setattr(live_sources.threading, "Event", RecordingEvent)
    reconnect = Reconnect(window_s=BACKOFF_WINDOW_S, first_delay_s=0.01, max_delay_s=0.04)
    with StreamSource(URL, 1.0, reconnect, server) as source:
        assert source.label == f"stream {MASKED}"
        frames = []
        with pytest.raises(SourceError, match=f"did not come back within {BACKOFF_WINDOW_S:g} s"):
            for frame in source:
                frames.append(frame)
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices)) and indices[-1] == 6, "indices go on across the gap"
    assert len(frames) + source.dropped == 7
    stamps = [f.timestamp for f in frames]
    assert stamps == sorted(stamps)
    # First outage: 0.01, 0.02, then 0.04 brings the stream back. Second: from 0.01 again, doubling up to the
    # 0.04 cap until the window closes (the last wait is what is left of it).
    waits = source._stop.timeouts
    assert waits[:3] == [0.01, 0.02, 0.04], waits
    assert waits[3:6] == [0.01, 0.02, 0.04] and all(w == 0.04 for w in waits[6:-1]) and waits[-1] <= 0.04, waits
    assert len(server.opens) == 1 + len(waits), "one reopen after each wait"
    started = [m for m in warnings if "stopped delivering frames" in m]
    assert len(started) == 2 and all("hunter2" not in m and MASKED in m for m in started)


def test_stream_back_is_logged_once(warnings: list[str]) -> None:
    from loguru import logger

    infos: list[str] = []
    sink = logger.add(infos.append, level="INFO", format="{message}")
    try:
        server = Server([Session(2), Session(0, False), Session(1000)])
        with StreamSource(URL, 1.0, FAST, server) as source:
            frames = []
            for frame in source:
                frames.append(frame)
                if frame.index >= 4:
                    break
    finally:
        logger.remove(sink)
    assert len([m for m in infos if "is back after" in m]) == 1
    assert len([m for m in warnings if "stopped delivering" in m]) == 1


def test_a_stream_that_opens_but_sends_nothing_is_not_back() -> None:
    server = Server([Session(2), Session(0, opened=True)])
    with StreamSource(URL, 1.0, Reconnect(window_s=0.2, first_delay_s=0.01, max_delay_s=0.02), server) as source:
        with pytest.raises(SourceError, match="did not come back within 0.2 s"):
            for _frame in source:
                pass
    assert len(server.opens) > 2


def test_close_stops_a_reconnecting_reader_quickly() -> None:
    """close() interrupts the backoff wait: it returns long before the delay the reader is waiting out."""
    server = Server([Session(1), Session(0, False)])
    delay_s = 30.0
    source = StreamSource(URL, 1.0, Reconnect(window_s=2 * delay_s, first_delay_s=delay_s, max_delay_s=delay_s), server)
    next(source)
    deadline = time.monotonic() + WAIT_S
    while server.sessions[0].released == 0 and time.monotonic() < deadline:  # released just before the wait
        time.sleep(0.01)
    started = time.monotonic()
    source.close()
    assert time.monotonic() - started < delay_s / 2
    assert len(server.opens) == 1, "closed during the first wait, before any reopen"
    assert not [t for t in threading.enumerate() if t.name.endswith("-reader")]


def test_open_source_routes_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    class Probe(StreamSource):
        def __init__(self, url, timeout_s, reconnect, capture_factory=None):
            seen.update(url=url, timeout=timeout_s, window=reconnect.window_s)
            raise SourceError("probe")

    monkeypatch.setattr("app.media.source_spec.StreamSource", Probe)

    with pytest.raises(SourceError, match="probe"):
        open_source(URL, LiveOptions(timeout_s=4.0, reconnect_s=30.0))
    assert seen == {"url": URL, "timeout": 4.0, "window": 30.0}
