"""The whole tree keeps its layers: the algorithm imports no threads, sockets or windows, a lower layer never
imports a higher one, scripts are front doors nothing imports, tests import no test and no script, and no module
imports itself in a circle (docs/architecture.md draws the layers)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TREE = ("acl_models", "app", "convert", "scripts", "tests")
# What each package of app/ may import from the project, lowest layer first.
ALLOWED = {
    "app.samurai": {"app.samurai", "acl_models.base", "acl_models.bundle"},
    "app.media": {"app.samurai", "app.media"},
    "app.live": {"app.samurai", "app.media", "app.live"},
    "app.benchmarks": {"app.samurai", "app.media", "app.benchmarks", "acl_models"},
    "app.publish": {"app.samurai", "app.media", "app.live", "app.publish"},
    "app.serve": {"app.samurai", "app.media", "app.live.control", "app.live.stats", "app.live.tracked", "app.live.commands",
                  "app.live.health", "app.publish", "app.serve"},
}
# The command line of app/ wires every package of the device; nothing of the workstation, scripts or tests.
APP_ROOTS = {"app.run", "app.command_line", "app.options", "app.plan"}
APP_ROOT_ALLOWED = {"app", "acl_models"}
# The runtimes are the bottom of the house.
ACL_MODELS_ALLOWED = {"acl_models"}
# The converters read the runtimes; the tracker only where a converter must run it, each said here with its reason.
CONVERT_ALLOWED = {"acl_models", "convert"}
CONVERT_RUNS_THE_TRACKER = {
    "convert.quantize_int8": ({"app.samurai", "app.media.colour_clip", "app.media.textured_clip"},
                              "int8 calibration samples are the tracker's own inputs on the generated clips"),
    "convert.precision_study": ({"app.samurai", "app.media", "app.benchmarks.metrics"},
                                "the study tracks the generated clips on imitated graphs and compares the decisions"),
    "convert.stress_checkpoint": ({"app.samurai", "app.media.textured_clip"},
                                  "its activation report tracks the textured clip through the exported graphs"),
}
# Scripts are front doors: they import the packages, parse and call; no script imports another, except these.
SCRIPTS_ALLOWED = {"acl_models", "app", "convert"}
SCRIPT_IMPORTS_SCRIPT: dict[tuple[str, str], str] = {}
# Tests import the packages and the helpers beside them (tests/*.py that are not test files); a script they run as
# a user does, in a subprocess, except these.
TESTS_ALLOWED = {"acl_models", "app", "convert", "tests"}
TESTS_IMPORT_SCRIPT = {
    "scripts.eval": "the evaluation tests interrupt and break its runs inside this process (monkeypatch) and read "
                    "its exit codes; what it runs is app/benchmarks'",
}
# The algorithm takes arrays and returns results: none of these in app/samurai.
NOT_IN_ALGORITHM = {"threading", "queue", "socket", "asyncio", "subprocess", "multiprocessing", "concurrent",
                    "selectors", "http", "urllib", "signal"}
# The shipped packages run without tests/, timm and torchvision: EdgeTAM's export has its own RepViT-M1, so a missing
# timm cannot stop it, and the official EdgeTAM's torchvision stand-in is for the tests and the benchmark's official
# row only, put on that child's path, never imported.
SHIPPED = ("acl_models", "app", "convert")
TEST_FOLDER = "tests"
NOT_SHIPPED = {"timm", "torchvision"}
CV2_OUTSIDE_ALGORITHM = {"imshow", "namedWindow", "waitKey", "setMouseCallback", "destroyAllWindows", "VideoCapture",
                         "VideoWriter", "imread", "imwrite"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at its top or inside a function (`from a import b` gives a and a.b);
    relative imports made absolute."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                package = _module_name(path).split(".")[: None if path.name == "__init__.py" else -1]
                module = ".".join(package[: len(package) - node.level + 1] + ([module] if module else []))
            names.add(module)
            names |= {f"{module}.{alias.name}" for alias in node.names}
    return names


MODULES = {_module_name(p): p for top in TREE for p in sorted((REPO / top).rglob("*.py"))}
PROJECT = tuple(sorted({name.split(".")[0] for name in MODULES}))


def _project_imports(path: Path) -> set[str]:
    """Project modules (not names inside them) that a file imports; a package only when none of its modules is named
    (`from scripts import bench` imports scripts.bench)."""
    found = {name for name in _imports(path) if name in MODULES}
    return {name for name in found if not any(other.startswith(name + ".") for other in found)}


def _package(module: str) -> str | None:
    return next((package for package in ALLOWED if module == package or module.startswith(package + ".")), None)


def _within(name: str, allowed: set[str]) -> bool:
    return any(name == a or name.startswith(a + ".") for a in allowed)


def _is_test_file(module: str) -> bool:
    return module.startswith("tests.") and (module.split(".")[-1].startswith("test_") or module == "tests.conftest")


def _violations(module: str) -> list[str]:
    """Each project import of `module` that breaks a rule, as "MODULE imports NAME: RULE"."""
    top = module.split(".")[0]
    wrong = []
    for name in sorted(_project_imports(MODULES[module])):
        if name == module:
            continue
        if top == "app" and _package(module):
            allowed = ALLOWED[_package(module)]
            rule = f"{_package(module)} may import only {sorted(allowed)}"
        elif top == "app":
            allowed, rule = APP_ROOT_ALLOWED, "the command line of app/ imports only app/ and acl_models/"
        elif top == "acl_models":
            allowed, rule = ACL_MODELS_ALLOWED, "acl_models/ (the runtimes) imports nothing else of the project"
        elif top == "convert":
            extra, reason = CONVERT_RUNS_THE_TRACKER.get(module, (set(), ""))
            allowed = CONVERT_ALLOWED | extra
            rule = ("convert/ imports acl_models/ and app/ only where a converter runs the tracker "
                    f"(CONVERT_RUNS_THE_TRACKER{': ' + reason if reason else ''}), never scripts/ or tests/")
        elif top == "scripts":
            allowed = SCRIPTS_ALLOWED | {other for (script, other) in SCRIPT_IMPORTS_SCRIPT if script == module}
            rule = ("a script is a front door: it imports the packages, never another script (a script that others "
                    "import is a library in the wrong place) nor tests/")
        else:
            allowed = TESTS_ALLOWED | set(TESTS_IMPORT_SCRIPT)
            if _is_test_file(name):
                wrong.append(f"{module} imports {name}: a test imports no test file; move what they share into a "
                             "helper module of tests/ (not test_*.py) or a fixture of tests/conftest.py")
                continue
            rule = ("a test imports the packages and tests/ helpers; it runs a script as a user does (subprocess), "
                    "or the logic it needs moves into a package")
        if not _within(name, allowed):
            wrong.append(f"{module} imports {name}: {rule}")
    return wrong


def test_every_module_is_in_a_layer() -> None:
    loose = [m for m in MODULES if m.startswith("app") and _package(m) is None and m not in {"app"} | APP_ROOTS]
    assert not loose, f"modules outside the layered packages: {loose}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_what_its_layer_may(module: str) -> None:
    wrong = _violations(module)
    assert not wrong, "\n".join(wrong)


def test_no_package_imports_a_script() -> None:
    wrong = [f"{module} imports {name}: no package imports scripts/ (scripts are front doors)"
             for module, path in MODULES.items() if module.split(".")[0] in ("app", "acl_models", "convert")
             for name in _project_imports(path) if name.split(".")[0] == "scripts"]
    assert not wrong, "\n".join(wrong)


def _names_test_folder(node: ast.AST) -> bool:
    """A string constant that is the tests folder or a path in it ("tests", "tests/x", "tests/" in a longer path);
    prose (a docstring naming a test file) has spaces and is not a path."""
    if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or any(c.isspace() for c in node.value):
        return False
    value = node.value
    return value == TEST_FOLDER or value.startswith(TEST_FOLDER + "/") or f"/{TEST_FOLDER}/" in value


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.split(".")[0] in SHIPPED))
def test_shipped_code_needs_neither_tests_nor_timm(module: str) -> None:
    path = MODULES[module]
    needed = sorted(name for name in _imports(path) if name.split(".")[0] in NOT_SHIPPED)
    assert not needed, f"{module} imports {needed}: only the official EdgeTAM environment has them (or a stand-in)"
    reaching = [node.lineno for node in ast.walk(ast.parse(path.read_text())) if _names_test_folder(node)]
    assert not reaching, f"{module} names a path under {TEST_FOLDER}/ (lines {reaching}): shipped code runs without it"


def test_every_exception_is_still_needed() -> None:
    """An arrow listed as an exception that nothing draws any more is taken off the list."""
    imports = {module: _project_imports(path) for module, path in MODULES.items()}
    stale = [f"{module} no longer imports {sorted(extra)}: remove it from CONVERT_RUNS_THE_TRACKER"
             for module, (extra, _) in CONVERT_RUNS_THE_TRACKER.items()
             if not any(_within(name, extra) for name in imports.get(module, ()))]
    stale += [f"{script} no longer imports {other}: remove it from SCRIPT_IMPORTS_SCRIPT"
              for script, other in SCRIPT_IMPORTS_SCRIPT if other not in imports.get(script, ())]
    stale += [f"no test imports {script}: remove it from TESTS_IMPORT_SCRIPT" for script in TESTS_IMPORT_SCRIPT
              if not any(script in names for module, names in imports.items() if module.startswith("tests."))]
    assert not stale, "\n".join(stale)


def test_the_rules_catch_a_new_arrow(tmp_path, monkeypatch) -> None:
    """Each rule names the import it finds and itself (a planted module per rule)."""
    planted = {  # module: (its one line, the project module it imports, words of the rule it breaks)
        "acl_models.planted": ("from app.samurai.config import load_config", "app.samurai.config",
                               "acl_models/ (the runtimes) imports nothing else"),
        "convert.planted": ("from app.samurai.tracker import SamuraiTracker", "app.samurai.tracker",
                            "convert/ imports acl_models/ and app/ only where"),
        "scripts.planted": ("from scripts import bench", "scripts.bench", "a script is a front door"),
        "tests.planted_helper": ("from tests.test_metrics import http", "tests.test_metrics",
                                 "a test imports no test file"),
        "tests.test_planted": ("import scripts.bench", "scripts.bench", "it runs a script as a user does"),
        "app.media.planted": ("from app.live.pipeline import Tracked", "app.live.pipeline", "app.media may import only"),
        "app.planted_root": ("from convert import export_onnx", "convert.export_onnx",
                             "the command line of app/ imports only"),
    }
    for module, (line, imported, rule) in planted.items():
        path = tmp_path / f"{module}.py"
        path.write_text(line + "\n")
        monkeypatch.setitem(MODULES, module, path)
        assert f"{module} imports {imported}: " in "\n".join(_violations(module)), _violations(module)
        assert rule in "\n".join(_violations(module)), _violations(module)


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
    graph = {m: {i for i in _project_imports(p) if i != m} for m, p in MODULES.items()}
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
