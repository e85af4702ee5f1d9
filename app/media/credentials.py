"""Keep secrets out of everything the user sees: URL passwords are masked, tokens never logged.

A stream URL may carry `user:password@`; every log line, error, summary and page
shows it as `user:***@`. `mask_credentials` does it for one URL, and
`redact_log_record` does it for every log message as a last line of defence.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

MASK = "***"
# scheme://user:password@ — the password runs up to the last @ before the host part.
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)(?P<password>[^\s/]*)@")


def mask_credentials(text: str) -> str:
    """`rtsp://user:pass@host/x` → `rtsp://user:***@host/x`, in a URL or in any text holding URLs."""
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{MASK}@", text)


def url_host(url: str) -> str:
    """`host:port` of a URL, without credentials, for one-line errors."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def redact_log_record(record: dict[str, Any]) -> None:
    """loguru patcher: mask URL passwords in the formatted message."""
    record["message"] = mask_credentials(record["message"])
