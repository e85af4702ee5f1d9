"""Where `--serve` listens: parsing `[HOST:]PORT`, telling loopback from the network (which needs a token),
and reading the token from a file (`--token-file`, so that it is not on a command line `ps` shows)."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from loguru import logger

DEFAULT_HOST = "127.0.0.1"
MAX_PORT = 65535
# Permission bits that let users other than the file's owner read it.
READABLE_BY_OTHERS = stat.S_IRGRP | stat.S_IROTH


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


def read_token_file(path: Path, given_token: str | None) -> str:
    """The token in `path` (surrounding whitespace stripped); a `ServeError` for anything that cannot be one."""
    if given_token is not None:
        raise ServeError("give the token one way: --token or --token-file")
    try:
        token = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
        raise ServeError(f"cannot read --token-file {path} ({reason}); write the token in it, readable by this user")\
            from None
    if not token or any(ch.isspace() for ch in token):
        raise ServeError(f"--token-file {path} holds no token (empty, or several words); write one word in it")
    return token


def warn_if_others_can_read(path: Path) -> None:
    """One warning when users other than the owner may read the token file: the token is then as good as theirs."""
    mode = path.stat().st_mode
    if mode & READABLE_BY_OTHERS:
        logger.warning("--token-file {} can be read by other users (mode {:o}); chmod 600 {} (owned by the user "
                       "that runs the tracker)", path, stat.S_IMODE(mode), path)
