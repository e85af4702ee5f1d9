"""`--prompts FILE.jsonl`: prompts scheduled by frame, the way to replay an interactive session exactly.

One command of app/live/commands.py per line, each naming its frame; a mask is
a PNG file named relative to the prompt file. A run's `prompt` records
(events.jsonl, summary.json) are such lines: their `type`, `kind` and `run` are
read past, so that a session's records replay it (docs/usage.md). The file is read and checked when
the options are (line numbers in every message), then against the source once
it is open (frame size, length, which objects exist to remove), both before any
model loads. The loop applies a line's prompt once its frame has been tracked,
before the frame is written, in file order within a frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.live.commands import Command, check_points, fit, follow_ids, parse_command, prompt_points
from app.live.dispatch import PROMPT
from app.media.prompt import PromptError, shown, text_lines

OPTION = "--prompts"
FIX = 'write one JSON command per line, e.g. {"frame": 0, "id": 1, "box": [x, y, w, h]} (docs/usage.md)'
RECORD_FIELDS = ("type", "kind", "run")  # what a `prompt` record adds to its command
KEEP_PROMPTS = "keep only the prompt records: grep '\"type\": \"prompt\"' events.jsonl (docs/usage.md)"


def _command_body(body: object) -> object:
    """The command a line gives: a `prompt` record's command, or the line itself."""
    if not isinstance(body, dict) or "type" not in body:
        return body
    if body["type"] != PROMPT:
        raise PromptError(f"a {shown(str(body['type']))} record is not a prompt; {KEEP_PROMPTS}")
    if body.get("kind") == "mask" and body.get("mask") is None:
        raise PromptError("the session's mask was not kept (it ran without an output folder), so this "
                          "prompt cannot be replayed; give the mask as a PNG file, or remove the line")
    return {key: value for key, value in body.items() if key not in RECORD_FIELDS}


@dataclass(frozen=True)
class PromptLine:
    number: int
    command: Command


def read_prompt_file(path: Path) -> list[PromptLine]:
    """Every line's command, checked as far as it can be without the source."""
    lines = []
    for number, text in text_lines(path, OPTION, FIX):
        where = f"{OPTION} {path} line {number}"
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):
            raise PromptError(f"{where} is not JSON ({shown(text.strip())}); {FIX}") from None
        try:
            command = parse_command(_command_body(body), path.parent)
        except PromptError as exc:
            raise PromptError(f"{where}: {exc}") from None
        if command.prompt is None:
            raise PromptError(f"{where}: a prompt file holds prompts, not actions; remove the line")
        if command.frame is None:
            raise PromptError(f'{where}: no "frame"; a prompt file names each prompt\'s frame, so that a run '
                              "replays exactly")
        lines.append(PromptLine(number, command))
    if not lines:
        raise PromptError(f"{OPTION} {path} has no prompt; {FIX}")
    return lines


def _points_after(counts: list[int], command: Command) -> list[int]:
    """The points an object has on a frame after each of its prompts there, `command`'s included: clicks add up, a
    box replaces the clicks before it, a mask or a removal clears them, an undo takes the last prompt back."""
    prompt = command.prompt
    if prompt.undo:
        return counts[:-1]
    if prompt.mask is not None or prompt.remove:
        return [*counts, 0]
    before = counts[-1] if counts and prompt.box is None else 0
    return [*counts, before + prompt_points(prompt)]


def schedule(path: Path, lines: list[PromptLine], size: tuple[int, int], num_frames: int | None,
             first_ids: Iterable[int], max_points: int | None = None) -> dict[int, list[Command]]:
    """The commands by frame, checked against the source: inside its frames, on a frame it has, removing only an
    object tracked by then (`first_ids`: the command line's boxes), and no more points for an object on a frame
    than the models take (`max_points`, the manifest's; a manifest is read, no model loads)."""
    width, height = size
    known = set(first_ids)
    points: dict[tuple[int, int], list[int]] = {}
    scheduled: dict[int, list[Command]] = {}
    for line in sorted(lines, key=lambda entry: (entry.command.frame, entry.number)):
        where = f"{OPTION} {path} line {line.number}"
        try:
            command = fit(line.command, width, height)
        except PromptError as exc:
            raise PromptError(f"{where}: {exc}") from None
        frame, prompt = command.frame, command.prompt
        if num_frames is not None and frame >= num_frames:
            raise PromptError(f"{where}: frame {frame} is past the source's last frame {num_frames - 1}; "
                              "give a frame of the source")
        try:
            follow_ids(prompt, known)
            counts = points[frame, prompt.obj_id] = _points_after(points.get((frame, prompt.obj_id), []), command)
            check_points(counts[-1] if counts else 0, max_points)
        except PromptError as exc:
            raise PromptError(f"{where}: on frame {frame}, {exc}") from None
        scheduled.setdefault(frame, []).append(command)
    return scheduled
