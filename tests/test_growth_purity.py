"""Pure-algorithm packages never import orchestration libraries (DESIGN.md rules)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "growray"
PURE = ["models", "growth", "cost", "sparse", "nas"]
FORBIDDEN = {"ray", "mlflow", "optuna", "yaml", "pydantic"}


def _pure_files():
    return sorted(p for pkg in PURE if (ROOT / pkg).is_dir() for p in (ROOT / pkg).rglob("*.py"))


def _imported_roots(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value.split(".")[0]


def test_there_is_something_to_scan():
    assert (ROOT / "growth").is_dir() and _pure_files()


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_orchestration_imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    bad = [f"line {ln}: {mod}" for ln, mod in _imported_roots(tree) if mod in FORBIDDEN]
    assert not bad, f"{path.relative_to(ROOT.parent)} imports {bad}; pure packages import torch/numpy only"
