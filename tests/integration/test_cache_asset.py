"""The cache-coherence asset through Dagster: metadata, asset checks, and a clear failure on bad config."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.cache_coherence import AREA
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.results import metrics_from_metadata
from resources.postgres import PostgresResource
from resources.redis import RedisResource
from tests.areas import materialize_area, step_failure

FAST = {"max_seconds": 1.0, "max_ops": 4000, "settle_seconds": 0.2, "latency_seconds": 0.3, "shrink_seconds": 3}


def _resources(lab: LabSettings, password: str | None = None) -> dict[str, object]:
    return {
        "postgres": PostgresResource(
            port=lab.postgres_port,
            user=lab.postgres_user,
            password=password or lab.postgres_password,
            dbname=lab.postgres_db,
        ),
        "redis": RedisResource(port=lab.redis_port),
    }


def test_asset_records_metrics_and_checks(lab: LabSettings, dagster_home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        result = materialize_area(AREA, dagster_home, _resources(lab), FAST, instance)
        assert result.success
        (event,) = result.get_asset_materialization_events()
        metrics = {m.name: m for m in metrics_from_metadata(event.materialization.metadata)}
        assert metrics["write_through.hit_ratio"].direction.value == "higher_is_better"
        for instrument in ("redis_get", "pgbench_select"):  # the field's instruments, same servers, same run
            assert metrics[f"calibration.{instrument}_p50_ms"].value > 0
        assert metrics["calibration.cache_aside.cache_read_p50_ratio"].value > 0
        assert metrics["calibration.write_through.db_read_p50_ratio"].value > 0
        stored_text = repr(dict(event.materialization.metadata))
        assert lab.postgres_password not in stored_text
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {
            "no_divergence_after_settle": True,
            "stale_read_rate_within_bound": True,
            "ttl_expiry_honoured": True,
            "values_intact": True,
            "no_operation_errors": True,
            "run_completed": True,
            "no_leftovers": True,
            "performance_regression": True,
        }
        metadata = event.materialization.metadata
        assert "shapes" in str(metadata["env/coverage"].value)  # the coverage account is stored with the run
        assert int(str(metadata["env/seed"].value)) >= 0
        stored = instance.get_latest_materialization_event(dg.AssetKey("cache_coherence"))
        assert stored is not None and stored.run_id == result.run_id


def test_bad_password_fails_the_asset_with_a_masked_message(lab: LabSettings, dagster_home: Path) -> None:
    result = materialize_area(AREA, dagster_home, _resources(lab, password="s3cr3t-wrong"), FAST)
    assert not result.success
    message = step_failure(result)
    assert "PostgresResource.password: authentication failed" in message
    assert "s3cr3t-wrong" not in message


def test_bad_setting_fails_before_any_workload(lab: LabSettings, dagster_home: Path) -> None:
    result = materialize_area(AREA, dagster_home, _resources(lab), {"fault": "sometimes"})
    assert not result.success
    assert "invalid cache_coherence config: fault: 'sometimes' is unknown; use one of none" in step_failure(result)
