"""Thin Dagster glue shared by every area asset: invariants become asset checks, metrics metadata."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from regression_pipelines.results import ScenarioResult, to_metadata


def invariant_check_specs(asset_key: str, invariant_names: Sequence[str]) -> list[dg.AssetCheckSpec]:
    """One AssetCheckSpec per invariant the area promises to evaluate on every materialization."""
    return [dg.AssetCheckSpec(name=name, asset=asset_key, description=f"invariant: {name}") for name in invariant_names]


def to_materialize_result(result: ScenarioResult, invariant_names: Sequence[str]) -> dg.MaterializeResult:
    """Metadata for plots, and one check result per declared invariant (a missing one fails loudly)."""
    produced = {inv.name: inv for inv in result.invariants}
    unknown = sorted(set(produced) - set(invariant_names))
    if unknown:
        raise ValueError(f"{result.area}: invariants {unknown} are not declared as asset checks")
    check_results = []
    for name in invariant_names:
        inv = produced.get(name)
        if inv is None:
            check_results.append(
                dg.AssetCheckResult(
                    check_name=name,
                    passed=False,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"detail": "the scenario did not evaluate this invariant"},
                )
            )
            continue
        check_results.append(
            dg.AssetCheckResult(
                check_name=name,
                passed=inv.passed,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"detail": inv.detail, **{k: v for k, v in inv.facts.items()}},
            )
        )
    return dg.MaterializeResult(metadata=to_metadata(result), check_results=check_results)


def performance_check(
    asset_key: str, policies: Mapping[str, Mapping[str, Any]] | None = None
) -> dg.AssetChecksDefinition:
    """The area's `performance_regression` check (export it next to the asset, e.g. in ASSET_CHECKS).

    A separate asset check rather than a spec on the asset: a declared spec must be yielded by the asset, and
    the verdict needs the stored history; see regression_pipelines/perf_check.py. `policies` overrides the
    default judgement per metric, e.g. `{"outage_s": {"upper_bound": 30.0}, "p99_ms": {"min_change_pct": 10}}`.
    """
    from regression_pipelines.perf_check import performance_regression_check

    return performance_regression_check(asset_key, policies)
