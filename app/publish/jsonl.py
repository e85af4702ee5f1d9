"""`--events FILE.jsonl` (or `-`, standard output): the result stream as JSON lines, for pipes and `jq`.

A file is appended to, never truncated: a restarted service adds its run after the
earlier ones (each record's `run` tells them apart), and its lines are written
whole (`LineFile`), so a full disk leaves no half line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from loguru import logger

from app.media.whole_files import LineFile, OutputError
from app.publish.events import Record

STDOUT = "-"


class JsonLinesSink:
    """One record per line, flushed per frame, so a reader of a pipe sees each frame as it is tracked."""

    def __init__(self, target: str):
        self.target = target
        self._file: TextIO | LineFile
        self._reader_gone = False
        if target == STDOUT:
            self._file, self._owned = sys.stdout, False
            return
        path = Path(target)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file, self._owned = LineFile(path, append=True), True
        except OSError as exc:
            raise OutputError(f"cannot write --events {target} ({exc.strerror or exc}); "
                              "pass a file in a writable folder, or - for standard output") from None

    def publish(self, records: list[Record]) -> None:
        if self._reader_gone:
            return
        try:
            # A file's lines land whole or raise WriteFailed, which stops the run (a result file).
            self._file.write("".join(json.dumps(record) + "\n" for record in records))
            if not self._owned:
                self._file.flush()
        except BrokenPipeError:
            # `... --events - | head`: the reader left; tracking and the other outputs go on.
            logger.warning("the reader of --events {} went away; no more events are written there", self.target)
            self._reader_gone = True

    def close(self) -> None:
        if self._owned:
            self._file.close()
        elif not self._reader_gone:
            try:
                self._file.flush()
            except BrokenPipeError:
                self._reader_gone = True
