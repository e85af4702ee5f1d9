"""Keep secrets out of everything the user sees: URL passwords are masked, tokens never logged.

A stream URL may carry `user:password@`; every log line, error, summary and page
shows it as `user:***@`. `mask_credentials` does it for one URL, and
`redact_log_record` does it for every log message as a last line of defence.

A command line is no place for a secret: every local user reads it (`ps`,
`/proc/PID/cmdline`). The URLs of `--video` and `--publish` may therefore come
from the environment instead (`URL_VARIABLES`), which only the process's own user
and root can read, and which a systemd unit fills from a root-only environment
file (docs/service.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

MASK = "***"
# scheme://user:password@ — the password runs up to the last @ before the host part.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)(?P<password>[^\s/]*)@")
# The options whose URL may hold a password → the environment variable that gives it off the command line.
URL_VARIABLES = {"--video": "SAMURAI_VIDEO", "--publish": "SAMURAI_PUBLISH"}
TOKEN_OPTION, TOKEN_FILE_OPTION = "--token", "--token-file"


def mask_credentials(text: str) -> str:
    """`rtsp://user:pass@host/x` → `rtsp://user:***@host/x`, in a URL or in any text holding URLs."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", text)


def has_password(url: str) -> bool:
    return _URL_PASSWORD.search(url) is not None


def url_host(url: str) -> str:
    """`host:port` of a URL, without credentials, for one-line errors."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def url_from_environment(option: str, given: str | None, environ: Mapping[str, str]) -> str | None:
    """The option's value as given on the command line, else its environment variable's (unset or empty: None)."""
    return given if given is not None else environ.get(URL_VARIABLES[option]) or None


def secrets_on_command_line(given: Mapping[str, str | None]) -> list[str]:
    """Of the options given on the command line (option → value), those that put a secret there."""
    return [option for option, value in given.items()
            if value and (option == TOKEN_OPTION or (option in URL_VARIABLES and has_password(value)))]


def command_line_warning(options: list[str]) -> str:
    """One line: which options expose a secret to every local user, and how to keep each off the process list."""
    instead = [f"set {URL_VARIABLES[option]}=URL in the environment instead of {option}" for option in options
               if option in URL_VARIABLES]
    if TOKEN_OPTION in options:
        instead.append(f"give {TOKEN_FILE_OPTION} FILE (chmod 600) instead of {TOKEN_OPTION}")
    return (f"{', '.join(options)} on the command line: every local user can read it (ps, /proc/PID/cmdline), "
            f"password or token included; {'; '.join(instead)} (a service: docs/service.md)")


def redact_log_record(record: dict[str, Any]) -> None:
    """loguru patcher: mask URL passwords in the formatted message."""
    record["message"] = mask_credentials(record["message"])
