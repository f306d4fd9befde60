"""One cache_coherence run against the lab (REGRESS_LAB_* respected), through the kit as the asset runs it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from assets.cache_coherence import AREA
from regression_pipelines.kit import RunContext, run_area
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.results import ScenarioResult
from resources.postgres import PostgresResource
from resources.redis import RedisResource


def lab_resources() -> dict[str, Any]:
    lab = LabSettings.from_env()
    postgres = PostgresResource(
        port=lab.postgres_port, user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
    )
    return {"postgres": postgres, "redis": RedisResource(port=lab.redis_port)}


def run_once(overrides: dict[str, Any], out_dir: Path | None = None) -> ScenarioResult:
    """The area's result for these settings (validated like `--set`); shrunk cases go to `out_dir`."""
    config = AREA.config.model_validate(overrides)
    out = out_dir or Path(tempfile.mkdtemp(prefix="cache_coherence-"))
    return run_area(AREA, config, RunContext("benchmark", lab_resources(), out))
