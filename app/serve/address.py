"""Where `--serve` listens: parsing `[HOST:]PORT`, telling loopback from the network (which needs a token),
reading the token from a file (`--token-file`, so that it is not on a command line `ps` shows), and the names
a request's `Host` may carry (`--allowed-host`)."""

from __future__ import annotations

import argparse
import ipaddress
import re
import socket
import stat
from collections.abc import Iterable
from dataclasses import dataclass
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


def is_token(text: str) -> bool:
    """One word: what a page token can be (an empty or spaced one could never be typed back)."""
    return bool(text) and not any(ch.isspace() for ch in text)


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
    if not is_token(token):
        raise ServeError(f"--token-file {path} holds no token (empty, or several words); write one word in it")
    return token


# Names a loopback bind answers to besides its own address: what a browser or an SSH tunnel sends as Host.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_HOSTS = ("0.0.0.0", "::")
DEFAULT_PORTS = {"http": 80, "https": 443}
# A DNS name: dot-separated labels of letters, digits and inner hyphens (RFC 1123), 253 characters at most;
# underscores too, which container networks put in service names.
MAX_NAME_CHARS = 253
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_dns_name(name: str) -> bool:
    return len(name) <= MAX_NAME_CHARS and all(_LABEL.fullmatch(label) for label in name.split("."))


def normal_name(name: str) -> str:
    """The form names are compared in: lower case, no brackets around IPv6, no trailing dot."""
    return name.strip("[]").rstrip(".").lower()


def allowed_host_name(text: str) -> str:
    """The argparse type of `--allowed-host`: a DNS name or an IP address, as the browser's address bar shows it."""
    name = normal_name(text)
    if not (_is_ip(name) or _is_dns_name(name)):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a host name: give the name alone, without scheme, port or path "
            "(e.g. --allowed-host board.example.com)")
    return name


def split_authority(authority: str) -> tuple[str, int | None] | None:
    """`Host` header → (name, port or None); None when it is not one (`[::1]:8080` → ("::1", 8080))."""
    name, port = authority, ""
    if authority.startswith("["):
        name, bracket, rest = authority[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    elif authority.count(":") == 1:
        name, _, port = authority.partition(":")
    if (port and not port.isdigit()) or (port and int(port) > MAX_PORT) or authority.endswith(":"):
        return None
    name = normal_name(name)
    if not (_is_ip(name) or _is_dns_name(name)):
        return None
    return name, int(port) if port else None


@dataclass(frozen=True)
class HostPolicy:
    """Which `Host` names a request may carry, so that a page served under a foreign name (DNS rebinding) gets
    nothing. `extra` are the operator's `--allowed-host` names, also trusted as the origin of state changes (a
    proxy may rewrite Host); `any_ip` accepts every IP-literal Host (a 0.0.0.0 bind: a browser that sends one was
    pointed at an address of this machine, which no foreign page can name)."""

    names: frozenset[str]
    extra: frozenset[str]
    any_ip: bool

    def allows(self, name: str) -> bool:
        return name in self.names or name in self.extra or (self.any_ip and _is_ip(name))


def host_policy(bind_host: str, extra: Iterable[str] = ()) -> HostPolicy:
    """The names a server bound to `bind_host` answers to: its address, localhost, the loopback addresses on a
    loopback bind, this machine's name on any other (the address the run prints), and `extra`."""
    names = {normal_name(bind_host), "localhost"}
    if is_loopback(bind_host):
        names.update(LOOPBACK_NAMES)
    else:
        names.add(normal_name(socket.gethostname()))
    return HostPolicy(frozenset(names), frozenset(normal_name(name) for name in extra), bind_host in WILDCARD_HOSTS)


def warn_if_others_can_read(path: Path) -> None:
    """One warning when users other than the owner may read the token file: the token is then as good as theirs."""
    mode = path.stat().st_mode
    if mode & READABLE_BY_OTHERS:
        logger.warning("--token-file {} can be read by other users (mode {:o}); chmod 600 {} (owned by the user "
                       "that runs the tracker)", path, stat.S_IMODE(mode), path)
