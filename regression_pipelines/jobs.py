"""Jobs: the full regression (every area) and the hourly subset that never touches a node."""

from __future__ import annotations

import dagster as dg

AREAS = dg.AssetSelection.groups("areas")

full_regression = dg.define_asset_job(
    "full_regression", selection=AREAS, description="Every test area, checks included (nightly)."
)
hourly_regression = dg.define_asset_job(
    "hourly_regression",
    selection=AREAS - AREAS.tag("destructive", "true"),
    description="Areas that kill, pause or switch over nothing (safe hourly).",
)

JOBS = [full_regression, hourly_regression]
