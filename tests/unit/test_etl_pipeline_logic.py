"""Pure parts of the ETL pipeline area: the conservation oracle, the transform's refusals, the generator, the
drained-queues judge, the config's one-line errors and the source/loaded Parquet files."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pydantic
import pytest

from assets.etl_pipeline import batch, broker, oracle
from assets.etl_pipeline.config import EtlConfig
from assets.etl_pipeline.generator import generate, tenant_names
from assets.etl_pipeline.transform import InvalidJob, extract, transform
from regression_pipelines.kit import describe_validation_error

PRODUCED = {"a1": ("acme", True), "a2": ("acme", True), "a3": ("acme", False), "g1": ("globex", True)}
ATTEMPTED = [*PRODUCED, "g2"]  # g2 was published but its confirm never came


def test_exact_conservation_passes() -> None:
    c = oracle.conserve(PRODUCED, ATTEMPTED, ["a1", "a2", "g1"], ["a3"], [("a3", "acme", "rejected")])
    inv = oracle.conservation_invariant(c)
    assert inv.passed and "acme: 3 = 2 + 1" in inv.detail and inv.facts["lost"] == 0


def test_lost_jobs_are_attributed_to_the_broker_when_it_dead_lettered_them() -> None:
    c = oracle.conserve(PRODUCED, ATTEMPTED, ["a1"], ["a3"], [("a2", "acme", "maxlen")])
    inv = oracle.conservation_invariant(c)
    assert not inv.passed and inv.facts["lost"] == 2 and inv.facts["dropped_by_broker.maxlen"] == 1
    assert "1 of them dropped by the broker: x-max-length overflow (drop-head)" in inv.detail
    assert "1 not dead-lettered by the broker" in inv.detail


def test_duplicates_unexpected_recovered_and_misfiled_are_counted() -> None:
    c = oracle.conserve(PRODUCED, ATTEMPTED, ["a1", "a1", "a2", "g1", "zz", "g2", "a3"], [], [])
    assert (c.total("duplicated"), c.total("unexpected"), c.total("recovered"), c.misfiled) == (1, 1, 1, 1)
    assert not oracle.conservation_invariant(c).passed


def test_drained_needs_empty_queues_and_a_row_per_dead_letter() -> None:
    assert oracle.drained_invariant({"q": 0}, ["a3"], ["a3"]).passed
    inv = oracle.drained_invariant({"q": 2}, ["a3", "x"], ["a3"])
    assert not inv.passed and "messages left in {'q': 2}" in inv.detail and "1 rejected to the DLQ" in inv.detail


def test_a_missing_dead_letter_fails_without_a_guessed_cause() -> None:
    """Issue 17: the oracle counts; the cause is what the run observed on the broker (added by the scenario)."""
    inv = oracle.drained_invariant({"q": 0}, ["a3", "a3"], ["a3", "g1"])
    assert not inv.passed and inv.detail == "1 failed_jobs rows without a dead letter"


@pytest.mark.parametrize(
    ("queue_type", "max_length", "overflow", "strategy"),
    [
        ("classic", 0, "reject-publish", "at-most-once"),
        ("quorum", 0, "reject-publish", "at-least-once"),
        ("quorum", 50, "reject-publish", "at-least-once"),
        ("quorum", 50, "drop-head", "at-most-once"),
    ],
)
def test_quorum_queues_dead_letter_at_least_once_unless_they_drop_head(
    queue_type: str, max_length: int, overflow: str, strategy: str
) -> None:
    topology = broker.Topology("p", queue_type=queue_type, max_length=max_length, overflow=overflow)
    args = topology.work_arguments()
    assert topology.dead_letter_strategy == strategy
    assert (args.get("x-dead-letter-strategy") == "at-least-once") == (strategy == "at-least-once")
    if strategy == "at-least-once":
        assert args["x-overflow"] == "reject-publish"  # RabbitMQ needs it for at-least-once dead-lettering


def test_a_recovered_row_is_expected_in_the_loaded_table() -> None:
    c = oracle.conserve({"a1": ("acme", True)}, ["a1", "a2", "a3"], ["a1", "a2"], ["a3"], [])
    assert (c.total("loaded"), c.total("recovered"), c.rows_expected()) == (1, 2, 2)
    assert oracle.conservation_invariant(c).passed


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"\xff\xfe", "not text"),
        (b'{"key": ', "not JSON"),
        (b"[1]", "not an object"),
        (b"x" * 5000, "oversized"),
    ],
)
def test_extract_refuses_unreadable_bodies(body: bytes, says: str) -> None:
    with pytest.raises(InvalidJob, match=says):
        extract(body)


def test_generator_is_seeded_skewed_and_its_invalid_jobs_are_refused() -> None:
    jobs = generate(2000, 4, 0.1, seed=3)
    assert [j.job_id for j in jobs] == [j.job_id for j in generate(2000, 4, 0.1, seed=3)]
    volume = Counter(j.tenant for j in jobs)
    last = tenant_names(4)[-1]
    assert volume["acme"] > 2 * volume[last] > 0 and set(volume) == set(tenant_names(4))
    for job in jobs:
        try:
            transform(extract(job.body))
            refused = False
        except InvalidJob:
            refused = True
        assert refused != job.valid, job


def test_drop_field_fault_loses_the_field() -> None:
    record = extract(generate(1, 1, 0.0, seed=1)[0].body)
    assert "priority" in transform(record) and "priority" not in transform(record, drop_field="priority")


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"queue_type": "stream"}, "queue_type: 'stream' is unknown; use one of classic, quorum"),
        ({"fault": "burst"}, "max_length: must be > 0 with fault=burst"),
        ({"fault": "worker_sigkill", "jobs": 100}, "jobs: must be >= 4 x batch_size (800)"),
        ({"overflow": "drop-tail"}, "overflow: 'drop-tail' is unknown; use one of drop-head"),
        ({"max_priority": 3, "queue_type": "quorum"}, "max_priority: quorum queues (RabbitMQ 3.x) have no priorities"),
        ({"max_priority": 256}, "max_priority: 256 is above the maximum 255"),
    ],
)
def test_bad_settings_name_the_field(settings: dict[str, object], says: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        EtlConfig(**settings)
    assert says in describe_validation_error(caught.value)


def test_source_batch_round_trips_through_parquet_and_duckdb_describes_the_file(tmp_path: Path) -> None:
    """The producers publish what the file holds (poison bodies included); its figures are the file's own."""
    jobs = generate(300, 3, 0.1, seed=5, poison_rate=0.05)
    path = tmp_path / "source.parquet"
    batch.write_source(jobs, path)
    assert batch.read_source(path) == jobs
    stage = batch.source_stage(path, seed=5)
    assert stage["dagster/row_count"] == 300 and stage["seed"] == 5 and stage["path"] == path
    assert stage["rows_per_tenant"] == dict(Counter(j.tenant for j in jobs))
    assert stage["malformed"] == sum(not j.valid for j in jobs) > 0
    assert stage["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_loaded_rows_are_exported_with_a_missing_field_as_null(tmp_path: Path) -> None:
    rows = [
        ("j1", "acme", "ACME-1", "t", "open", None, 3, 1.0, 2.0),
        ("j2", "globex", "GLOB-1", "t", "done", 2, 0, 1.0, 2.5),
    ]
    path = tmp_path / "loaded.parquet"
    batch.export_loaded(rows, path)
    assert batch.loaded_stage(path, "etl_x_jobs") == {
        "table": "etl_x_jobs",
        "path": path,
        "dagster/row_count": 2,
        "rows_per_tenant": {"acme": 1, "globex": 1},
    }
    assert pq.read_table(path).column("priority").to_pylist() == [None, 2]


def test_a_failed_check_carries_the_observed_cause_and_the_injected_fault() -> None:
    from assets.etl_pipeline.scenario import _with_cause
    from regression_pipelines.results import Invariant

    observed = {"cause": "trigger t added on public.etl_x_jobs (seen 1.0 s into the run): CREATE TRIGGER ..."}
    passed = Invariant("conservation_per_tenant", True, "0 lost")
    assert _with_cause(passed, observed, "none") is passed
    failed = _with_cause(Invariant("conservation_per_tenant", False, "2 lost"), observed, "none")
    assert failed.detail == f"2 lost — observed: {observed['cause']}"
    faulted = _with_cause(Invariant("conservation_per_tenant", False, "2 lost"), observed, "ack_before_commit")
    assert "— fault=ack_before_commit injected by the run config (loaders acked before commit" in faulted.detail


def test_a_run_that_published_nothing_does_not_pass_for_conserving_nothing() -> None:
    """Found from outside: PostgreSQL down while the workers started, nothing published, every check passed."""
    inv = oracle.conservation_invariant(oracle.conserve({}, [], [], [], []), unpublished=200, batch=200)
    assert not inv.passed and inv.detail.startswith("200 of 200 jobs never published with a confirm")
    assert inv.facts["unpublished"] == 200
