"""Running chaos cells through the real Dagster asset (the kit's factory), for tests and the matrix benchmark."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

from regression_pipelines.kit import Area, nemeses
from regression_pipelines.kit.chaos import Cell, CellOutcome, CheckSeen, facts_from_metadata, judge_cell
from regression_pipelines.kit.run import endpoints
from regression_pipelines.results import ENV_PREFIX, metric_values
from tests.areas import materialize_area, skip_reasons

CELL_NEMESIS = {"nemesis_at_s": 0.5, "nemesis_for_s": 1.0, "allow_destructive": True}


def run_cell(
    area: Area,
    nemesis: str,
    resources: Mapping[str, Any],
    home: Path,
    settings: Mapping[str, Any] | None = None,
    instance: dg.DagsterInstance | None = None,
) -> CellOutcome:
    """Materialize `area` with `nemesis` on the lab and judge how the cell ended (never raises for the area)."""
    config = {**CELL_NEMESIS, **(settings or {}), "nemesis": nemesis}
    cell = Cell(area.name, nemesis)
    started = time.monotonic()
    result = materialize_area(area, home, resources, config, instance)
    seconds = time.monotonic() - started
    if not result.success:
        failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        text = failures[0].step_failure_data.error.to_string() if failures else "the run failed"
        outcome = judge_cell(cell, area.checks, {}, {}, {}, step_failure=text)
    else:
        events = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey(area.name)]
        metadata = events[0].materialization.metadata if events else {}
        checks = {
            e.check_name: CheckSeen(
                e.passed, str(getattr(e.metadata.get("detail"), "value", "")), facts_from_metadata(e.metadata)
            )
            for e in result.get_asset_check_evaluations()
            if e.check_name != "performance_regression"
        }
        metrics = {name: float(v.value) for name, v in metric_values(metadata).items()}  # whatever the key's unit
        environment = {
            k.removeprefix(ENV_PREFIX): str(v.value) for k, v in metadata.items() if k.startswith(ENV_PREFIX)
        }
        skipped = skip_reasons(result).get(area.name)  # a skip is an observation, never a materialization
        outcome = judge_cell(cell, area.checks, checks, metrics, environment, skipped=skipped)
    outcome.seconds = seconds
    return outcome


def service_healthy(area: Area, nemesis: str, resources: Mapping[str, Any], bound_s: float = 30.0) -> str:
    """'' once every service the nemesis touches answers a fresh client again (bounded); else the last error."""
    found = endpoints({key: resources[key] for key in area.resources})
    touched = [e for key, e in found.items() if key in nemeses.by_name(nemesis).services and e.probe is not None]
    deadline, error = time.monotonic() + bound_s, ""
    for endpoint in touched:
        while True:
            try:
                endpoint.probe()  # type: ignore[misc]
                error = ""
                break
            except Exception as exc:
                error = f"{endpoint.describe()}: {type(exc).__name__}: {exc}"
                if time.monotonic() >= deadline:
                    return error
                time.sleep(0.2)
    return error


# -- the chaos matrix over the real areas ------------------------------------------------------------------------

# Small settings per area: a bounded workload long enough for a nemesis at 0.5 s (and rabbitmqctl's ~3 s).
MATRIX_SETTINGS: dict[str, dict[str, Any]] = {
    "cache_coherence": {
        "modes": ["cache_aside"], "max_seconds": 2.5, "settle_seconds": 0.3, "latency_seconds": 0.2, "calibrate": False,
    },
    "etl_pipeline": {"jobs": 200},
    "delta_cdf": {
        "initial_rows": 120, "serial_commits": 10, "concurrent_commits": 3, "replay_pairs": 3, "split_triples": 3,
        "read_repeats": 1, "checkpoint_interval": 2, "spark": "off", "nemesis_at_s": 0.05,
    },  # a count-bound workload that a fast, warm host finishes in < 1 s: the fault starts early, not by luck
    "ha_health": {"latency_statements": 50, "calibrate": False, "nemesis_at_s": 0.0},  # a workload of < 0.5 s
    "citus_sharding": {
        "statements": 40, "copy_rows": 200, "router_queries": 30, "multi_shard_queries": 5, "join_queries": 5,
        "minimize_replays": 4, "calibrate": False,
    },
}  # fmt: skip
# The sample puts each nemesis on the cheapest area it applies to (a delta_cdf cell takes seconds, etl's most).
SAMPLE_PREFER = ("delta_cdf", "cache_coherence", "ha_health", "citus_sharding", "etl_pipeline")


def matrix_areas() -> dict[str, Area]:
    """The non-destructive areas the matrix runs over (discovered, as the code location finds them)."""
    from regression_pipelines.kit.discovery import discover_areas

    return {area.name: area for area in discover_areas() if not area.destructive}


def lab_services_for(area: Area) -> list[str]:
    """Lab services an area's resources need (Patroni through HAProxy)."""
    names = {"postgres": "postgres", "redis": "redis", "rabbitmq": "rabbitmq", "patroni": "haproxy", "citus": "citus"}
    return [names[key] for key in area.resources if key in names]
