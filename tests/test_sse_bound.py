"""The SSE client queue that `app/run.py --serve` builds is bounded at the size docs/service.md states.

Every other SSE test passes its own capacity, so the default bound went untested: here the server is built as
app/run.py builds it (its own argument parser and start_server), and a client that reads nothing must stop at the
documented number of events, losing the rest.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import ExitStack
from pathlib import Path

from PIL import Image

from app.live.control import TrackController
from app.media.sources import FolderSource
from app.publish import sse
from app.run import parse_args
from app.serve.start import start_server
from tests.live_helpers import REPO, free_port

SERVICE_DOC = REPO / "docs" / "service.md"
DOCUMENTED_BOUND = re.compile(r"bounded\s+queue\s+\((\d+)\s+events\)")
FRAME_SIZE = (64, 48)
BEYOND = 7  # events published past the bound: fewer than a queue's worth, so the client is not cut off yet


def _documented_bound() -> int:
    found = DOCUMENTED_BOUND.findall(SERVICE_DOC.read_text())
    assert len(found) == 1, f"docs/service.md should state the SSE client queue once: {found}"
    return int(found[0])


def test_the_documented_bound_is_the_constant():
    assert _documented_bound() == sse.CLIENT_QUEUE


def test_a_client_that_reads_nothing_stops_at_the_documented_bound(tmp_path: Path):
    bound = _documented_bound()
    Image.new("RGB", FRAME_SIZE).save(tmp_path / "0.png")
    args = parse_args(["--video", str(tmp_path), "--serve", f"127.0.0.1:{free_port()}"])
    controller = TrackController(FRAME_SIZE)
    with ExitStack() as stack:
        server, _ = start_server(args, controller, FolderSource(tmp_path), stack)
        events = server.events

        async def never_read() -> sse.SseClient:
            client = events.subscribe()
            for frame in range(bound + BEYOND):
                events.publish([{"type": "track", "frame": frame}])
            return client

        client = asyncio.run(never_read())
    assert len(client.queue) == bound and not client.cut
    assert client.lost == BEYOND
    assert b'"frame": %d}' % BEYOND in client.queue[0], "the oldest events go first"
