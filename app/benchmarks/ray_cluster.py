"""Join the Ray cluster a benchmark runs on: a local instance for this run, the cluster this host is a node of, or
one at an address, with this host's token when the cluster asks for one.

Every way joining can fail (nothing answers, no token, the wrong token, Ray's
own refusal) is one `RunError` line that says what to do, before Ray is asked
to retry for minutes. Tokens are named by where they are, never read or shown
here: Ray reads them. Imported only for `scripts/eval.py run --ray` (through
`ray_runner.py`), so Ray stays an optional extra.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

import ray
from loguru import logger

from app.benchmarks.runner import RunError

LOCAL = "local"  # --ray without a value: start a Ray instance on this machine for this run
AUTO = "auto"  # the cluster this host is a node of
ADDRESS_VAR = "RAY_ADDRESS"  # where `auto` looks first (then the cluster `ray start` last started here)
# Ray starts workers at niceness 15; the instance a run starts for itself tracks at the priority of a local
# `--workers` pool instead. A cluster's own `ray start` decides for its nodes (docs/cluster.md).
LOCAL_WORKER_NICENESS = 0
CLIENT_SCHEME = "ray://"
CONNECT_TIMEOUT_S = 10.0  # a cluster address that does not accept a connection by then is refused
# Ray's token authentication (Ray >= 2.52): its own switch and the places it reads the token from, in its order.
AUTH_MODE_VAR = "RAY_AUTH_MODE"
TOKEN_MODE = "token"
TOKEN_VAR = "RAY_AUTH_TOKEN"
TOKEN_PATH_VAR = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = Path(".ray") / "auth_token"  # under the home folder; `ray get-auth-token --generate` writes it
# One cheap call each server answers first; a cluster with token authentication refuses it without the token.
PROBE_METHODS = {"gcs": "/ray.rpc.NodeInfoGcsService/GetClusterId", "client": "/ray.rpc.RayletDriver/ClusterInfo"}


def _check_reachable(address: str) -> None:
    """HOST:PORT and ray://HOST:PORT must answer before Ray is asked to join (it would retry for minutes)."""
    host, _, port = address.removeprefix(CLIENT_SCHEME).rpartition(":")
    if not host or not port.isdigit():
        raise RunError(f"--ray {address}: give auto, HOST:6379 or ray://HOST:10001")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise RunError(f"--ray {address}: nothing answers there ({exc}); start the head with "
                       "`ray start --head --port 6379` and pass HOST:6379, or use auto on a node of the cluster") from None


def _token_source(shown: str) -> str | None:
    """Where Ray will read this host's token from (named, never read here), or None when it has none."""
    if os.environ.get(TOKEN_VAR):
        return TOKEN_VAR
    path = os.environ.get(TOKEN_PATH_VAR)
    if path:
        try:
            readable = Path(path).stat().st_size > 0 and os.access(path, os.R_OK)
        except OSError:
            readable = False
        if not readable:  # Ray aborts the process on this rather than fall back
            raise RunError(f"--ray {shown}: {TOKEN_PATH_VAR}={path}: no readable, non-empty token file there; "
                           f"copy the head's ~/{DEFAULT_TOKEN_FILE} to that path or unset {TOKEN_PATH_VAR} "
                           "(docs/cluster.md)")
        return f"{TOKEN_PATH_VAR} ({path})"
    default = Path.home() / DEFAULT_TOKEN_FILE
    return str(default) if default.is_file() else None


def _token_header() -> tuple[tuple[str, str], ...]:
    """The authorization metadata Ray sends in token mode, built by Ray from this host's token."""
    from ray._raylet import AuthenticationTokenLoader

    loader = AuthenticationTokenLoader.instance()
    loader.reset_cache()
    return tuple(loader.get_token_for_http_header().items())


def _refused(address: str, metadata: tuple[tuple[str, str], ...] = ()) -> bool:
    """True when the server at `address` refuses a call for want of the (right) token; anything else is left to
    ray.init to report."""
    try:
        import grpc
    except ImportError:
        return False
    client = address.startswith(CLIENT_SCHEME)
    method = PROBE_METHODS["client" if client else "gcs"]
    with grpc.insecure_channel(address.removeprefix(CLIENT_SCHEME)) as channel:
        try:
            channel.unary_unary(method)(b"", timeout=CONNECT_TIMEOUT_S, metadata=metadata)
        except grpc.RpcError as exc:
            return exc.code() == grpc.StatusCode.UNAUTHENTICATED
    return False


def _token_mode(on: bool) -> None:
    """Token mode on (or back off) for this process and the ones it starts, as `ray.init` turns it on for `auto`
    (Ray 2.60 does so only there: an explicit address never turns it on by itself)."""
    from ray._raylet import Config

    if on:
        os.environ[AUTH_MODE_VAR] = TOKEN_MODE
    else:
        os.environ.pop(AUTH_MODE_VAR, None)
    Config.initialize("")


def _auto_address() -> str | None:
    """The cluster `auto` joins, found as Ray finds it (RAY_ADDRESS, then the cluster `ray start` last started on
    this host, then any running here), or None when there is none (ray.init then says so)."""
    from ray._private.services import canonicalize_bootstrap_address

    given = os.environ.get(ADDRESS_VAR, "")
    if given.startswith(CLIENT_SCHEME):
        return given
    try:
        return canonicalize_bootstrap_address(AUTO)
    except (ConnectionError, ValueError):
        return None


def authenticate(address: str, shown: str | None = None) -> None:
    """Give the cluster at `address` this host's token when it asks for one, or say in one line what is missing
    (`--ray {shown}`, the address by default).

    RAY_AUTH_MODE set by the user is Ray's to follow (`disabled` sends nothing); unset, the cluster is asked first,
    so a token goes only to a cluster that wants one.
    """
    shown = shown or address
    mode = os.environ.get(AUTH_MODE_VAR)
    if mode is not None and mode.lower() != TOKEN_MODE:
        return
    if mode is None and not _refused(address):
        return
    source = _token_source(shown)
    if source is None:
        raise RunError(
            f"--ray {shown}: the cluster uses token authentication and this host has no token: copy the head's "
            f"~/{DEFAULT_TOKEN_FILE} to ~/{DEFAULT_TOKEN_FILE} here (mode 600) or name a copy in {TOKEN_PATH_VAR} "
            "(docs/cluster.md)"
        )
    if mode is None:
        _token_mode(True)
    if _refused(address, _token_header()):
        if mode is None:
            _token_mode(False)
        raise RunError(f"--ray {shown}: the cluster refuses the token in {source}; it is not the head's "
                       f"(`ray get-auth-token` on the head prints it; docs/cluster.md)")
    if mode is None:
        logger.info("--ray {}: the cluster uses token authentication; joining with the token in {}", shown, source)


def connect(address: str) -> None:
    """Join the cluster at `address`, or start one on this machine for LOCAL."""
    quiet = {"logging_level": logging.WARNING, "configure_logging": True}
    if address not in (LOCAL, AUTO):
        _check_reachable(address)
        authenticate(address)
    elif address == AUTO and (found := _auto_address()) is not None:
        # Ray would find a missing or wrong token only after its own connection timeout, in its own words.
        authenticate(found, f"{AUTO} (the cluster at {found})")
    try:
        if address == LOCAL:
            niceness = {"worker_niceness": LOCAL_WORKER_NICENESS}
            ray.init(address=LOCAL, include_dashboard=False, _system_config=niceness, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunError(
            f"--ray {address}: cannot join the cluster ({first}); start it with `ray start --head` "
            "and pass its address (or `auto` on one of its nodes)"
        ) from None
