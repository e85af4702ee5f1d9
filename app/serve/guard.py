"""Which requests reach the page at all: a foreign `Host` (DNS rebinding) and forged state changes are refused.

Any web page the user visits can make the browser send a "simple" request to
127.0.0.1 (a form's text/plain POST, with no preflight), and a page served
under a name that the attacker points at this machine reads whatever it
answers. So, on every bind, token or not:

- every request needs an allowed `Host` (`HostPolicy`), else 403 (one with
  no Host at all, HTTP/1.0, passes: a browser always sends one);
- a request that changes state (any method but GET, HEAD, OPTIONS) needs
  `Content-Type: application/json`, else 415 (a browser sends that type
  cross-site only after a CORS preflight, which this server never grants), and
  an `Origin`, when it has one, that is this page's own (or an `--allowed-host`
  name), else 403. Programs (curl, scripts) send no Origin. One route takes one
  more type: `POST /api/prompts` a mask as `image/png` (`UPLOADS`), which no
  form can send either (a browser preflights it as it does JSON).

Each refusal is one line of JSON; the log gets one warning per kind of refusal
and per minute at most, so that a page hammering the port cannot flood it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from loguru import logger
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from app.serve.address import DEFAULT_PORTS, HostPolicy, normal_name, split_authority

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_TYPE = "application/json"
PNG_TYPE = "image/png"
# (method, path) → the one content type besides JSON that it takes: never a type a form can send without a preflight
# (text/plain, application/x-www-form-urlencoded, multipart/form-data).
UPLOADS = {("POST", "/api/prompts"): PNG_TYPE}
HTTP_FORBIDDEN, HTTP_UNSUPPORTED_MEDIA_TYPE = 403, 415
# A refusal kind is logged at most once per this many seconds, with the count of those not logged.
REFUSAL_LOG_INTERVAL_S = 60.0
# Header values are the sender's text: only this much of one reaches a log line.
SHOWN_CHARS = 80
HOST, ORIGIN, CONTENT_TYPE = "host", "origin", "content type"


@dataclass(frozen=True)
class Refusal:
    kind: str
    status: int
    message: str


@dataclass
class RefusalLog:
    """One warning per kind of refusal and interval; the next one says how many went unlogged meanwhile."""

    interval_s: float = REFUSAL_LOG_INTERVAL_S
    _last: dict[str, float] = field(default_factory=dict)
    _unlogged: dict[str, int] = field(default_factory=dict)

    def __call__(self, refusal: Refusal) -> None:
        now = time.monotonic()
        last = self._last.get(refusal.kind)
        if last is not None and now - last < self.interval_s:
            self._unlogged[refusal.kind] = self._unlogged.get(refusal.kind, 0) + 1
            return
        self._last[refusal.kind] = now
        unlogged = self._unlogged.pop(refusal.kind, 0)
        more = f" ({unlogged} more refused for the same reason since the last warning)" if unlogged else ""
        logger.warning("refused a request ({}): {}{}", refusal.status, refusal.message, more)


def _shown(value: str) -> str:
    return repr(value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "...")


def _own_origin(origin: str, host: tuple[str, int | None] | None, policy: HostPolicy) -> bool:
    """`Origin` names this page: the same name and port as the request's Host, or an operator's allowed name."""
    try:
        parts = urlsplit(origin)
        name, port = normal_name(parts.hostname or ""), parts.port
    except ValueError:
        return False
    if parts.scheme not in DEFAULT_PORTS or not name:
        return False
    if name in policy.extra:
        return True
    default = DEFAULT_PORTS[parts.scheme]
    return host is not None and (name, port or default) == (host[0], host[1] or default)


def media_type(headers: Headers) -> str:
    """The request's Content-Type without its parameters, lower case ("" when it has none)."""
    return headers.get("content-type", "").partition(";")[0].strip().lower()


def refusal(method: str, path: str, headers: Headers, policy: HostPolicy) -> Refusal | None:
    """Why this request may not reach the app, or None."""
    host_header = headers.get("host")
    host = split_authority(host_header) if host_header is not None else None
    if host_header is not None and (host is None or not policy.allows(host[0])):
        return Refusal(HOST, HTTP_FORBIDDEN,
                       f"Host {_shown(host_header)} is not a name of this server; open it by its address, or start "
                       "the run with --allowed-host NAME for a name of your own (a DNS name, a proxy)")
    if method in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    if origin is not None and not _own_origin(origin, host, policy):
        return Refusal(ORIGIN, HTTP_FORBIDDEN,
                       f"{method} from the page at {_shown(origin)}: only this server's own page (or a program "
                       "sending no Origin) may change the run")
    sent = media_type(headers)
    upload = UPLOADS.get((method, path))
    if sent not in (JSON_TYPE, upload):
        also = f" (or {upload} for an upload)" if upload else ""
        return Refusal(CONTENT_TYPE, HTTP_UNSUPPORTED_MEDIA_TYPE,
                       f"{method} with Content-Type {_shown(sent)}: send Content-Type: {JSON_TYPE}{also} "
                       "(curl -H 'Content-Type: application/json')")
    return None


class RequestGuard:
    """ASGI middleware in front of everything (the token included): refuses what `refusal` names."""

    def __init__(self, app: ASGIApp, policy: HostPolicy):
        self.app, self.policy = app, policy
        self.log = RefusalLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = refusal(scope["method"], scope["path"], Headers(scope=scope), self.policy)
            if refused is not None:
                self.log(refused)
                await JSONResponse({"error": refused.message}, refused.status)(scope, receive, send)
                return
        await self.app(scope, receive, send)
