"""The layout's rules: import-linter's contracts (pyproject.toml) hold on the tree and break on
the arrows they forbid; one opening docstring per module."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("engine", "ingest", "cli", "serve", "bench")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the packages under root, with the project's contracts."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "pyproject.toml"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold() -> None:
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # the two circles the layout once had
        ("cli/remote.py", "from cli.ingest import print_outcome", "No cycles are allowed in cli"),
        ("bench/compact.py", "from bench.quality import machine", "No cycles are allowed in bench"),
        # an arrow pointing up, a room pointing up, a back-end knowing the other, torch too low
        ("engine/vocabulary/geo.py", "import cli.main", "engine is not allowed to import cli"),
        (
            "engine/vectorstore/base.py",
            "import engine.events.eventlog",
            "engine.vectorstore is not allowed to import engine.events",
        ),
        (
            "engine/events/eventlog.py",
            "import engine.popularity.upkeep",
            "engine.events is not allowed to import engine.popularity",
        ),
        (
            "engine/vocabulary/schema.py",
            "import engine.catalog.taxonomy",
            "engine.vocabulary is not allowed to import engine.catalog",
        ),
        (
            "engine/application/home.py",
            "import serve.copies",
            "engine is not allowed to import serve",
        ),
        (
            "engine/vectorstore/edge/store.py",
            "import engine.vectorstore.server",
            "engine.vectorstore.edge is not allowed to import engine.vectorstore.server",
        ),
        ("serve/models.py", "import torch", "serve is not allowed to import torch"),
    ],
)
def test_the_contracts_break_on_what_they_forbid(
    tmp_path: Path, module: str, line: str, broken: str
) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert broken in done.stdout, done.stdout[-3000:]


def test_every_module_opens_with_one_docstring() -> None:
    missing = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not missing
