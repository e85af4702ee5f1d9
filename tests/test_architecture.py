"""The packages keep their layers: the algorithm imports no threads, sockets or windows, a lower layer never
imports a higher one, and no module imports itself in a circle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What each package of app/ may import from the project, lowest layer first.
ALLOWED = {
    "app.samurai": {"app.samurai", "acl_models.base", "acl_models.bundle"},
    "app.media": {"app.samurai", "app.media"},
    "app.live": {"app.samurai", "app.media", "app.live"},
    "app.benchmarks": {"app.samurai", "app.media", "app.benchmarks", "acl_models"},
    "app.publish": {"app.samurai", "app.media", "app.live", "app.publish"},
    "app.serve": {"app.samurai", "app.media", "app.live.control", "app.live.pipeline", "app.live.commands",
                  "app.publish", "app.serve"},
}
# The algorithm takes arrays and returns results: none of these in app/samurai.
NOT_IN_ALGORITHM = {"threading", "queue", "socket", "asyncio", "subprocess", "multiprocessing", "concurrent",
                    "selectors", "http", "urllib", "signal"}
CV2_OUTSIDE_ALGORITHM = {"imshow", "namedWindow", "waitKey", "setMouseCallback", "destroyAllWindows", "VideoCapture",
                         "VideoWriter", "imread", "imwrite"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function (`from a import b` gives a and a.b)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


MODULES = {_module_name(p): p for p in sorted((REPO / "app").rglob("*.py"))}
PROJECT = tuple(sorted({name.split(".")[0] for name in MODULES} | {"acl_models", "convert", "scripts"}))


def _project_imports(path: Path) -> set[str]:
    """Project modules (not names inside them) that a file imports."""
    known = set(MODULES) | {_module_name(p) for p in (REPO / "acl_models").glob("*.py")}
    return {name for name in _imports(path) if name in known}


def _package(module: str) -> str | None:
    return next((package for package in ALLOWED if module == package or module.startswith(package + ".")), None)


def test_every_module_is_in_a_layer() -> None:
    loose = [m for m in MODULES if _package(m) is None and m not in {"app", "app.run", "app.options"}]
    assert not loose, f"modules outside the layered packages: {loose}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _package(m)))
def test_a_layer_imports_only_lower_layers(module: str) -> None:
    allowed = ALLOWED[_package(module)]
    wrong = sorted(
        name for name in _project_imports(MODULES[module])
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    )
    assert not wrong, f"{module} imports {wrong}; it may import only {sorted(allowed)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _package(m) == "app.samurai"))
def test_the_algorithm_has_no_threads_sockets_or_windows(module: str) -> None:
    path = MODULES[module]
    banned = sorted(name for name in _imports(path) if name.split(".")[0] in NOT_IN_ALGORITHM)
    assert not banned, f"{module} imports {banned}"
    tree = ast.parse(path.read_text())
    calls = sorted(
        node.attr for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "cv2"
        and node.attr in CV2_OUTSIDE_ALGORITHM
    )
    assert not calls, f"{module} uses cv2.{calls}: windows and video files belong to app.media / app.live"


def test_importing_the_algorithm_loads_no_higher_layer() -> None:
    """`import app.samurai...` in a fresh interpreter brings in no frame source, loop, server or runtime."""
    code = (
        "import sys, pkgutil, importlib, app.samurai as p\n"
        "for m in pkgutil.iter_modules(p.__path__): importlib.import_module('app.samurai.' + m.name)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {PROJECT!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = eval(done.stdout.strip().splitlines()[-1])
    higher = [m for m in loaded if not (m == "app" or m.startswith("app.samurai") or m.startswith("acl_models"))]
    assert not higher, f"importing the algorithm loads {higher}"
    assert not [m for m in loaded if m.startswith("acl_models.") and m != "acl_models.base"], loaded


def test_no_import_circles() -> None:
    graph = {m: {i for i in _project_imports(p) if i in MODULES and i != m} for m, p in MODULES.items()}
    state: dict[str, int] = {}
    circle: list[str] = []

    def visit(module: str, path: list[str]) -> bool:
        state[module] = 1
        for nxt in sorted(graph[module]):
            if state.get(nxt) == 1:
                circle.extend(path[path.index(nxt):] + [module, nxt] if nxt in path else [module, nxt])
                return True
            if nxt not in state and visit(nxt, path + [module]):
                return True
        state[module] = 2
        return False

    for module in sorted(graph):
        if module not in state and visit(module, []):
            break
    assert not circle, f"import circle: {' -> '.join(circle)}"
