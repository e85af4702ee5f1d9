"""`--serve`: the web page, its API, metrics and health, started from the command line's options.

The serve extra (Starlette, uvicorn, prometheus-client) is optional, so its modules are imported only here, when
a page is asked for; without them the run stops with one line that says how to install them.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from typing import TYPE_CHECKING

from app.live.control import TrackController
from app.media.sources import FrameSource

if TYPE_CHECKING:
    from app.serve.metrics import RunMetrics
    from app.serve.server import WebServer


class ServeSetupError(ImportError):
    """--serve without its optional packages; the message says how to install them."""


def start_server(args: argparse.Namespace, controller: TrackController, source: FrameSource,
                 stack: ExitStack) -> tuple[WebServer | None, RunMetrics | None]:
    """The web page, API, metrics and health, and the run's metrics, or (None, None) without --serve.

    The hub the page shows is one of the loop's outputs.
    """
    if args.serve is None:
        return None, None
    try:
        from app.live.health import HealthCheck
        from app.serve.metrics import CONTENT_TYPE, RunMetrics
        from app.serve.server import Probes, WebServer
    except ImportError as exc:
        raise ServeSetupError(f"--serve needs the serve extra ({exc.name} is missing): pip install -e '.[serve]'") from None
    from app.publish.sse import SseBroadcaster
    from app.serve.address import parse_serve, read_token_file, warn_if_others_can_read
    from app.serve.hub import FrameHub

    host, port = parse_serve(args.serve)
    token = read_token_file(args.token_file, args.token) if args.token_file else args.token
    if args.token_file:
        warn_if_others_can_read(args.token_file)
    metrics = RunMetrics(source, controller)
    probes = Probes(metrics.exposition, CONTENT_TYPE, HealthCheck(source, controller, args.stream_timeout))
    events = SseBroadcaster(controller.status, on_lost=metrics.client_lost)
    metrics.count_clients(lambda: len(events.clients))
    server = WebServer(controller, FrameHub(), host, port, token, events, probes, args.allowed_host)
    stack.callback(server.close)
    return server, metrics
