"""Issue 19, the pure parts of the ETL area: the seeded adversarial generator and its input contract, the
profiles, the coverage account, the producer's ledger behind the GX suite, keys shared across tenants in the
conservation oracle, and shrinking by replay (with a fake replay)."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from assets.etl_pipeline import batch, oracle, quality, shapes, shrink
from assets.etl_pipeline.config import EtlConfig
from assets.etl_pipeline.generator import Job, for_config, generate, tenant_names
from assets.etl_pipeline.transform import MAX_BODY_BYTES, InvalidJob, extract, transform
from regression_pipelines.results import Invariant, ScenarioResult

RICH = {"adversarial_rate": 0.3, "duplicate_id_rate": 0.05, "republish_rate": 0.05, "frame_bodies": True}


def _accepted(job: Job) -> bool:
    try:
        transform(json.loads(json.dumps(extract(job.body))))
    except InvalidJob:
        return False
    return True


def test_same_seed_same_jobs_byte_for_byte_and_another_seed_differs() -> None:
    one = generate(600, 6, 0.03, 11, 0.02, **RICH)
    assert [(j.job_id, j.tenant, j.body, j.valid, j.shape) for j in one] == [
        (j.job_id, j.tenant, j.body, j.valid, j.shape) for j in generate(600, 6, 0.03, 11, 0.02, **RICH)
    ]
    assert [j.body for j in one] != [j.body for j in generate(600, 6, 0.03, 12, 0.02, **RICH)]


def test_a_subset_replays_exactly_the_same_jobs() -> None:
    full = generate(400, 5, 0.03, 5, **RICH)
    picked = [3, 17, 18, 250, 399]
    assert generate(400, 5, 0.03, 5, only=picked, **RICH) == [full[i] for i in picked]


@pytest.mark.parametrize("seed", range(8))
def test_the_generator_s_validity_is_the_transform_s_verdict(seed: int) -> None:
    """The contract in shapes.expected_valid, written on its own, agrees with the pipeline's transform."""
    jobs = generate(800, 8, 0.05, seed, 0.02, **RICH)
    disagree = [(j.shape, j.body[:80]) for j in jobs if _accepted(j) != j.valid]
    assert disagree == []


def test_every_edge_shape_is_reached_with_its_size() -> None:
    jobs = generate(200, 4, 0.0, 3, adversarial_rate=0.01, frame_bodies=True)
    by_shape = {j.shape: j for j in jobs}
    assert set(by_shape) >= {s.name for s in (*shapes.EDGE_SHAPES, *shapes.FRAME_SHAPES)}
    assert len(by_shape["body_empty"].body) == 0 and len(by_shape["body_one_byte"].body) == 1
    assert len(by_shape["body_at_limit"].body) == MAX_BODY_BYTES and by_shape["body_at_limit"].valid
    assert len(by_shape["body_past_limit"].body) == MAX_BODY_BYTES + 1 and not by_shape["body_past_limit"].valid
    sizes = {len(by_shape[s.name].body) for s in shapes.FRAME_SHAPES}
    assert sizes == {shapes.FRAME_BODY - 1, shapes.FRAME_BODY, shapes.FRAME_BODY + 1}
    assert shapes.MAX_BODY_BYTES == MAX_BODY_BYTES


def test_json_nested_past_the_recursion_limit_is_refused_not_a_crash() -> None:
    """Before issue 19, extract let RecursionError through: the extract worker crashed on every redelivery."""
    job = next(j for j in generate(100, 2, 0.0, 1, adversarial_rate=0.01) if j.shape == shapes.DEEP_NESTING.name)
    assert len(job.body) < MAX_BODY_BYTES
    with pytest.raises(InvalidJob, match="recursion limit"):
        extract(job.body)


def test_nul_in_stored_text_is_refused_by_the_transform() -> None:
    """PostgreSQL text and jsonb hold no NUL: loaded, one such job failed its whole batch."""
    record = {"key": "K", "title": "a\x00b", "status": "open", "priority": 1, "story_points": 1, "labels": []}
    with pytest.raises(InvalidJob, match="NUL"):
        transform(record)
    with pytest.raises(InvalidJob, match="NUL"):
        transform({**record, "title": "ok", "labels": ["x\x00"]})


def test_ids_shared_across_tenants_and_republished_jobs_are_generated() -> None:
    jobs = generate(1000, 6, 0.0, 2, duplicate_id_rate=0.05, republish_rate=0.05)
    tenants_per_id: dict[str, set[str]] = {}
    for job in jobs:
        tenants_per_id.setdefault(job.job_id, set()).add(job.tenant)
    assert any(len(t) > 1 for t in tenants_per_id.values())
    assert any(n > 1 for n in Counter(j.key for j in jobs).values())  # the same job published again


def test_tenant_ids_include_unicode_quotes_spaces_and_null_like_text() -> None:
    names = tenant_names(16)
    assert any(not n.isascii() for n in tenant_names(4)) and any("'" in n for n in tenant_names(4))
    assert {"NULL", "None"} <= set(names) and any(n != n.strip() for n in names) and len(set(names)) == 16


def test_profiles_fill_unset_settings_and_a_seed_is_drawn_per_run() -> None:
    quick, deep = EtlConfig(), EtlConfig(profile="deep")
    assert (quick.jobs, quick.tenants, quick.prefetch, quick.batch_size) == (2000, 4, 500, 200)
    assert deep.jobs == 40_000 and deep.tenants == 16 and deep.prefetch == deep.batch_size - 1 and deep.frame_bodies
    assert EtlConfig(profile="deep", jobs=50).jobs == 50  # an explicit setting wins
    assert isinstance(quick.seed, int) and EtlConfig(seed=5).seed == 5
    assert len({EtlConfig().seed for _ in range(5)}) > 1


def test_the_source_file_keeps_each_job_s_shape_and_value_classes(tmp_path: Path) -> None:
    jobs = for_config(EtlConfig(jobs=300, seed=4, adversarial_rate=0.3))
    path = tmp_path / "source.parquet"
    batch.write_source(jobs, path)
    back = batch.read_source(path)
    assert [(j.key, j.shape, j.values) for j in back] == [(j.key, j.shape, j.values) for j in jobs]


def test_the_coverage_account_tells_accepted_refused_by_design_unexpected_and_lost() -> None:
    jobs = generate(300, 4, 0.05, 8, 0.02, **{**RICH, "frame_bodies": False})
    produced = {j.key: (j.tenant, j.valid) for j in jobs}
    loaded = [j.key for j in jobs if j.valid]
    failed = [j.key for j in jobs if not j.valid]
    clean = shapes.account(jobs, produced, loaded, failed)
    assert clean.total("refused") == 0 and clean.total("error") == 0 and clean.total("refused_by_design") > 0
    assert "republished" in clean.exercised() and clean.value_classes_used() > 10
    victim = next(j for j in jobs if j.valid)
    wrong = shapes.account(jobs, produced, [k for k in loaded if k != victim.key], [*failed, victim.key])
    assert wrong.total("refused") >= 1  # a valid job in failed_jobs is refused unexpectedly
    lost = shapes.account(jobs, produced, [k for k in loaded if k != victim.key], failed)
    assert lost.total("error") >= 1
    assert json.loads(clean.to_json())["shapes"]["valid_job"]["accepted"] > 0


def test_conservation_keys_jobs_by_tenant_and_id() -> None:
    """Two tenants using one job id are two jobs: a table keyed on the id alone kept one, and the oracle keyed
    on the id alone could not tell."""
    produced = {("a", "j1"): ("a", True), ("b", "j1"): ("b", True)}
    c = oracle.conserve(produced, list(produced), [("a", "j1")], [], [("j1", "b", "rejected")])
    inv = oracle.conservation_invariant(c)
    assert not inv.passed and inv.facts["lost"] == 1 and "j1 ('b')" in inv.detail
    assert c.dropped_by_broker["rejected"] == 1
    assert oracle.conservation_invariant(oracle.conserve(produced, list(produced), list(produced), [], [])).passed


def _job(tenant: str, job_id: str, valid: bool = True) -> Job:
    return Job(job_id, tenant, b"{}", valid)


def test_the_ledger_comes_from_what_the_producer_published_and_the_broker_acked() -> None:
    jobs = [_job("a", "1"), _job("a", "2"), _job("b", "1"), _job("b", "3", valid=False), _job("a", "4")]
    produced = {j.key: (j.tenant, j.valid) for j in jobs[:4]}  # a/4 never confirmed
    ledger = quality.Ledger.from_published(jobs, produced)
    assert ledger.confirmed_valid == {quality.job_key(t, j) for t, j in (("a", "1"), ("a", "2"), ("b", "1"))}
    assert ledger.unknown_valid == {quality.job_key("a", "4")}


ROWS = [("1", "a", "K", "t", "open", 1, 0), ("2", "a", "K", "t", "done", 5, 100), ("1", "b", "K", "t", "open", 2, 3)]


def test_gx_fails_when_a_row_the_producer_published_is_missing() -> None:
    """Before issue 19 the expected row count was the rows loaded: a dropped row passed."""
    ledger = quality.Ledger.exact([("a", "1"), ("a", "2"), ("b", "1")])
    assert quality.validate(ROWS, ["a", "b"], ledger).passed
    verdict = quality.validate(ROWS[:2], ["a", "b"], ledger)
    assert not verdict.passed and "1 confirmed jobs without a row, e.g. b: 1" in verdict.detail
    assert "expect_table_row_count_to_equal" in verdict.detail
    with pytest.raises(TypeError, match="Ledger"):
        quality.validate(ROWS, ["a", "b"], 3)  # type: ignore[arg-type]


def test_gx_tolerates_jobs_whose_confirm_never_came_but_no_stranger() -> None:
    ledger = quality.Ledger(frozenset({quality.job_key("a", "1"), quality.job_key("a", "2")}),
                            frozenset({quality.job_key("b", "1")}))  # fmt: skip
    assert quality.validate(ROWS, ["a", "b"], ledger).passed
    assert quality.validate(ROWS[:2], ["a", "b"], ledger).passed
    stranger = quality.validate([*ROWS, ("9", "b", "K", "t", "open", 1, 1)], ["a", "b"], ledger)
    assert not stranger.passed and "1 rows of jobs never published as valid, e.g. b: 9" in stranger.detail


def _result(failed: set[str]) -> ScenarioResult:
    return ScenarioResult(area="etl_pipeline", invariants=[Invariant(c, c not in failed, "d") for c in shrink.CHECKS])


def test_shrinking_replays_subsets_and_writes_the_case(tmp_path: Path) -> None:
    config = EtlConfig(jobs=120, seed=9, shrink_seconds=60)
    jobs = for_config(config)
    culprit = next(i for i, j in enumerate(jobs) if j.valid and i > 50)
    batch.write_source(jobs, tmp_path / "source_batch.parquet")
    loaded = [(j.job_id, j.tenant, "K", "t", "open", 1, 1, 1.0, 2.0) for i, j in enumerate(jobs)
              if j.valid and i != culprit]  # fmt: skip
    batch.export_loaded(loaded, tmp_path / "loaded_jobs.parquet")
    replays: list[list[int]] = []

    def replay(c: EtlConfig) -> ScenarioResult:
        assert c.shrink_seconds == 0 and c.seed == 9
        replays.append(list(c.only_jobs or []))
        return _result({oracle.CONSERVATION} if culprit in (c.only_jobs or []) else set())

    done = shrink.shrink(_result({oracle.CONSERVATION}), config, replay, tmp_path)
    assert done[oracle.CONSERVATION].startswith("shrunk to 1 jobs in 2 replays")
    assert replays[0] == list(range(120)) and replays[1] == [culprit]
    case = json.loads((tmp_path / "etl_pipeline_conservation_per_tenant_shrunk.json").read_text())
    assert case["jobs"][0]["index"] == culprit and "only_jobs=[" in case["replay"]


def test_shrinking_is_skipped_when_the_fault_acts_on_timing(tmp_path: Path) -> None:
    config = EtlConfig(jobs=1000, fault="worker_sigkill", shrink_seconds=10)
    done = shrink.shrink(_result({oracle.CONSERVATION}), config, lambda c: pytest.fail("no replay"), tmp_path)
    assert done == {oracle.CONSERVATION: "not shrunk: fault=worker_sigkill acts on timing"}
    assert shrink.shrink(_result(set()), config, lambda c: pytest.fail("no replay"), tmp_path) == {}


def test_a_failure_that_does_not_come_back_on_fresh_state_is_named(tmp_path: Path) -> None:
    config = EtlConfig(jobs=50, seed=1, shrink_seconds=60)
    batch.write_source(for_config(config), tmp_path / "source_batch.parquet")
    batch.export_loaded([], tmp_path / "loaded_jobs.parquet")
    done = shrink.shrink(_result({oracle.DATA_QUALITY}), config, lambda c: _result(set()), tmp_path)
    assert "not caused by the jobs alone" in done[oracle.DATA_QUALITY]


def test_values_are_drawn_from_the_kit_domains() -> None:
    rng = random.Random(1)
    job = shapes.adversarial(rng, "j", "acme", 1)
    domains = {d for d, _c in job.values}
    assert {"title", "text", "timestamp"} <= domains
