"""The house rules, checked on the source of every module (imports read with ``ast``, not by
importing): which package may import Ray, MLflow, Optuna; what the pure packages import; no
import of another package's private module; no import cycles; no module over 400 lines."""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "growray"
PURE = ("growth", "sparse", "nas", "models", "cost", "data", "continual")
#: third-party modules a pure package may import (besides the standard library)
PURE_EXTERNAL = {"torch", "numpy", "sklearn", "torchvision"}
#: growray modules outside the pure packages that a pure package may import
PURE_SHARED = {"growray.registry", "growray.checks"}
MAX_LINES = 400


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(ROOT.rglob("*.py"))}


def _package(module: str) -> str:
    """``growray.tune.trial`` -> ``tune``; top-level modules (``growray.api``) -> their name."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@cache
def _imports(module: str) -> tuple[tuple[str, int, bool], ...]:
    """``(imported module, line, at import time)`` of every import outside ``if TYPE_CHECKING``
    (``import_module("x")`` with a literal name included); relative imports resolved;
    ``from pkg import sub`` counts as importing ``pkg.sub``."""
    path = MODULES[module]
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            nested = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, not in_function) for a in child.names)
            elif (  # importlib.import_module("x") / __import__("x") with a literal name
                isinstance(child, ast.Call)
                and getattr(child.func, "attr", getattr(child.func, "id", "")) in {"import_module", "__import__"}
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and isinstance(child.args[0].value, str)
            ):
                out.append((child.args[0].value, child.lineno, not in_function))
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                out.append((target, child.lineno, not in_function))
                out.extend(
                    (f"{target}.{a.name}", child.lineno, not in_function)
                    for a in child.names
                    if f"{target}.{a.name}" in MODULES
                )
            visit(child, nested)

    visit(ast.parse(path.read_text()), False)
    return tuple(out)


def _violations(allowed_in: tuple[str, ...], top: str) -> list[str]:
    return [
        f"{module}:{line} imports {name}"
        for module in MODULES
        for name, line, _ in _imports(module)
        if name.split(".")[0] == top and _package(module) not in allowed_in
    ]


@pytest.mark.parametrize(
    ("library", "packages"), [("ray", ("tune",)), ("mlflow", ("tracking",)), ("optuna", ("search", "tune"))]
)
def test_orchestration_libraries_stay_in_their_package(library, packages):
    assert _violations(packages, library) == [], f"{library} may only be imported in growray/{'|'.join(packages)}/"


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_import_torch_numpy_and_each_other_only(package):
    bad = []
    for module in (m for m in MODULES if _package(m) == package):
        for name, line, _ in _imports(module):
            top = name.split(".")[0]
            if top == "growray":
                ok = _package(name) in PURE or name in PURE_SHARED or name == "growray"
            else:
                ok = top in PURE_EXTERNAL or top in sys.stdlib_module_names or top == "__future__"
            if not ok:
                bad.append(f"{module}:{line} imports {name}")
    assert bad == [], "pure packages import only torch, numpy (data: sklearn, torchvision) and pure growray modules"


def test_config_imports_neither_tune_nor_tracking():
    bad = [
        f"{m}:{line} imports {name}"
        for m in MODULES
        if _package(m) == "config"
        for name, line, _ in _imports(m)
        if name.startswith(("growray.tune", "growray.tracking"))
    ]
    assert bad == []


def test_no_module_imports_another_packages_private_module():
    bad = []
    for module in MODULES:
        for name, line, _ in _imports(module):
            parts = name.split(".")
            private = [i for i, p in enumerate(parts) if p.startswith("_") and not p.startswith("__")]
            if parts[0] != "growray" or not private:
                continue
            owner = ".".join(parts[: private[0]])  # the package the private module belongs to
            if not (module == owner or module.startswith(owner + ".")):
                bad.append(f"{module}:{line} imports {name}")
    assert bad == []


def _graph(import_time_only: bool) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module in MODULES:
        for name, _, at_import in _imports(module):
            if import_time_only and not at_import:
                continue
            while name not in MODULES and "." in name:
                name = name.rsplit(".", 1)[0]
            parts = name.split(".")
            # importing a.b.c runs a/__init__ and a/b/__init__ first
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                if target in MODULES and target != module and not module.startswith(target + "."):
                    graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_at_import_time():
    assert _cycles(_graph(import_time_only=True)) == []


def test_deferred_imports_never_close_a_cycle_between_packages():
    """A function-level import may break a recursion inside one package (validation calls
    itself on each search-space bound), never tie two packages together."""
    spanning = [c for c in _cycles(_graph(import_time_only=False)) if len({_package(m) for m in c}) > 1]
    assert spanning == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_400_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}, f"split these modules (<= {MAX_LINES} lines): {long}"


def test_the_command_line_calls_the_api_only():
    cli_modules = [m for m in MODULES if m == "growray.cli" or m.startswith("growray.cli.")]
    assert len(cli_modules) > 1, cli_modules  # the package with its command modules
    outside = {
        (module, name)
        for module in cli_modules
        for name, _, _ in _imports(module)
        if name.startswith("growray") and name not in {"growray", "growray.api"} and not name.startswith("growray.cli")
    }
    assert outside == set(), f"the CLI imports only growray.api: {outside}"
