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


# Lab signal helpers that the kit's nemesis library replaces (branch nemeses: kit.nemeses.lab); each entry
# goes when its area switches to the kit.
PENDING_LAB_HELPERS: tuple[str, ...] = ()


def _area_violations() -> list[str]:
    """assets.<x> may import only assets.<x>.* among the areas, and never the lab."""
    found = []
    for area in sorted(p for p in (REPO_ROOT / "assets").iterdir() if (p / "__init__.py").is_file()):
        own = f"assets.{area.name}"
        for path in sorted(area.rglob("*.py")):
            for name in _imports(path):
                other_area = name.startswith("assets.") and not (name == own or name.startswith(own + "."))
                lab = name == "regression_pipelines.lab" or name.startswith("regression_pipelines.lab.")
                pending = lab and str(path.relative_to(REPO_ROOT)) in PENDING_LAB_HELPERS
                if (other_area or lab or name == "assets") and not pending:
                    found.append(f"{path.relative_to(REPO_ROOT)} imports {name}")
    return found


def test_no_area_imports_another_area_or_the_lab() -> None:
    """Shared pieces live in the kit (ledgers, checkers, nemeses), never in another area; the lab is reached
    only through the kit's nemeses."""
    assert _area_violations() == []


def test_the_rule_catches_a_violation(tmp_path: Path) -> None:
    """The checker itself can fail: a resource importing an area is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from assets.cache_coherence import scenario\n")
    assert "assets.cache_coherence" in _imports(bad)


def test_the_area_rule_catches_an_area_importing_another(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    area = tmp_path / "assets" / "one"
    area.mkdir(parents=True)
    (area / "__init__.py").write_text("from assets.one import x\nfrom assets.two.ledger import Op\n")
    (area / "lab.py").write_text("import regression_pipelines.lab.control\n")
    monkeypatch.setitem(globals(), "REPO_ROOT", tmp_path)
    assert _area_violations() == [
        "assets/one/__init__.py imports assets.two.ledger",
        "assets/one/lab.py imports regression_pipelines.lab.control",
    ]
