"""Import rules that keep the shape: resources never reach into areas or the lab; the pure core never imports
Dagster. Checked on the source (AST), so a lazy import inside a function is caught too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from regression_pipelines.lab.settings import REPO_ROOT


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((REPO_ROOT / folder).rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(REPO_ROOT)} imports {name}")
    return found


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("resources", ("assets", "regression_pipelines.lab")),
        ("assets", ("dagster", "dagster_postgres", "dagster_webserver")),  # areas are pure; the kit is the glue
        ("regression_pipelines/detection", ("dagster", "assets", "resources")),
        ("regression_pipelines/lab", ("assets", "resources", "dagster")),
    ],
)
def test_import_rules(folder: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(folder, forbidden) == []


@pytest.mark.parametrize(
    "module",
    ["regression_pipelines/results.py", "regression_pipelines/measure.py", "regression_pipelines/kit/config.py"],
)
def test_pure_modules_do_not_import_dagster(module: str) -> None:
    assert not {n for n in _imports(REPO_ROOT / module) if n.split(".")[0] == "dagster"}


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself can fail: a resource importing an area is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from assets.cache_coherence import scenario\n")
    assert "assets.cache_coherence" in _imports(bad)
