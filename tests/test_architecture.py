"""The layout's rules, read from the source: no import cycles, no upward arrows, torch only in
ingest/, each Qdrant package in its one back-end module, one opening docstring per module."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("engine", "ingest", "cli")
LAYER = {"engine": 0, "ingest": 1, "cli": 2}  # an import may only point to the same or a lower one


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(path: Path, top_level_only: bool) -> Iterator[str]:
    """Absolute module names imported by a file (anywhere, or only at module level)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _own(name: str) -> str | None:
    """The project module an imported name refers to (a module, or a name inside one)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    return {
        module: {own for name in _imports(path, top_level_only) if (own := _own(name))} - {module}
        for module, path in MODULES.items()
    }


def test_no_import_cycles() -> None:
    graph = _graph(top_level_only=True)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


def test_no_upward_arrows() -> None:
    upward = [
        f"{module} imports {target}"
        for module, targets in _graph(top_level_only=False).items()
        for target in targets
        if LAYER[target.split(".")[0]] > LAYER[module.split(".")[0]]
    ]
    assert not upward


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("torch", "ingest."),
        ("torchvision", "ingest."),
        ("qdrant_edge", "engine.vectorstore.edge"),
        ("qdrant_client", "engine.vectorstore.server"),
    ],
)
def test_heavy_packages_stay_in_their_rooms(package: str, allowed: str) -> None:
    users = sorted(
        module
        for module, path in MODULES.items()
        if any(n == package or n.startswith(f"{package}.") for n in _imports(path, False))
    )
    assert users, f"nothing imports {package}"
    assert all(m.startswith(allowed) for m in users), users


def test_every_module_opens_with_one_docstring() -> None:
    missing = [
        module
        for module, path in MODULES.items()
        if not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert not missing
