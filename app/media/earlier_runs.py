"""A run never destroys an earlier run's results: they move, intact, to `OUTPUT/earlier/<start time>/`.

A service restarts into the same `--output` (after a lost stream, a reboot). Before
the new run writes, the results the last run left there (its track and frames files,
masks, prompt masks, video and summary.json) are renamed into `OUTPUT/earlier/2026-12-06T22-35-05/`,
named after that run's start: summary.json's `started`, or, without a summary (a run
killed before it wrote one), the oldest time a result was written. So `OUTPUT/` always
holds the newest run, every documented path stays true, and masks of two runs never mix.
The JSON-lines files given by path (`--events`, `--log-decisions`) are appended to instead.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from loguru import logger

from app.media.outputs import MASK_DIR, PROMPT_MASK_DIR, SUMMARY_FILE, TRACK_FILE, VIDEO_FILE, frames_file
from app.media.whole_files import OutputFailed

EARLIER_DIR = "earlier"
# What a run writes in OUTPUT (app/media/outputs.py): track.txt or track_<id>.txt, frames*.txt beside them.
RESULT_PATTERNS = (TRACK_FILE, "track_*.txt", frames_file(TRACK_FILE), "frames_*.txt", MASK_DIR, f"{MASK_DIR}_*",
                   VIDEO_FILE, SUMMARY_FILE, PROMPT_MASK_DIR)
# A folder name (no colons: they are awkward in shells and forbidden on some file systems).
FOLDER_TIME_FORMAT = "%Y-%m-%dT%H-%M-%S"
STARTED_TIMESPEC = "milliseconds"


def run_start_time(now: datetime | None = None) -> str:
    """A run's start as summary.json and the JSON lines record it: ISO 8601 in UTC, to the millisecond."""
    return (now or datetime.now(timezone.utc)).isoformat(timespec=STARTED_TIMESPEC)


def earlier_results(folder: Path) -> list[Path]:
    """The results an earlier run left in `folder`, sorted."""
    return sorted({path for pattern in RESULT_PATTERNS for path in folder.glob(pattern)})


def _started(folder: Path, results: list[Path]) -> datetime:
    """summary.json's `started`; without one, the oldest modification time of the results."""
    try:
        return datetime.fromisoformat(json.loads((folder / SUMMARY_FILE).read_text())["started"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    files = [p for path in results for p in ([path, *path.rglob("*")] if path.is_dir() else [path])]
    return datetime.fromtimestamp(min(p.stat().st_mtime for p in files), timezone.utc)


def keep_earlier_run(folder: Path) -> Path | None:
    """Move the earlier run's results out of `folder` into `folder/earlier/<its start>/`; that folder, or None.

    A name already taken gets -2, -3, ...; a move that fails (a full disk) is the run's `OutputFailed`.
    """
    results = earlier_results(folder)
    if not results:
        return None
    name = _started(folder, results).astimezone(timezone.utc).strftime(FOLDER_TIME_FORMAT)
    try:
        (folder / EARLIER_DIR).mkdir(exist_ok=True)
        target, number = folder / EARLIER_DIR / name, 1
        while True:
            try:
                target.mkdir()
                break
            except FileExistsError:
                number += 1
                target = folder / EARLIER_DIR / f"{name}-{number}"
        for path in results:
            path.rename(target / path.name)
    except OSError as exc:
        raise OutputFailed(exc) from None
    logger.info("the earlier run's results in {} are kept in {}", folder, target)
    return target
