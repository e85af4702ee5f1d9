"""Result files that are whole however a run ends: lines written whole or not at all, files replaced by a rename,
and the errors that say which file could not be written and how much room is left.

A full disk, a quota or an I/O error while the run goes on is `WriteFailed`
(the file named); the loop turns it into a stop, `OutputFailed`, whose message
names the file and the space free there (exit 4). A folder or file that cannot
be an output at all is `OutputError`, found before any model loads (exit 2).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

_TMP_SUFFIX = ".tmp"
# New files get these permissions before the umask, as open() gives them.
FILE_MODE = 0o666
BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
BYTES_PER_UNIT = 1024


class OutputError(OSError):
    """An output file that cannot be written; the one-line message says what to check."""


class WriteFailed(OSError):
    """A result file that could not be written while the run went on (a full disk, a quota, an I/O error).

    `filename` is the file. Unlike a network sink's error it stops the run: its results would be incomplete.
    """


class OutputFailed(Exception):
    """The run stopped because a result file could not be written; the message names it and the space left."""

    def __init__(self, error: OSError):
        self.path = error.filename
        self.reason = error.strerror or str(error)
        self.free_bytes = free_space(self.path) if self.path else None
        free = "" if self.free_bytes is None else f"; {format_bytes(self.free_bytes)} free there"
        super().__init__(
            f"cannot write {self.path or 'an output'} ({self.reason}{free}): the run stopped and every output is "
            "complete up to the last frame written; free some space or write to another disk, then start again"
        )


def free_space(path: str | os.PathLike) -> int | None:
    """Bytes free to this user on the file system that holds `path` (or would: its nearest existing folder)."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def format_bytes(count: int) -> str:
    value, unit = float(count), BYTE_UNITS[0]
    for unit in BYTE_UNITS:
        if value < BYTES_PER_UNIT or unit == BYTE_UNITS[-1]:
            break
        value /= BYTES_PER_UNIT
    return f"{count} B" if unit == BYTE_UNITS[0] else f"{value:.1f} {unit}"


class LineFile:
    """A text file of whole lines, unbuffered: each write lands whole or, when it fails, not at all.

    A full disk can take half of a write; the file is cut back to its last whole line, so
    every line a reader finds parses. `append` keeps what the file held (JSON lines of earlier runs).
    """

    def __init__(self, path: Path | str, append: bool = False):
        self.path = Path(path)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        self._fd: int | None = os.open(self.path, flags, FILE_MODE)
        self._size = self._before = os.fstat(self._fd).st_size

    def write(self, text: str) -> None:
        data = text.encode()
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError as exc:
            self._cut(self._size)
            raise WriteFailed(exc.errno, exc.strerror or str(exc), str(self.path)) from None
        self._before, self._size = self._size, self._size + len(data)

    def undo(self) -> None:
        """Take the last write back (its companion line in another file could not be written)."""
        self._cut(self._before)
        self._size = self._before

    def _cut(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
        except OSError:
            pass  # the write's own error is what the user needs; a cut that fails leaves the partial line

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def prepare_folder(path: Path, option: str) -> None:
    """Create an output folder now, before any model loads, or say in one line why it cannot be one."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{option} {path} is a file, not a folder; pass a folder for the results") from None
    except NotADirectoryError:
        raise OutputError(f"{option} {path} lies under a file, not a folder; pass a folder for the results") from None
    except OSError as exc:
        raise OutputError(f"cannot create {option} {path} ({exc.strerror or exc}); pass a writable folder") from None


def replace_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name, then rename: an interrupt or a full disk leaves the old file or the new, never half."""
    tmp = path.with_name(path.name + _TMP_SUFFIX)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WriteFailed(exc.errno, exc.strerror or str(exc), str(path)) from None
