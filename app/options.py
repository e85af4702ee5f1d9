"""Every value of `app/run.py`'s command line, checked before any model loads and before any output exists.

A service restarts a run that exits 1, so a value that cannot work must be one
ERROR line naming the option, the value and what is accepted, and exit 2
(docs/service.md), never a traceback found after the models have loaded.
Numbers are checked as argparse reads them (the `type=` functions here), the
rest by `check_options` right after parsing: one check per option, or per
group of options that only mean something together.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from acl_models.manifest import ModelFolderError, load_manifest
from app.live.prompt_file import read_prompt_file
from app.media.outputs import MAX_OBJECT_ID
from app.media.prompt import command_line_boxes, shown
from app.media.source_spec import parse_camera
from app.media.streams import is_stream_url
from app.publish.jsonl import STDOUT
from app.publish.mqtt import parse_publish_url
from app.samurai.config import check_config
from app.serve.address import ServeError, is_token, parse_serve, read_token_file

# argparse's own code for a bad command line, which is also the run's code for bad input (EXIT_BAD_INPUT).
USAGE_EXIT = 2
# A longer wait is a typing mistake; a week also keeps FFmpeg's millisecond timeouts inside a 32-bit integer.
MAX_WAIT_S = 7 * 24 * 3600.0
SOURCES = "a video file, a folder of .jpg/.png frames, a camera (cam0, /dev/video0) or a stream URL (rtsp://host/path)"


class OptionError(ValueError):
    """A command-line value that cannot work; the one-line message names the option, the value and the fix."""


class OptionParser(argparse.ArgumentParser):
    """argparse with the run's error format: one ERROR line and exit 2, no usage block.

    Abbreviated options are off, so that an option added later never changes
    what a shortened one meant, and so that `check_options` can tell from the
    words of the command line which options were typed.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_EXIT, f"{'ERROR':<7} {message}; --help lists the options\n")


def frame_count(text: str) -> int:
    """`--max-frames`: a whole number of frames from 1 (0 or less would be no limit, or nonsense)."""
    fix = "give N >= 1, or leave the option out to track every frame"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a whole number of frames; {fix}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a number of frames to stop after; {fix}")
    return value


def seconds(text: str) -> float:
    """`--stream-timeout`, `--reconnect-s`: a time in seconds, above 0 and at most `MAX_WAIT_S` (no nan, no inf)."""
    fix = f"give S with 0 < S <= {MAX_WAIT_S:.0f} (a week)"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{shown(text)} is not a number of seconds; {fix}") from None
    if not 0 < value <= MAX_WAIT_S:  # also false for nan
        raise argparse.ArgumentTypeError(f"{shown(text)} seconds is out of range; {fix}")
    return value


def typed_options(argv: Sequence[str]) -> set[str]:
    """The options the command line names (`--x V` or `--x=V`), as against those left at their defaults."""
    return {word.split("=", 1)[0] for word in argv if word.startswith("--")}


# Options that name a file or folder (dest → option): each must be a path the system can look up.
PATH_OPTIONS = {"bbox_file": "--bbox-file", "boxes_file": "--boxes-file", "model_dir": "--model-dir",
                "config": "--config", "output": "--output", "log_decisions": "--log-decisions", "events": "--events",
                "token_file": "--token-file", "prompts": "--prompts"}


def _paths(args: argparse.Namespace, typed: set[str]) -> None:
    """A name too long, a symlink loop or a folder above it that cannot be searched: one line, before the
    other checks look at what the path is."""
    named = {option: getattr(args, dest) for dest, option in PATH_OPTIONS.items()}
    if not is_stream_url(args.video) and parse_camera(args.video) is None:
        named["--video"] = args.video
    for option, value in named.items():
        if value is None or str(value) in ("", STDOUT):
            continue
        try:
            os.stat(value)
        except (FileNotFoundError, NotADirectoryError):
            pass  # what each option's own check reports
        except OSError as exc:
            raise OptionError(f"{option} {shown(str(value))} cannot be used ({exc.strerror or exc}); "
                              "pass another path") from None


def _video(args: argparse.Namespace, typed: set[str]) -> None:
    spec = args.video
    if not spec.strip():
        raise OptionError(f"--video is empty; pass {SOURCES}")
    if is_stream_url(spec) or parse_camera(spec) is not None:
        return  # reached only when opened, before any model loads
    path = Path(spec)
    if not path.exists():
        raise OptionError(f"--video {shown(spec)} does not exist; pass {SOURCES}")
    if not os.access(path, os.R_OK):
        raise OptionError(f"--video {shown(spec)} cannot be read by this user; make it readable or pass another source")


def _boxes(args: argparse.Namespace, typed: set[str]) -> None:
    command_line_boxes(args.bbox, args.bbox_file, args.boxes_file, MAX_OBJECT_ID)


def _prompts(args: argparse.Namespace, typed: set[str]) -> None:
    if args.prompts is None:
        return
    if is_stream_url(args.video) or parse_camera(args.video) is not None:
        raise OptionError("--prompts replays prompts on a file or folder's frames; a live source skips frames, so "
                          "send its prompts to --serve's POST /api/prompts or --publish's PREFIX/cmd instead")
    read_prompt_file(args.prompts)


def _config(args: argparse.Namespace, typed: set[str]) -> None:
    check_config(args.config)


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def _unwritable(path: Path) -> str | None:
    """Why this user cannot write into `path` (a file, or a folder to create files in), or None."""
    if os.access(path, os.W_OK | (os.X_OK if path.is_dir() else 0)):
        return None
    read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    return f"{path} is on a read-only file system" if read_only else f"{path} is not writable by this user"


def check_writable(option: str, path: Path, folder: bool, fix: str) -> None:
    """`path` can be created (with the folders above it) or written as a file or, `folder`, as a folder."""
    if path.exists():
        if folder != path.is_dir():
            kinds = ("a file", "a folder") if folder else ("a folder", "a file")
            raise OptionError(f"cannot write {option} {path}: it is {kinds[0]}, not {kinds[1]}; {fix}")
        reason = _unwritable(path)
    else:
        above = _nearest_existing(path.parent)
        if not above.is_dir():
            raise OptionError(
                f"cannot write {option} {path}: it lies under a file: {above} is a file, not a folder; {fix}")
        reason = _unwritable(above)
    if reason is not None:
        raise OptionError(f"cannot write {option} {path}: {reason}; {fix}")


def _outputs(args: argparse.Namespace, typed: set[str]) -> None:
    check_writable("--output", args.output, folder=True, fix="pass a writable folder for the results")
    if args.log_decisions:
        check_writable("--log-decisions", args.log_decisions, folder=False, fix="pass a file in a writable folder")
    if args.events and args.events != STDOUT:
        check_writable("--events", Path(args.events), folder=False,
                       fix=f"pass a file in a writable folder, or {STDOUT} for standard output")


def _serve(args: argparse.Namespace, typed: set[str]) -> None:
    if args.serve is None:
        given = [option for option, value in (("--token", args.token), ("--token-file", args.token_file),
                                              ("--allowed-host", args.allowed_host or None)) if value is not None]
        if given:
            raise OptionError(f"{given[0]} is the web page's and applies only with --serve; add --serve [HOST:]PORT "
                              "or leave it out")
        return
    parse_serve(args.serve)
    if args.token is not None and not is_token(args.token):
        raise ServeError("--token is empty or holds spaces; give one word, or leave it out to have one generated")
    if args.token_file is not None:
        read_token_file(args.token_file, args.token)


def _publish(args: argparse.Namespace, typed: set[str]) -> None:
    if args.publish is not None:
        parse_publish_url(args.publish)


def _stream_options(args: argparse.Namespace, typed: set[str]) -> None:
    """The stream settings, typed for a source that is not a stream, would silently do nothing."""
    if is_stream_url(args.video):
        return
    where = f"--video {shown(args.video)} is not one"
    if "--reconnect-s" in typed:
        raise OptionError(f"--reconnect-s applies to a stream URL (rtsp://, http://), and {where}; leave it out")
    if "--stream-timeout" in typed and args.serve is None:
        raise OptionError(f"--stream-timeout applies to a stream URL (rtsp://, http://), and {where} (with --serve it "
                          "also sets when /healthz calls the run stuck); leave it out")


def _model_dir(args: argparse.Namespace, typed: set[str]) -> None:
    folder = args.model_dir
    if folder.exists() and not folder.is_dir():
        raise OptionError(f"--model-dir {folder} is a file, not a folder; pass the exported folder (manifest.json "
                          "and the models)")
    try:
        load_manifest(folder)
    except ModelFolderError as exc:
        raise ModelFolderError(f"--model-dir {folder}: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
        raise ModelFolderError(f"--model-dir {folder}: its manifest.json cannot be read ({reason}); "
                               "export the models again, readable by this user") from None


# In this order: what the user typed first; the model folder last, as it may not be exported yet.
CHECKS: tuple[Callable[[argparse.Namespace, set[str]], None], ...] = (
    _paths, _video, _boxes, _prompts, _config, _outputs, _serve, _publish, _stream_options, _model_dir,
)


def check_options(args: argparse.Namespace, argv: Sequence[str] | None = None) -> None:
    """Raise the first problem as an error whose message is one line (OptionError, PromptError, ConfigError,
    ServeError, PublishError, ModelFolderError: those `app/run.py` turns into exit 2)."""
    typed = typed_options(sys.argv[1:] if argv is None else argv)
    for check in CHECKS:
        check(args, typed)
