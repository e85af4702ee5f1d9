"""Docs that cannot drift: options named in the README and docs/ exist, links and anchors resolve, and the
README's two commands are the ones CI runs."""

from __future__ import annotations

import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# A project command inside a line of a code block or an inline code span: the script and what follows it.
SCRIPT = re.compile(r"(?:^|[\s/])((?:app|scripts|convert)/[\w]+\.(?:py|sh)|-m convert\.atc_args)\b(.*)")
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
# Options of other programs that the pages name, by program.
EXTERNAL = {
    "atc": {"--soc_version", "--keep_dtype", "--input_shape", "--dynamic_dims", "--out_nodes", "--input_format",
            "--insert_op_conf", "--log", "--precision_mode", "--output", "--framework", "--model", "--help"},
    "pytest": {"--durations", "--dist", "--pdb"},
    "ray start": {"--head", "--port", "--address", "--num-cpus", "--resources"},
}
EVAL_COMMANDS = ("run", "score", "compare", "sequence")


def _help_command(script: str, sub: str | None = None) -> list[str]:
    if script.endswith(".sh"):
        return ["bash", str(REPO / script), "--help"]
    if script == "-m convert.atc_args":
        return [sys.executable, "-m", "convert.atc_args", "--help"]
    return [sys.executable, str(REPO / script), *([sub] if sub else []), "--help"]


def _own_part(rest: str) -> str:
    """What follows a script up to a pipe, a chained command or a comment: the script's own arguments."""
    return re.split(r"\s(?:\||&&|;)\s|\s#", rest)[0]


def _commands(text: str) -> list[tuple[str, str]]:
    """(script, its own arguments) for every project command given options, in code blocks and inline code."""
    lines = [line for block in FENCE.findall(text) for line in block.replace("\\\n", " ").splitlines()]
    lines += INLINE.findall(FENCE.sub("", text))
    found = [(m.group(1), _own_part(m.group(2))) for m in map(SCRIPT.search, lines) if m]
    return [(script, rest) for script, rest in found if OPTION.search(rest)]


def _key(script: str, rest: str) -> tuple[str, str | None]:
    """eval.py's options belong to its sub-command."""
    if script == "scripts/eval.py":
        words = rest.split()
        return script, words[0] if words and words[0] in EVAL_COMMANDS else None
    return script, None


@pytest.fixture(scope="module")
def helps() -> dict[tuple[str, str | None], set[str]]:
    """Every option in the `--help` of every project command the pages name."""
    keys = sorted({_key(s, r) for page in PAGES for s, r in _commands(page.read_text())}, key=str)
    if ("scripts/eval.py", None) in keys:
        keys.remove(("scripts/eval.py", None))
        keys += [("scripts/eval.py", sub) for sub in EVAL_COMMANDS if ("scripts/eval.py", sub) not in keys]

    def read(key: tuple[str, str | None]) -> set[str]:
        done = subprocess.run(_help_command(*key), cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(filter(None, key))} --help failed: {done.stderr[-500:]}"
        return set(OPTION.findall(done.stdout)) | {"--help"}

    with ThreadPoolExecutor(4) as pool:
        return dict(zip(keys, pool.map(read, keys)))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_use_existing_options(page: Path, helps) -> None:
    wrong = []
    for script, rest in _commands(page.read_text()):
        key = _key(script, rest)
        known = helps[key] if key in helps else set().union(*(v for k, v in helps.items() if k[0] == script))
        wrong += [f"{' '.join(filter(None, key))} {option}" for option in OPTION.findall(rest) if option not in known]
    assert not wrong, f"{page.name} names options its commands do not have: {wrong}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_prose_options_exist_somewhere(page: Path, helps) -> None:
    """An option named in prose belongs to a project command or to a named external program."""
    known = set().union(*helps.values(), *EXTERNAL.values())
    prose = FENCE.sub("", page.read_text())
    unknown = sorted({option for option in OPTION.findall(prose) if option not in known})
    assert not unknown, f"{page.name} names options no project command has: {unknown}"


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", page.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    broken = []
    for match in LINK.finditer(FENCE.sub("", page.read_text())):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif anchor and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{page.name} links to missing files or anchors: {broken}"


def test_anchor_rule_matches_github() -> None:
    page = REPO / "docs" / "evaluation.md"
    assert {"metric-conventions", "published-numbers-to-compare-with"} <= _anchors(page)


def test_readme_commands_are_what_ci_runs() -> None:
    """The README opens with two commands (set up and track; run the tests), and `.ci/run` runs exactly those."""
    blocks = re.findall(r"^```bash\n(.*?)^```", (REPO / "README.md").read_text(), re.S | re.M)
    quickstart, tests = (block.strip() for block in blocks[:2])
    assert quickstart == "bash scripts/quickstart.sh"
    assert tests.endswith("pytest -q")
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert quickstart in ci and tests in ci, ".ci/run must run the README's two commands as written"
    assert ci.index(quickstart) < ci.index(tests)


def test_readme_is_a_front_door() -> None:
    assert len((REPO / "README.md").read_text().splitlines()) <= 200
