"""Optional parts that scripts/setup.sh installs (OpenVINO): where one is missing a test that needs it skips with
the reason, except on CI (`CI=true`), where the set-up installed it and its absence is a failure."""

from __future__ import annotations

import os

import pytest

ON_CI = os.environ.get("CI", "").lower() == "true"


def needs(problem: str | None) -> list[pytest.MarkDecorator]:
    """Marks for a test (or parameter) needing a part whose `problem` is None when it works.

    No mark on CI: the test then runs and fails on the missing part instead of vanishing.
    """
    if problem is None or ON_CI:
        return []
    return [pytest.mark.skip(reason=f"{problem}; scripts/setup.sh installs it")]


def require_module(problem: str | None) -> None:
    """At module level: go on when the part works, else skip the module naming why, or fail it on CI."""
    if problem is None:
        return
    if ON_CI:
        pytest.fail(f"{problem}; scripts/setup.sh installs it, so on CI (CI=true) this is a failure", pytrace=False)
    pytest.skip(f"{problem}; scripts/setup.sh installs it", allow_module_level=True)
