"""The code location: every area asset, job, schedule, sensor and resource in one Definitions object."""

from __future__ import annotations

import dagster as dg

from assets.cache_coherence import ASSET_CHECKS as CACHE_CHECKS
from assets.cache_coherence import ASSETS as CACHE_ASSETS
from assets.ha_failover import ASSET_CHECKS as HA_CHECKS
from assets.ha_failover import ASSETS as HA_ASSETS
from regression_pipelines.jobs import JOBS
from regression_pipelines.resources_config import build_resources
from regression_pipelines.schedules import SCHEDULES
from regression_pipelines.sensors import SENSORS

defs = dg.Definitions(
    assets=[*CACHE_ASSETS, *HA_ASSETS],
    asset_checks=[*CACHE_CHECKS, *HA_CHECKS],
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=SENSORS,
    resources=build_resources(),
)
