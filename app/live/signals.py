"""SIGTERM, SIGHUP and Ctrl-C end a run as the page's Stop does; a second one forces the exit.

`systemctl stop` and `docker stop` send SIGTERM; a closed SSH session sends
SIGHUP. The first signal asks the loop to stop after the frame it is on, so every
output is complete and the run exits 0. While the models load there is nothing to
finish, so it ends the run at once (`StopRequested`). A second signal raises
`KeyboardInterrupt`: the outputs are still closed on the way out (every file
readable), but the frames queued for writing are the last ones written.

A terminal's signals that were ignored when the run started stay ignored:
`nohup` ignores SIGHUP so that closing the terminal leaves the run going, and a
shell without job control starts `cmd &` with SIGINT ignored so that Ctrl-C meant
for the foreground leaves background jobs alone. SIGTERM is a request addressed
to this process (`kill`, `systemctl stop`) and always stops the run.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from loguru import logger

from app.live.control import TrackController

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
# Signals from a terminal, whose inherited SIG_IGN is the starter's choice and is kept.
TERMINAL_SIGNALS = (signal.SIGHUP, signal.SIGINT)


class StopRequested(Exception):
    """A stop signal arrived before the loop started: nothing was tracked, nothing is lost."""


class StopSignals:
    """Installs the handlers on `__enter__` (main thread only) and restores the previous ones on `__exit__`."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._controller: TrackController | None = None
        self._previous: dict[int, Callable | int | None] = {}

    def attach(self, controller: TrackController) -> None:
        """From now on a signal stops this controller's loop instead of ending the run at once."""
        self._controller = controller
        if self.received is not None:
            controller.stop()

    @property
    def stopped_before_start(self) -> bool:
        """A signal arrived before a loop was attached (the run is loading)."""
        return self.received is not None and self._controller is None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            logger.warning("{} again: exiting now; the files written so far stay readable", name)
            raise KeyboardInterrupt
        self.received = name
        if self._controller is None:
            logger.warning("{} before tracking started: exiting", name)
            raise StopRequested(name)
        logger.info("{}: stopping after the current frame (send it again to exit at once)", name)
        self._controller.stop()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                if signum in TERMINAL_SIGNALS and signal.getsignal(signum) == signal.SIG_IGN:
                    logger.debug("{} was ignored when the run started; it stays ignored", signal.Signals(signum).name)
                    continue
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()
