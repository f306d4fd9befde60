"""The scorecard from a seeded Dagster instance (clean, failed invariant, regression, skipped, error), the
warehouse it writes (idempotent, rebuildable from the instance) and the exports (read back equal)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.reports import tables
from regression_pipelines.reports.model import AreaStatus, Scorecard
from regression_pipelines.reports.scorecard import SCORECARD_METADATA_KEY, latest_scorecard, sync_warehouse
from regression_pipelines.results import Metric, ScenarioResult
from resources.warehouse import WarehouseResource
from tests.areas import materialize_area, toy_area
from tests.report_history import REGRESSION_ROUND, ROUNDS, SKIP_REASON, SeededHistory, materialize_reports


@pytest.fixture(scope="module")
def reported(seeded_history: SeededHistory, tmp_path_factory: pytest.TempPathFactory) -> tuple[Scorecard, Path]:
    home = tmp_path_factory.mktemp("scorecard")
    result = materialize_reports(seeded_history.areas, seeded_history.instance, home)
    assert result.success
    scorecard = latest_scorecard(seeded_history.instance)
    assert scorecard is not None
    return scorecard, home


def test_each_area_gets_the_status_it_earned(reported: tuple[Scorecard, Path], seeded_history: SeededHistory) -> None:
    scorecard, _ = reported
    statuses = {card.area: card.status for card in scorecard.cards}
    assert statuses == {
        "broken_area": AreaStatus.FAILED,
        "skipped_area": AreaStatus.SKIPPED,
        "slow_area": AreaStatus.REGRESSED,
        "steady_area": AreaStatus.PASSED,
    }
    broken = scorecard.card("broken_area")
    assert broken.failed_invariants == {"no_lost_writes": "3 acknowledged writes lost"}
    assert broken.health == 60  # 100 - 40 for the one failed invariant, no regression, no earlier failure


def test_the_seeded_regression_names_its_metric_change_and_first_bad_run(
    reported: tuple[Scorecard, Path], seeded_history: SeededHistory
) -> None:
    slow = reported[0].card("slow_area")
    (regression,) = slow.regressions
    assert regression.metric == "read_p50_ms" and regression.verdict == "regression"
    assert 25 < regression.change_pct < 35  # 10 ms -> 13 ms
    assert regression.first_bad_run == seeded_history.seeder.run_ids[REGRESSION_ROUND]
    assert slow.health is not None and 70 <= slow.health < 100


def test_a_skipped_area_is_never_passed_and_has_no_score(reported: tuple[Scorecard, Path]) -> None:
    skipped = reported[0].card("skipped_area")
    assert skipped.skip_reason == SKIP_REASON
    assert skipped.health is None and not skipped.regressions and not skipped.failed_invariants


def test_volume_metrics_are_never_regressions(reported: tuple[Scorecard, Path]) -> None:
    steady = reported[0].card("steady_area")  # its `operations` count doubled mid-history
    assert steady.regressions == () and steady.health == 100 and steady.runs_in_window == ROUNDS


def test_an_area_whose_newest_attempt_failed_is_error(tmp_path: Path) -> None:
    """Its older figures would otherwise pass for current."""
    attempts = iter([None, ResourceConfigError("PostgresResource", "port", "nothing listening", "start it")])

    def produce() -> ScenarioResult:
        exc = next(attempts)
        if exc:
            raise exc
        return ScenarioResult("flaky_env", [Metric("p50_ms", 1.0, "ms")])

    area = toy_area(produce, name="flaky_env")
    with dg.instance_for_test() as instance:
        assert materialize_area(area, tmp_path, instance=instance).success
        failed = materialize_area(area, tmp_path, instance=instance)
        assert not failed.success
        assert materialize_reports([area], instance, tmp_path).success
        card = latest_scorecard(instance).card("flaky_env")  # type: ignore[union-attr]
    assert card.status is AreaStatus.ERROR and card.health == 0
    assert card.error_run_id == failed.run_id and "nothing listening" in card.error


def test_scorecard_metadata_is_markdown_and_json(
    seeded_history: SeededHistory, reported: tuple[Scorecard, Path]
) -> None:
    record = seeded_history.instance.fetch_materializations(dg.AssetKey("regression_scorecard"), limit=1).records[0]
    metadata = record.asset_materialization.metadata  # type: ignore[union-attr]
    markdown = metadata["scorecard"].value
    assert "| slow_area | **regressed** |" in markdown and "**read_p50_ms** +" in markdown
    assert Scorecard.from_json(metadata[SCORECARD_METADATA_KEY].value) == reported[0]
    assert metadata["health/steady_area"].value == 100 and "health/skipped_area" not in metadata


# --- the warehouse ---------------------------------------------------------------------------------------------


def _snapshot(path: Path) -> dict[str, list[tuple]]:
    with WarehouseResource(path=str(path)).connect() as conn:
        return {t: tables.read(conn, t).to_pylist() for t in tables.TABLES}


def test_warehouse_sync_is_idempotent_and_rebuilds_equal(seeded_history: SeededHistory, tmp_path: Path) -> None:
    instance, areas = seeded_history.instance, seeded_history.areas
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"))
    with warehouse.connect() as conn:
        first = sync_warehouse(instance, areas, conn)
        again = sync_warehouse(instance, areas, conn)
    assert first["runs"] == 4 * ROUNDS and first["invariants"] > 0 and first["verdicts"] > 0
    assert again == dict.fromkeys(tables.TABLES, 0)
    synced = _snapshot(tmp_path / "w.duckdb")
    with warehouse.connect() as conn:
        sync_warehouse(instance, areas, conn, rebuild=True)
    assert _snapshot(tmp_path / "w.duckdb") == synced
    (tmp_path / "w.duckdb").unlink()
    with warehouse.connect() as conn:
        sync_warehouse(instance, areas, conn)
    assert _snapshot(tmp_path / "w.duckdb") == synced
    metrics = synced["metrics"]
    assert {m["kind"] for m in metrics if m["metric"] == "operations"} == {"volume"}
    runs = {r["storage_id"] for r in synced["runs"]}
    assert {i["materialization_id"] for i in synced["invariants"]} <= runs  # each check result names its run


def test_a_warehouse_in_an_older_layout_is_rebuilt(seeded_history: SeededHistory, tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as conn:  # the kit's former per-area record
        conn.execute("CREATE TABLE metrics (run_id VARCHAR, area VARCHAR, metric VARCHAR, value DOUBLE)")
        conn.execute("INSERT INTO metrics VALUES ('r', 'x', 'm', 1.0)")
    with WarehouseResource(path=str(path)).connect() as conn:
        added = sync_warehouse(seeded_history.instance, seeded_history.areas, conn)
    assert added["runs"] == 4 * ROUNDS
    assert "x" not in {row["area"] for row in _snapshot(path)["metrics"]}


# --- the exports -----------------------------------------------------------------------------------------------


def _normalised(frame: pd.DataFrame) -> list[dict]:
    frame = frame.copy()
    frame["recorded_at"] = pd.to_datetime(frame["recorded_at"], utc=True)
    return json.loads(frame.to_json(orient="records", date_format="iso", date_unit="us"))


def test_exports_read_back_equal_in_duckdb_polars_and_pandas(reported: tuple[Scorecard, Path]) -> None:
    _, home = reported
    folder = home / "reports" / "exports"
    with WarehouseResource(path=str(home / "warehouse.duckdb")).connect() as conn:
        expected = {t: tables.read(conn, t) for t in tables.TABLES}
    for table, want in expected.items():
        parquet, js = folder / f"{table}.parquet", folder / f"{table}.json"
        assert want.num_rows > 0, table
        with duckdb.connect() as conn:
            conn.execute("SET TimeZone = 'UTC'")
            assert conn.sql(f"SELECT * FROM read_parquet('{parquet}')").to_arrow_table().equals(want), table
            from_json = conn.sql(f"SELECT * FROM read_json('{js}')").to_arrow_table()
        assert pl.read_parquet(parquet).to_arrow().cast(want.schema).equals(want), table
        assert pa.Table.from_pandas(pd.read_parquet(parquet), preserve_index=False).cast(want.schema).equals(want)
        reference = _normalised(want.to_pandas())
        assert _normalised(pd.read_json(js, dtype=False, convert_dates=False)) == reference, table
        assert _normalised(pl.read_json(js, infer_schema_length=None).to_pandas()) == reference, table
        assert _normalised(from_json.to_pandas()) == reference, table
    scorecard = json.loads((folder / "scorecard.json").read_text())
    assert Scorecard.from_json(scorecard) == reported[0]


def test_a_run_that_failed_before_its_scorecard_gets_a_report_run(tmp_path: Path) -> None:
    from regression_pipelines.definitions import build_definitions

    def broken() -> ScenarioResult:
        raise ResourceConfigError("PostgresResource", "port", "nothing listening", "start it")

    defs = build_definitions([toy_area(broken, name="down_area")])
    sensor = defs.get_sensor_def("report_after_failed_run")
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("full_regression").execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name,
            dagster_instance=instance,
            dagster_run=instance.get_run_by_id(result.run_id),  # type: ignore[arg-type]
            dagster_event=failure,
        ).for_run_failure()
        request = sensor(context)
    assert isinstance(request, dg.RunRequest) and request.run_key == f"after-{result.run_id}"
    assert sensor.job_name == "regression_reporting"  # type: ignore[attr-defined]


def _run_with_reports(areas: list[Any], instance: dg.DagsterInstance, home: Path) -> dg.ExecuteInProcessResult:
    """The areas and the reporting assets in one run, as full_regression runs them."""
    from regression_pipelines.kit.factory import area_asset
    from regression_pipelines.reports.assets import reporting_assets

    report = {"since": "7d", "out_dir": str(home / "reports")}
    return dg.materialize(
        [*(area_asset(area) for area in areas), *reporting_assets(areas)],
        instance=instance,
        resources={"warehouse": WarehouseResource(path=str(home / "warehouse.duckdb"))},
        run_config={
            "ops": {
                "regression_scorecard": {"config": {"since": "7d"}},
                "regression_report": {"config": report},
                "regression_exports": {"config": report},
            }
        },
    )


def test_a_skip_observation_is_skipped_everywhere_and_old_skip_materializations_still_read(tmp_path: Path) -> None:
    from regression_pipelines.kit import AreaSkipped

    def skipped() -> ScenarioResult:
        raise AreaSkipped("no Citus reachable at 127.0.0.1:1")

    area = toy_area(skipped, name="citus_like")
    measured = toy_area(lambda: ScenarioResult("measured", [Metric("p50_ms", 1.0, "ms")]), name="measured")
    with dg.instance_for_test() as instance:
        run = _run_with_reports([area, measured], instance, tmp_path)
        assert run.success  # one skipped area does not skip the reports (the scorecard's fan-in input)
        assert {e.asset_key.to_user_string() for e in run.get_asset_materialization_events()} == {
            "measured", "regression_scorecard", "regression_report", "regression_exports",
        }  # fmt: skip
        card = latest_scorecard(instance).card("citus_like")
        assert (card.status, card.skip_reason, card.run_id) == (AreaStatus.SKIPPED, "no Citus reachable at 127.0.0.1:1",
                                                                run.run_id)  # fmt: skip
        assert instance.get_run_by_id(run.run_id).tags["regress/verdict"] == "passed"  # skipped never fails it
        with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as conn:
            rows = conn.execute("SELECT status, skip_reason FROM runs WHERE area = 'citus_like'").fetchall()
        assert rows == [("skipped", "no Citus reachable at 127.0.0.1:1")]

        legacy = {"regress/area": "old_area", "regress/status": "skipped", "regress/skip_reason": "stored in 2026-11"}
        instance.report_runless_asset_event(dg.AssetMaterialization("old_area", metadata=legacy))
        old = toy_area(skipped, name="old_area")
        with duckdb.connect(str(tmp_path / "old.duckdb")) as conn:
            tables.ensure_schema(conn)
            from regression_pipelines.reports.scorecard import area_card
            from regression_pipelines.reports.window import window_start

            old_card = area_card(instance, old, conn, window_start("7d", datetime.now(UTC)))
        assert (old_card.status, old_card.skip_reason) == (AreaStatus.SKIPPED, "stored in 2026-11")


def test_a_failed_invariant_tags_the_successful_run_failed(tmp_path: Path) -> None:
    from regression_pipelines.results import Invariant

    def broken() -> ScenarioResult:
        return ScenarioResult("broken", [Metric("p50_ms", 1.0, "ms")], [Invariant("no_loss", False, "3 lost")])

    with dg.instance_for_test() as instance:
        run = _run_with_reports([toy_area(broken, name="broken", invariants=("no_loss",))], instance, tmp_path)
        stored = instance.get_run_by_id(run.run_id)
    assert stored.status == dg.DagsterRunStatus.SUCCESS and stored.tags["regress/verdict"] == "failed"
