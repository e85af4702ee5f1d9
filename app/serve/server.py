"""`--serve [HOST:]PORT`: the web page and JSON API that let a browser pick the box and watch the track.

    GET  /             the page (static files shipped in app/serve/static, no CDN, no build step)
    GET  /api/stream   MJPEG (multipart/x-mixed-replace); each part carries X-Frame-Index
    GET  /api/frame.jpg  the newest picture
    GET  /api/events   the result stream as Server-Sent Events (app/publish/sse.py; docs/service.md)
    GET  /api/status   {"state", "frame", "box", "fps", "latency_ms", "dropped", "object_score", "objects"}
                       (state, box and object_score of object 1; objects: id → {state, box, object_score})
    POST /api/prompts  a command of app/live/commands.py, or a list of them (clicks, boxes, base64 PNG masks,
                       removal) → {"prompts": [{"frame", "id", "kind"}, ...]} once queued for the loop; or, as
                       ?frame=K&id=N with Content-Type: image/png, a mask uploaded as the PNG body; bad input:
                       400 and one line; a body over MAX_PROMPT_BYTES (4 MiB): 413; a prompt the loop
                       refuses later (its frame left the history) is a `refused` event on /api/events
    POST /api/track    {"box": [x, y, w, h], "frame", "id"}: the same as a prompt with "reset": true
    DELETE /api/track/ID  the same as {"id": ID, "remove": true}
    POST /api/stop     ends the run; every output is complete
    GET  /metrics      Prometheus text format (app/publish/metrics.py)
    GET  /healthz      200 "ok", or 503 and the reason (app/publish/health.py)

Starlette served by uvicorn on a thread of its own; the tracking loop never
waits for it. Binding anything but loopback needs a token, given as `?token=`,
`Authorization: Bearer` or the cookie the page sets; without it every request
gets 401. In front of that, on every bind, `app.serve.guard` refuses a foreign
Host and forged state changes (POST and DELETE need `Content-Type:
application/json`, or image/png for the mask upload, and this page's Origin, or none).
"""

from __future__ import annotations

import hmac
import json
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from loguru import logger
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.live.commands import BODY_HELP, Command, command_json, parse_command, parse_commands, parse_mask_upload
from app.live.control import TrackController
from app.media.prompt import PromptError
from app.publish.sse import SseBroadcaster, SseEndpoint
from app.serve.address import HostPolicy, ServeError, host_policy, is_loopback
from app.serve.guard import PNG_TYPE, RequestGuard, media_type
from app.serve.hub import FrameHub

STATIC_DIR = Path(__file__).resolve().parent / "static"
TOKEN_BYTES = 16
TOKEN_COOKIE = "samurai_token"
REFUSED = "refused"  # the SSE event of a prompt the loop refused after POST /api/prompts took it
BOUNDARY = "frame"
# Seconds uvicorn waits for open streams when shutting down.
SHUTDOWN_GRACE_S = 1
SERVER_JOIN_S = 5.0
HTTP_BAD_REQUEST, HTTP_UNAUTHORIZED, HTTP_NOT_FOUND, HTTP_TOO_LARGE = 400, 401, 404, 413
# A track command is a few dozen bytes; a body is read no further than this.
MAX_BODY_BYTES = 16 * 1024
# A prompt may carry a mask, as base64 PNG or uploaded as a PNG body: sized for the largest source frame's mask, a
# 4K (3840x2160) one of pixel noise, the worst case for PNG's compression (1.8 MiB, 2.4 MiB as base64;
# tests/test_mask_upload.py sends it). Every other route keeps MAX_BODY_BYTES.
MAX_PROMPT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Probes:
    """What a monitoring system asks: the metrics' text (and its content type) and the health (code, reason)."""

    metrics: Callable[[], bytes]
    metrics_type: str
    health: Callable[[], tuple[int, str]]


class TokenGate:
    """ASGI middleware: every HTTP request needs the token (query, Bearer header or cookie), else 401."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token

    def _given(self, request: Request) -> tuple[str | None, bool]:
        if "token" in request.query_params:
            return request.query_params["token"], True
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return header[len("bearer ") :].strip(), False
        return request.cookies.get(TOKEN_COOKIE), False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given, from_query = self._given(Request(scope))
        if given is None or not hmac.compare_digest(given.encode(), self.token.encode()):
            response = PlainTextResponse(
                "missing or wrong token: open the address with ?token=... that the server printed when it started",
                status_code=HTTP_UNAUTHORIZED,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        if not from_query:
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            # The page then calls the API and the stream without the token in its URLs.
            if message["type"] == "http.response.start":
                cookie = f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes | None:
    """The request's body, or None when it is over `limit` bytes (counted as it comes, whatever it declares)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def queued_json(commands: list[Command]) -> dict:
    """What POST /api/prompts answers: each queued prompt as parsed and checked: its frame (null: the newest), id,
    kind, and its fields in the `prompt` record's form (a box clipped to the frame; a mask not repeated)."""
    answer = []
    for command in commands:
        prompt = command.prompt
        if prompt is None:
            continue
        answer.append({"frame": command.frame, "id": prompt.obj_id, "kind": command.kind, **command_json(prompt)})
    return {"prompts": answer}


def build_app(controller: TrackController, hub: FrameHub, token: str | None, policy: HostPolicy,
              events: SseBroadcaster | None = None, probes: Probes | None = None) -> ASGIApp:
    """The routes, behind the token when there is one, behind the request guard always."""
    async def page(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def status(request: Request) -> Response:
        return JSONResponse(controller.status())

    def refused(reason: str) -> None:
        """A prompt the loop refused after the 200 (its frame left the history): the page hears it on SSE."""
        if events is not None:
            events.publish([{"type": REFUSED, "error": reason}])

    async def prompts(request: Request) -> Response:
        raw = await read_body(request, MAX_PROMPT_BYTES)
        if raw is None:
            return JSONResponse({"error": f"the body is over {MAX_PROMPT_BYTES} bytes; {BODY_HELP}"}, HTTP_TOO_LARGE)
        try:
            if media_type(request.headers) == PNG_TYPE:
                query = request.query_params
                commands = controller.submit([parse_mask_upload(query.get("frame"), query.get("id"), raw)], refused)
            else:
                commands = controller.submit(parse_commands(raw), refused)
        except PromptError as exc:
            return JSONResponse({"error": str(exc)}, HTTP_BAD_REQUEST)
        return JSONResponse(queued_json(commands))

    async def track(request: Request) -> Response:
        raw = await read_body(request)
        if raw is None:
            return JSONResponse({"error": f"the body is over {MAX_BODY_BYTES} bytes; {BODY_HELP}"}, HTTP_TOO_LARGE)
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or "box" not in body:
                raise PromptError(f"no box given; {BODY_HELP}")
            (command,) = controller.submit([parse_command({**body, "reset": True})])
        except (ValueError, RecursionError) as exc:  # PromptError, or a body that is not JSON
            message = str(exc) if isinstance(exc, PromptError) else f"the body is not JSON; {BODY_HELP}"
            return JSONResponse({"error": message}, HTTP_BAD_REQUEST)
        box = command.prompt.box
        return JSONResponse({"id": command.prompt.obj_id, "box": [box.x, box.y, box.w, box.h]})

    async def drop(request: Request) -> Response:
        object_id = request.path_params["object_id"]
        if not controller.drop(object_id):
            return JSONResponse({"error": f"object {object_id} is not tracked"}, HTTP_NOT_FOUND)
        logger.info("object {} dropped from the page", object_id)
        return JSONResponse({"id": object_id, "state": "dropped"})

    async def stop(request: Request) -> Response:
        logger.info("stop requested from the page")
        controller.stop()
        return JSONResponse({"state": "ended"})

    async def frame_jpeg(request: Request) -> Response:
        picture = hub.latest()
        if picture is None:
            return PlainTextResponse("no frame yet", HTTP_NOT_FOUND)
        return Response(picture.jpeg, media_type="image/jpeg", headers={"X-Frame-Index": str(picture.frame_index)})

    async def stream(request: Request) -> Response:
        async def parts():
            version = 0
            while (picture := await hub.next_picture(version)) is not None:
                version = picture.version
                head = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(picture.jpeg)}\r\n"
                    f"X-Frame-Index: {picture.frame_index}\r\n\r\n"
                )
                yield head.encode() + picture.jpeg + b"\r\n"

        return StreamingResponse(
            parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}", headers={"Cache-Control": "no-store"}
        )

    routes = [
        Route("/", page),
        Route("/api/status", status),
        Route("/api/prompts", prompts, methods=["POST"]),
        Route("/api/track", track, methods=["POST"]),
        Route("/api/track/{object_id:int}", drop, methods=["DELETE"]),
        Route("/api/stop", stop, methods=["POST"]),
        Route("/api/frame.jpg", frame_jpeg),
        Route("/api/stream", stream),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    if events is not None:
        routes.append(Route("/api/events", SseEndpoint(events), methods=["GET"]))
    if probes is not None:
        async def metrics(request: Request) -> Response:
            return Response(probes.metrics(), media_type=probes.metrics_type)

        async def healthz(request: Request) -> Response:
            code, reason = probes.health()
            return PlainTextResponse(reason + "\n", code)

        routes += [Route("/metrics", metrics), Route("/healthz", healthz)]
    app: ASGIApp = Starlette(routes=routes)
    if token is not None:
        app = TokenGate(app, token)
    return RequestGuard(app, policy)


class WebServer:
    """The page and API on HOST:PORT, served from a background thread until `close()`."""

    def __init__(self, controller: TrackController, hub: FrameHub, host: str, port: int, token: str | None = None,
                 events: SseBroadcaster | None = None, probes: Probes | None = None,
                 allowed_hosts: Sequence[str] = ()):
        self.host, self.port, self.hub = host, port, hub
        self._token_given = token is not None
        self.events = events if events is not None else SseBroadcaster(controller.status)
        self.token = None if is_loopback(host) and token is None else (token or secrets.token_urlsafe(TOKEN_BYTES))
        self._socket = self._bind(host, port)
        config = uvicorn.Config(
            build_app(controller, hub, self.token, host_policy(host, allowed_hosts), self.events, probes),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="web-server", daemon=True
        )
        self._thread.start()
        self._announce()

    @staticmethod
    def _bind(host: str, port: int) -> socket.socket:
        """Bind here, not in uvicorn, so that a port in use is one line instead of uvicorn's exit."""
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise ServeError(
                f"cannot serve on {host}:{port} ({exc.strerror or exc}); pick another port with --serve HOST:PORT"
            ) from None
        sock.listen()
        sock.set_inheritable(True)
        return sock

    def _announce(self) -> None:
        shown_host = socket.gethostname() if self.host in ("0.0.0.0", "::") else self.host
        url = f"http://{shown_host}:{self.port}/"
        if self.token is None:
            logger.info("open {} to draw the box and watch (from another machine: ssh -L {}:127.0.0.1:{} THIS_BOARD)",
                        url, self.port, self.port)
        elif self._token_given:
            # The user has it; a service's log (the journal) must not.
            logger.info("open {}?token=YOUR_TOKEN to draw the box and watch", url)
        else:
            # Printed once, on the console only: it is the key to the page.
            logger.info("open {}?token={} to draw the box and watch", url, self.token)

    def close(self) -> None:
        self.hub.close()
        self.events.close()
        self._server.should_exit = True
        self._thread.join(SERVER_JOIN_S)
        self._socket.close()
