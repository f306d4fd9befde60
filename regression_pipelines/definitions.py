"""The code location: every area asset, job, schedule, sensor and resource in one Definitions object."""

from __future__ import annotations

import dagster as dg

from assets.cache_coherence import ASSETS as CACHE_ASSETS
from regression_pipelines.jobs import JOBS
from regression_pipelines.resources_config import build_resources

defs = dg.Definitions(
    assets=[*CACHE_ASSETS],
    jobs=JOBS,
    resources=build_resources(),
)
