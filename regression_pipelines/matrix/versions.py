"""What `--versions` and `--settings` mean: the variants a matrix compares, each a label plus how to run it.

- A Python library (`deltalake==1.5.0`): the areas' engine calls run in an isolated environment uv builds from
  this project's lock with that one package overridden (`envs`).
- A server built from source (`citus==13.2.0`): the lab's Citus service restarts from that version's private
  install (`citus_install`) before the variant's rounds.
- A named setting set (`--settings lru:cache_coherence.fault=none;...`): the same code and servers, other area
  settings, given like `--set` (server settings the areas take, e.g. Redis eviction, compare this way).

Every variant of one matrix is of one kind and, for versions, of one package: a grid compares like with like.
Pure: no Dagster, no subprocesses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Python-library components an area's engine calls use (name on PyPI -> how people call it).
PYTHON_COMPONENTS = {
    "deltalake": "deltalake",
    "duckdb": "duckdb",
    "pyarrow": "pyarrow",
    "redis": "redis",
    "psycopg": "psycopg",
    "pika": "pika",
    "pyspark": "the Spark client",
}
SERVER_COMPONENTS = {"citus": "Citus (private build per version, the lab's citus service restarts from it)"}
PYTHON, SERVER, SETTINGS = "python", "server", "settings"
_SPEC = re.compile(r"^([A-Za-z0-9_.-]+)==([A-Za-z0-9_.+-]+)$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class SpecError(ValueError):
    """A --versions or --settings value that cannot be used; the message names the part and the fix."""


@dataclass(frozen=True)
class Variant:
    """One column of the grid: `label` is what the grid, tags and JSON call it."""

    label: str
    kind: str  # PYTHON, SERVER or SETTINGS
    package: str = ""
    version: str = ""
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # area -> key -> value (SETTINGS)


def parse_versions(raw: str) -> list[Variant]:
    """`deltalake==1.5.0,deltalake==1.6.6` -> two PYTHON variants (one package, at least two distinct versions)."""
    items = [item.strip() for item in raw.split(",") if item.strip()]
    variants = []
    for item in items:
        match = _SPEC.match(item)
        if not match:
            raise SpecError(f"--versions {item!r}: expected PACKAGE==VERSION, e.g. deltalake==1.5.0")
        package, version = match.group(1).lower(), match.group(2)
        if package in PYTHON_COMPONENTS:
            kind = PYTHON
        elif package in SERVER_COMPONENTS:
            kind = SERVER
        else:
            known = ", ".join(sorted({*PYTHON_COMPONENTS, *SERVER_COMPONENTS}))
            raise SpecError(
                f"--versions {item!r}: {package!r} is not a component the matrix can vary; use one of {known}"
            )
        variants.append(Variant(label=f"{package}=={version}", kind=kind, package=package, version=version))
    _check_variants(variants, "--versions")
    packages = {v.package for v in variants}
    if len(packages) > 1:
        raise SpecError(f"--versions: one component per matrix, got {', '.join(sorted(packages))}")
    return variants


def parse_settings(items: Sequence[str], known_fields: Mapping[str, Sequence[str]]) -> list[Variant]:
    """`["lru:cache_coherence.fault=none;cache_coherence.readers=2", "ttl:..."]` -> SETTINGS variants.

    Each item is NAME:AREA.KEY=VALUE[;AREA.KEY=VALUE...] (the `--set` syntax, `;`-separated); an empty list
    after the colon (`NAME:`) is the areas' defaults.
    """
    from regression_pipelines.running.overrides import OverrideError, parse_overrides

    variants = []
    for item in items:
        name, sep, body = item.partition(":")
        name = name.strip()
        if not sep or not name or not _NAME.match(name):
            raise SpecError(
                f"--settings {item!r}: expected NAME:AREA.KEY=VALUE[;AREA.KEY=VALUE...], "
                "e.g. lru:cache_coherence.fault=none (NAME: letters, digits, . _ -)"
            )
        parts = [p.strip() for p in body.split(";") if p.strip()]
        try:
            overrides = parse_overrides(parts, known_fields)
        except OverrideError as exc:
            raise SpecError(f"--settings {name}: {exc}") from None
        variants.append(Variant(label=name, kind=SETTINGS, overrides=overrides))
    _check_variants(variants, "--settings")
    return variants


def _check_variants(variants: list[Variant], option: str) -> None:
    if len(variants) < 2:
        raise SpecError(f"{option}: give at least two to compare, e.g. {_example(option)}")
    labels = [v.label for v in variants]
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise SpecError(f"{option}: {', '.join(dupes)} given twice (the A/A control is built in: name each once)")


def _example(option: str) -> str:
    if option == "--versions":
        return "--versions deltalake==1.5.0,deltalake==1.6.6"
    return "--settings a:cache_coherence.readers=2 --settings b:cache_coherence.readers=4"


def merged_overrides(common: Mapping[str, Mapping[str, Any]], variant: Variant) -> dict[str, dict[str, Any]]:
    """The run config values of one variant: the `--set` ones for every variant, the variant's own on top."""
    merged: dict[str, dict[str, Any]] = {area: dict(values) for area, values in common.items()}
    for area, values in variant.overrides.items():
        merged.setdefault(area, {}).update(values)
    return merged
