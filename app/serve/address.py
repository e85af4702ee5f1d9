"""Where `--serve` listens: parsing `[HOST:]PORT` and telling loopback from the network (which needs a token)."""

from __future__ import annotations

import ipaddress

DEFAULT_HOST = "127.0.0.1"
MAX_PORT = 65535


class ServeError(ValueError):
    """The server cannot start (bad --serve value, port in use); the one-line message says what to do."""


def parse_serve(spec: str) -> tuple[str, int]:
    """`8080` → (127.0.0.1, 8080); `0.0.0.0:8080` → (0.0.0.0, 8080); `[::1]:8080` → (::1, 8080)."""
    host, _, port = spec.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or not 0 < int(port) <= MAX_PORT:
        raise ServeError(f"--serve {spec!r} needs a port 1-65535, as PORT or HOST:PORT (e.g. --serve 8080)")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
