"""Pure parts of the ETL pipeline area: the conservation oracle, the transform's refusals, the generator, the
drained-queues judge and the config's one-line errors."""

from __future__ import annotations

from collections import Counter

import pydantic
import pytest

from assets.etl_pipeline import oracle
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
    assert volume["acme"] > 2 * volume["umbrella"] > 0 and set(volume) == set(tenant_names(4))
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
    ],
)
def test_bad_settings_name_the_field(settings: dict[str, object], says: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        EtlConfig(**settings)
    assert says in describe_validation_error(caught.value)
