"""`GET /api/events`: the result stream as Server-Sent Events (`curl -N`, the browser's EventSource).

Each record is one event named after its type (`track`, `state`) whose data is
the record's JSON; after each batch of records comes a `status` event with
`/api/status`'s JSON, which is what the page shows. Each client has a bounded
queue filled from the loop's output thread, which never waits for a client: when
the queue is full the oldest event goes, and the client is told how many it lost
(a `gap` event, `{"type": "gap", "lost": N}`) before the next ones. A client that
reads nothing while a whole queue's worth is lost has stalled: it is cut off
(its connection closed) so that it holds no memory and no work.

The endpoint is a plain ASGI app (no framework needed); it runs in the web
server's event loop, one coroutine per client.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from app.publish.events import Record

# Events a client may fall behind by: about 10 s of one object at 30 FPS with its status events.
CLIENT_QUEUE = 512
GAP, STATUS = "gap", "status"
# uvicorn logs this when an app ends a response it started; a cut-off client's connection ends so on purpose.
_CUT_OFF_MESSAGE = "ASGI callable returned without completing response."


def sse_event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


@dataclass(eq=False)
class SseClient:
    """One connection's queue; `lost` counts every event it lost, `cut` is set when it was cut off."""

    number: int
    loop: asyncio.AbstractEventLoop
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # set when cut off, even while a send blocks
    queue: deque = field(default_factory=deque)
    lost: int = 0
    unreported: int = 0  # lost since the client last read
    cut: bool = False


class SseBroadcaster:
    """A result-stream sink that fans records out to every connected client without ever waiting for one."""

    def __init__(self, status: Callable[[], dict], capacity: int = CLIENT_QUEUE,
                 on_lost: Callable[[int], None] | None = None):
        self.status = status
        self.capacity = capacity
        self.on_lost = on_lost  # (events some client lost now), for the metrics
        self._lock = threading.Lock()
        self._clients: set[SseClient] = set()
        self._numbers = itertools.count(1)
        self.closed = False

    @property
    def clients(self) -> list[SseClient]:
        with self._lock:
            return list(self._clients)

    def subscribe(self) -> SseClient:
        client = SseClient(next(self._numbers), asyncio.get_running_loop())
        with self._lock:
            self._clients.add(client)
        return client

    def unsubscribe(self, client: SseClient) -> None:
        with self._lock:
            self._clients.discard(client)

    def publish(self, records: list[Record]) -> None:
        events = [sse_event(record["type"], record) for record in records]
        with self._lock:
            clients = list(self._clients)
        for client in clients:
            self._offer(client, events)

    def _offer(self, client: SseClient, events: list[bytes]) -> None:
        with self._lock:
            client.queue.extend(events)
            lost = max(len(client.queue) - self.capacity, 0)
            for _ in range(lost):
                client.queue.popleft()
            client.lost += lost
            client.unreported += lost
            if client.unreported >= self.capacity:
                client.cut = True
                client.queue.clear()
                self._clients.discard(client)
        if lost and self.on_lost is not None:
            self.on_lost(lost)
        self._wake(client, client.ended if client.cut else client.wake)

    @staticmethod
    def _wake(client: SseClient, event: asyncio.Event | None = None) -> None:
        try:
            client.loop.call_soon_threadsafe((event or client.wake).set)
        except RuntimeError:  # that connection's loop has closed
            pass

    def take(self, client: SseClient) -> tuple[list[bytes], int]:
        """The client's queued events and how many it lost since it last took; nothing once it is cut off (its
        connection is closing, and `unreported` keeps what it never heard of)."""
        with self._lock:
            if client.cut:
                return [], 0
            events, client.queue = list(client.queue), deque()
            lost, client.unreported = client.unreported, 0
        return events, lost

    def close(self) -> None:
        """Ends every client's stream once it has sent what is queued (the run is over)."""
        with self._lock:
            self.closed = True
            clients = list(self._clients)
        for client in clients:
            self._wake(client)


class _CutOffFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _CUT_OFF_MESSAGE


_CUT_OFF_FILTER = _CutOffFilter()


class SseEndpoint:
    """The ASGI app of `GET /api/events` over one broadcaster."""

    def __init__(self, broadcaster: SseBroadcaster):
        self.broadcaster = broadcaster
        logging.getLogger("uvicorn.error").addFilter(_CUT_OFF_FILTER)

    async def __call__(self, scope, receive, send) -> None:
        client = self.broadcaster.subscribe()
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"text/event-stream"), (b"cache-control", b"no-store"),
                (b"x-accel-buffering", b"no")]})
            pump = asyncio.ensure_future(self._pump(client, send))
            gone = asyncio.ensure_future(self._disconnected(receive))
            cut = asyncio.ensure_future(client.ended.wait())
            await asyncio.wait({pump, gone, cut}, return_when=asyncio.FIRST_COMPLETED)
            for task in (pump, gone, cut):
                task.cancel()
            if pump.done() and not pump.cancelled() and pump.exception() is None and not client.cut:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.broadcaster.unsubscribe(client)

    async def _pump(self, client: SseClient, send) -> None:
        """Send what is queued until the broadcaster closes or cuts the client off."""
        await send({"type": "http.response.body", "body": sse_event(STATUS, self.broadcaster.status()),
                    "more_body": True})
        while not self.broadcaster.closed or client.queue:
            await client.wake.wait()
            client.wake.clear()
            events, lost = self.broadcaster.take(client)
            if lost:
                events.insert(0, sse_event(GAP, {"type": GAP, "lost": lost}))
            if events:
                events.append(sse_event(STATUS, self.broadcaster.status()))
                await send({"type": "http.response.body", "body": b"".join(events), "more_body": True})

    @staticmethod
    async def _disconnected(receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
