"""No module reaches into another's underscore names: what two modules share is public.

Read from the source with ``ast``: an ``x._name`` attribute (or ``from m import _name``)
in one module must name something that module defines itself (its own classes'
private members, reached through ``self`` or another instance of the same class).
Dunder names are public by convention. Tests are held to it too: they use the
public surface or ``tests/support/``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# names of other code bases, reached on purpose (each says why)
ALLOWED = {
    "_parser",  # app/bus.py: redis-py's Connection subclass swaps its parser's push handler
    "_current_frames",  # sys._current_frames: the stack of a stalled thread (tests)
}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined(tree: ast.Module) -> set[str]:
    """Underscore names a module defines: functions, classes, assignments, attributes it
    assigns (``self._x = ...``), slots and dataclass fields."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            names.add(node.attr)  # (a store into another object's private name is a reach)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if _private(n)}


def violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    own = _defined(tree)
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and _private(node.attr)
            and node.attr not in own
            and node.attr not in ALLOWED
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: import {alias.name}")
    return found


def _files(*roots: str) -> list[Path]:
    skip = ("node_modules", "/cdn/", "/parse/")
    return sorted(
        p
        for root in roots
        for p in (ROOT / root).rglob("*.py")
        if not any(s in str(p) for s in skip)
    )


@pytest.mark.parametrize("tree", ["app", "tests"])
def test_no_module_uses_another_modules_underscore_names(tree: str) -> None:
    found = [v for path in _files(tree) for v in violations(path)]
    assert not found, "underscore names used across modules:\n" + "\n".join(found)


def test_the_rule_catches_a_reach_into_another_module(tmp_path: Path) -> None:
    probe = ROOT / "tests" / "unit" / "_boundary_probe.py"
    probe.write_text("def f(engine):\n    return engine._inflight\n")
    try:
        assert violations(probe) == ["tests/unit/_boundary_probe.py:2: ._inflight"]
    finally:
        probe.unlink()


@pytest.mark.parametrize("package", ["app/execution", "app/risk", "app/brokers"])
def test_execution_risk_and_broker_modules_have_one_job_each(package: str) -> None:
    """Small modules: none over 400 lines (complexity is ruff's C901, max 15, in make lint)."""
    long = {
        str(p.relative_to(ROOT)): n
        for p in _files(package)
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, long
