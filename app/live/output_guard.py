"""An output's `OSError` (a full disk, a quota, an I/O error) as a stop of the run with a reason."""

from __future__ import annotations

from collections.abc import Callable

from loguru import logger

from app.media.whole_files import OutputFailed


class OutputGuard:
    """The one place where an output's `OSError` becomes a stop with a reason.

    A result file that cannot be written ends the run as a requested stop does (`stop`,
    the controller's): the first such error is kept as the run's `failure`, and one that
    follows (the summary or a last line on the same full disk) is one warning naming the
    file it could not complete. Any other exception is a bug and propagates.
    """

    def __init__(self, stop: Callable[[], None]):
        self._stop = stop
        self.failure: OutputFailed | None = None

    def attempt(self, write: Callable[..., object], *args: object) -> bool:
        """`write(*args)`; False when it failed with an OSError (the run then stops)."""
        try:
            write(*args)
        except OSError as exc:
            if self.failure is None:
                self.failure = OutputFailed(exc)
                self._stop()
            else:
                logger.warning("{} could not be completed ({})", exc.filename or "an output", exc.strerror or exc)
            return False
        return True
