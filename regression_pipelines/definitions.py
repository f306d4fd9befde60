"""The code location: every discovered area (asset + checks), the reporting assets downstream of them, jobs,
schedules, sensors and resources."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from regression_pipelines.jobs import JOBS, REGRESSION_JOBS, regression_report
from regression_pipelines.kit import Area
from regression_pipelines.kit.discovery import discover_areas
from regression_pipelines.kit.factory import area_asset
from regression_pipelines.reports.assets import report_after_run_sensors, reporting_assets
from regression_pipelines.resources_config import build_resources
from regression_pipelines.schedules import SCHEDULES
from regression_pipelines.sensors import SENSORS


def build_definitions(areas: Sequence[Area]) -> dg.Definitions:
    return dg.Definitions(
        assets=[*(area_asset(area) for area in areas), *reporting_assets(areas)],
        jobs=JOBS,
        schedules=SCHEDULES,
        sensors=[*SENSORS, *report_after_run_sensors(REGRESSION_JOBS, regression_report)],
        resources=build_resources(),
    )


AREAS = discover_areas()
defs = build_definitions(AREAS)
