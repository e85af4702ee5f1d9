"""Tell systemd how the run is doing: READY=1 once it tracks, WATCHDOG=1 while healthy, STOPPING=1 at the end.

A unit of `Type=notify` gives the process `$NOTIFY_SOCKET`, a Unix datagram
socket that takes `KEY=value` lines; with `WatchdogSec=` it also gives
`$WATCHDOG_USEC` and restarts the run when the WATCHDOG=1 pings stop. The pings
follow the check behind `/healthz` (`app.live.health`), whether or not
`--serve` runs: a loop stuck on the NPU, a stream that stays away, a run that
ended all stop them. A thread checks the health, so a stuck loop cannot ping.
These few lines of the protocol need no library; without `$NOTIFY_SOCKET` (not
under systemd) nothing is sent and no thread starts.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType

from loguru import logger

from app.live.health import HTTP_OK

READY, WATCHDOG, STOPPING = "READY=1", "WATCHDOG=1", "STOPPING=1"
US_PER_S = 1_000_000
# Health checks per watchdog period: one failed check (a frame slower than usual) never lets the watchdog expire.
CHECKS_PER_WATCHDOG = 4
# The longest wait between two checks: READY=1 follows the first healthy frame within it.
MAX_CHECK_S = 1.0
# A send that systemd does not take within this is dropped (the socket's queue is full): it never holds up the run.
SEND_TIMEOUT_S = 1.0
ABSTRACT_PREFIX = "@"  # systemd's spelling of a socket in the abstract namespace, whose real name starts with NUL


def socket_address(environ: Mapping[str, str]) -> str | None:
    """$NOTIFY_SOCKET as `socket.connect` takes it, or None when the process is not run by systemd's notify type."""
    address = environ.get("NOTIFY_SOCKET") or None
    if address is not None and address.startswith(ABSTRACT_PREFIX):
        return "\0" + address[len(ABSTRACT_PREFIX):]
    return address


def watchdog_s(environ: Mapping[str, str], pid: int) -> float | None:
    """The unit's WatchdogSec in seconds when it watches this very process ($WATCHDOG_PID unset or ours), else None."""
    usec, watched = environ.get("WATCHDOG_USEC", ""), environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (watched and watched != str(pid)):
        return None
    return int(usec) / US_PER_S


@dataclass
class Notifier:
    """Sends notification lines to systemd; a failed send is logged once and never stops the run."""

    address: str | None
    _failed: bool = field(default=False, init=False)

    def send(self, *lines: str) -> None:
        if self.address is None or not lines:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(SEND_TIMEOUT_S)
                sock.connect(self.address)
                sock.sendall("\n".join(lines).encode())
        except OSError as exc:
            if not self._failed:
                logger.warning("cannot notify systemd at $NOTIFY_SOCKET ({}); its watchdog may restart the run",
                               exc.strerror or exc)
            self._failed = True


class HealthNotifier:
    """Around the tracking loop: a thread that reports `health()` to systemd until the context ends.

    `health` answers like `HealthCheck`: (200, "ok") or (503, the reason). The
    first healthy check sends READY=1 (the models are loaded and frames flow), and
    every healthy check WATCHDOG=1 when the unit has a watchdog; STATUS= carries
    the reason (`systemctl status` shows it). Leaving the context sends STOPPING=1.
    `outage_s`: how long the health may fail while the run still recovers by
    itself (a stream reconnecting); a shorter watchdog gets one warning.
    """

    def __init__(self, health: Callable[[], tuple[int, str]], outage_s: float,
                 environ: Mapping[str, str] = os.environ):
        self.health, self.outage_s = health, outage_s
        self.notifier = Notifier(socket_address(environ))
        self.watchdog_s = watchdog_s(environ, os.getpid())
        self.check_s = min(MAX_CHECK_S, self.watchdog_s / CHECKS_PER_WATCHDOG) if self.watchdog_s else MAX_CHECK_S
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sd-notify", daemon=True)

    def __enter__(self) -> HealthNotifier:
        if self.notifier.address is None:
            return self
        if self.watchdog_s is not None and self.watchdog_s <= self.outage_s:
            logger.warning("systemd's WatchdogSec ({:.0f} s) is shorter than a stream may stay away while it "
                           "reconnects ({:.0f} s: --reconnect-s plus --stream-timeout); the watchdog would restart "
                           "the run first: raise WatchdogSec above {:.0f} s", self.watchdog_s, self.outage_s,
                           self.outage_s)
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.notifier.address is None:
            return
        self._stop.set()
        self._thread.join()
        self.notifier.send(STOPPING, "STATUS=stopping")

    def _run(self) -> None:
        ready, shown = False, None
        while True:
            code, reason = self.health()
            lines = [f"STATUS={reason}"] if reason != shown else []
            if code == HTTP_OK:
                lines += [] if ready else [READY]
                lines += [WATCHDOG] if self.watchdog_s is not None else []
                ready = True
            self.notifier.send(*lines)
            shown = reason
            if self._stop.wait(self.check_s):
                return
