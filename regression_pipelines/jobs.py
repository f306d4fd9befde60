"""Jobs: the full regression (every area), the hourly subset that never touches a node, and the report alone.

Both regression jobs end with the reporting assets (scorecard -> report and exports), downstream of the areas.
"""

from __future__ import annotations

import dagster as dg

from regression_pipelines.reports.names import REPORT_GROUP, REPORT_JOB

AREAS = dg.AssetSelection.groups("areas")
REPORTS = dg.AssetSelection.groups(REPORT_GROUP)

full_regression = dg.define_asset_job(
    "full_regression",
    selection=AREAS | REPORTS,
    description="Every test area, checks included, then the scorecard, report and exports (nightly).",
)
hourly_regression = dg.define_asset_job(
    "hourly_regression",
    selection=(AREAS - AREAS.tag("destructive", "true")) | REPORTS,
    description="Areas that kill, pause or switch over nothing (safe hourly), then the scorecard and report.",
)
regression_report = dg.define_asset_job(
    REPORT_JOB,
    selection=REPORTS,
    description="Scorecard, HTML report and exports from what the instance already holds (no workload).",
)

JOBS = [full_regression, hourly_regression, regression_report]
