"""Issue 19 on the lab: workloads that reach real bugs, and judges that do not take the system's word for it.

(a) a BEFORE INSERT trigger returning NULL for ~1% of rows: data_quality_gx fails (its expectations come from the
    producer's ledger, no longer from the rows loaded), and the failure is shrunk by replay to one job, written
    next to the run;
(b) isolation judged by reading back as the owner: a rule `DO INSTEAD NOTHING` on the cross-tenant insert is no
    leak; row-level security disabled, or a policy replaced by a permissive one, is;
(c) an adversarial workload (size limits, deep nesting, NUL, ids shared across tenants, republished jobs, unicode
    and quoted tenant ids) passes every check, with the coverage account in the metadata.
Small job counts, so each stays well under a minute on a loaded 2-core host.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from assets.etl_pipeline import AREA, batch, isolation, oracle, store
from assets.etl_pipeline.config import EtlConfig
from assets.etl_pipeline.generator import tenant_names
from regression_pipelines.kit import NO_LEFTOVERS, RUN_COMPLETED, RunContext, run_area
from regression_pipelines.lab.settings import LabSettings
from regression_pipelines.results import ScenarioResult
from tests.integration.test_etl_pipeline import _assert_nothing_left, _failed, _resources
from tests.integration.test_etl_verdicts import TRIGGER, dropping_trigger  # noqa: F401 - a fixture

SMALL = {"jobs": 200, "batch_size": 25, "max_seconds": 45.0, "seed": 19}


def _run(lab: LabSettings, tmp_path: Path, **settings: Any) -> ScenarioResult:
    return run_area(AREA, EtlConfig(**{**SMALL, **settings}), RunContext("test", _resources(lab), tmp_path))


def test_a_trigger_dropping_one_percent_fails_data_quality_and_is_shrunk_to_one_job(
    lab: LabSettings,
    tmp_path: Path,
    dropping_trigger: None,  # noqa: F811
) -> None:
    result = _run(lab, tmp_path, jobs=100, loaders=1, shrink_seconds=40.0)
    failed = _failed(result)
    jobs = batch.read_source(tmp_path / "source_batch.parquet")
    dropped = {j.key for j in jobs if j.valid and j.job_id.endswith("00")}
    assert len(dropped) >= 1
    gx = failed[oracle.DATA_QUALITY]  # the expected rows come from the producer's ledger
    assert "expect_table_row_count_to" in gx and "confirmed jobs without a row" in gx
    assert oracle.CONSERVATION in failed and f"trigger {TRIGGER} " in failed[oracle.CONSERVATION]
    assert RUN_COMPLETED not in failed and NO_LEFTOVERS not in failed, failed
    shrunk = str(result.environment[f"shrunk.{oracle.CONSERVATION}"])
    assert shrunk.startswith("shrunk to 1 jobs"), shrunk
    case = json.loads((tmp_path / f"etl_pipeline_{oracle.CONSERVATION}_shrunk.json").read_text())
    (job,) = case["jobs"]
    assert job["job_id"].endswith("00") and job["valid"] and (job["tenant"], job["job_id"]) in dropped
    assert case["settings"]["seed"] == 19 and case["settings"]["only_jobs"] == [job["index"]]
    _assert_nothing_left(lab, str(result.environment["run_prefix"]))


# -- isolation, probed directly on a run's tables -----------------------------------------------------------------
def _connect(lab: LabSettings) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1", port=lab.postgres_port, user=lab.postgres_user, password=lab.postgres_password,
        dbname=lab.postgres_db, autocommit=True,
    )  # fmt: skip


@pytest.fixture
def tables(lab: LabSettings) -> Iterator[tuple[store.Names, list[str], list[tuple[str, str]]]]:
    """A run's tables and role, two rows per tenant loaded as the workers load them."""
    names = store.Names.for_run(uuid.uuid4().hex[:8])
    tenants = tenant_names(3)  # a unicode and a quoted tenant id among them
    rows = [(f"j-{i}", tenant) for tenant in tenants for i in range(2)]
    with _connect(lab) as conn:
        store.create(conn, names)
    with _connect(lab) as conn:
        conn.autocommit = False
        store.worker_session(conn, names)
        for tenant in tenants:
            mine = [(job, 1.0, {"title": "t", "priority": 1}) for job, t in rows if t == tenant]
            store.load_rows(conn, names, tenant, mine)
            conn.commit()
    try:
        yield names, tenants, rows
    finally:
        with _connect(lab) as conn:
            store.drop(conn, names)


def _probe(lab: LabSettings, names: store.Names, tenants: list[str], rows: list[tuple[str, str]]) -> Any:
    return isolation.probe(lambda: _connect(lab), names, tenants, rows, {(t, j) for j, t in rows})


def test_a_rule_that_silently_skips_the_cross_tenant_insert_is_no_leak(lab: LabSettings, tables: Any) -> None:
    names, tenants, rows = tables
    with _connect(lab) as conn:
        conn.execute(
            sql.SQL(
                "CREATE RULE skip_foreign AS ON INSERT TO {} "
                "WHERE NEW.tenant_id <> current_setting('etl.tenant', true) DO INSTEAD NOTHING"
            ).format(sql.Identifier(names.jobs))
        )
    verdict = _probe(lab, names, tenants, rows)
    assert verdict.passed, verdict.detail  # the old probe: "no error" on the insert, so "a leak"
    assert verdict.facts["writes_silently_skipped"] >= len(tenants)
    assert "raised no error and landed nowhere" in verdict.detail


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("ALTER TABLE {} DISABLE ROW LEVEL SECURITY", "landed: read back as the owner"),
        ("DROP POLICY tenant_isolation ON {}; CREATE POLICY wide_open ON {} USING (true) WITH CHECK (true)",
         "rows of other tenants"),
    ],
)  # fmt: skip
def test_a_real_leak_is_reported(lab: LabSettings, tables: Any, fault: str, says: str) -> None:
    names, tenants, rows = tables
    with _connect(lab) as conn:
        table = sql.Identifier(names.jobs)
        for statement in fault.split("; "):
            conn.execute(sql.SQL(statement).format(table, table))
    verdict = _probe(lab, names, tenants, rows)
    assert not verdict.passed and verdict.facts["leaks"] >= 1
    assert says in verdict.detail


def test_the_clean_probe_passes_and_leaves_no_probe_rows(lab: LabSettings, tables: Any) -> None:
    names, tenants, rows = tables
    verdict = _probe(lab, names, tenants, rows)
    assert verdict.passed and verdict.facts["writes_silently_skipped"] == 0, verdict.detail
    with _connect(lab) as conn:
        left = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(names.jobs))).fetchone()
        marked = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE title LIKE 'isolation-probe-%'").format(sql.Identifier(names.jobs))
        ).fetchone()
    assert left == (len(rows),) and marked == (0,)


# -- an adversarial workload: every check passes, and the run says what it reached --------------------------------
def test_an_adversarial_workload_passes_every_check_and_accounts_for_its_coverage(
    lab: LabSettings, tmp_path: Path
) -> None:
    result = _run(
        lab, tmp_path, jobs=300, tenants=6, adversarial_rate=0.3, duplicate_id_rate=0.1, republish_rate=0.05,
        frame_bodies=True,
    )  # fmt: skip
    assert _failed(result) == {}
    assert result.environment["seed"] == 19 and result.environment["profile"] == "quick"
    coverage = json.loads(str(result.environment["coverage"]))
    shapes = coverage["shapes"]
    for name in ("json_nested_past_recursion_limit", "nul_in_text", "body_empty", "body_past_limit",
                 "body_frame_plus_1", "title_past_limit"):  # fmt: skip
        assert shapes[name].get("refused_by_design", 0) >= 1 and not shapes[name].get("refused"), (name, shapes)
    for name in ("body_at_limit", "title_at_limit", "duplicate_id_across_tenants", "republished"):
        assert shapes[name].get("accepted", 0) >= 1, (name, shapes[name])
    assert result.metric("coverage.refused_unexpectedly").value == 0
    assert result.metric("coverage.value_classes_used").value >= 20
    jobs = batch.read_source(tmp_path / "source_batch.parquet")
    shared = {j.job_id for j in jobs if j.shape == "duplicate_id_across_tenants"}
    assert shared and result.metric("jobs.lost").value == 0  # both tenants' jobs with one id were loaded
    _assert_nothing_left(lab, str(result.environment["run_prefix"]))
