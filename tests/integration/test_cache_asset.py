"""The cache-coherence asset through Dagster: metadata, asset checks, and a clear failure on bad config."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.cache_coherence import cache_coherence
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.results import metrics_from_metadata
from resources.postgres import PostgresResource
from resources.redis import RedisResource
from resources.warehouse import WarehouseResource

FAST = {"max_seconds": 1.0, "max_ops": 4000, "settle_seconds": 0.2}


def _resources(lab: LabSettings, home: Path, password: str | None = None) -> dict[str, object]:
    return {
        "postgres": PostgresResource(
            port=lab.postgres_port, user=lab.postgres_user, password=password or lab.postgres_password
        ),
        "redis": RedisResource(port=lab.redis_port),
        "warehouse": WarehouseResource(path=str(home / "warehouse.duckdb")),
    }


def test_asset_records_metrics_and_checks(lab: LabSettings, dagster_home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            [cache_coherence],
            instance=instance,
            resources=_resources(lab, dagster_home),
            run_config={"ops": {"cache_coherence": {"config": FAST}}},
        )
        assert result.success
        (event,) = result.get_asset_materialization_events()
        metrics = {m.name: m for m in metrics_from_metadata(event.materialization.metadata)}
        assert metrics["write_through.hit_ratio"].direction.value == "higher_is_better"
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {
            "no_divergence_after_settle": True,
            "stale_read_rate_within_bound": True,
            "ttl_expiry_honoured": True,
        }
        stored = instance.get_latest_materialization_event(dg.AssetKey("cache_coherence"))
        assert stored is not None and stored.run_id == result.run_id


def test_bad_password_fails_the_asset_with_a_masked_message(lab: LabSettings, dagster_home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            [cache_coherence],
            instance=instance,
            resources=_resources(lab, dagster_home, password="s3cr3t-wrong"),
            run_config={"ops": {"cache_coherence": {"config": FAST}}},
            raise_on_error=False,
        )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.to_string()
    assert "PostgresResource.password: authentication failed" in message
    assert "s3cr3t-wrong" not in message


def test_bad_setting_fails_before_any_workload(lab: LabSettings, dagster_home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            [cache_coherence],
            instance=instance,
            resources=_resources(lab, dagster_home),
            run_config={"ops": {"cache_coherence": {"config": {"fault": "sometimes"}}}},
            raise_on_error=False,
        )
    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "fault: 'sometimes' is unknown" in failure.step_failure_data.error.to_string()
