"""The Delta CDF model and oracle: pure logic, judged on hand-made feeds (the real table is in integration)."""

from __future__ import annotations

import random

import pydantic
import pytest

from assets.delta_cdf import oracle
from assets.delta_cdf.config import DeltaCdfConfig
from assets.delta_cdf.model import Change, VersionedModel
from assets.delta_cdf.oracle import CommitInfo, Read, Readings
from assets.delta_cdf.workload import Planner, serial_kinds

A, B, C = (1, "p1", 10, None), (2, "p2", 20, None), (3, "p0", 30, "x")
A2 = (1, "p1", 15, None)


def model() -> VersionedModel:
    """v0 append A,B; v1 update A (+5); v2 OPTIMIZE; v3 delete B, v4 merge C."""
    return VersionedModel(
        {
            0: Change("append", rows=(A, B)),
            1: Change("update", keys=(1,), delta=5),
            2: Change("neutral", label="OPTIMIZE"),
            3: Change("delete", keys=(2,)),
            4: Change("merge", rows=(C,)),
        }
    )


FEED = {
    0: ((A, "insert", 0, 1000), (B, "insert", 0, 1000)),
    1: ((A, "update_preimage", 1, 2000), (A2, "update_postimage", 1, 2000)),
    2: (),
    3: ((B, "delete", 3, 4000),),
    4: ((C, "insert", 4, 5000),),
}
COMMITS = {
    0: CommitInfo(0, "WRITE", {"num_added_rows": 2}),
    1: CommitInfo(1, "UPDATE", {"num_updated_rows": 1}),
    2: CommitInfo(2, "OPTIMIZE", {}),
    3: CommitInfo(3, "DELETE", {"num_deleted_rows": 1}),
    4: CommitInfo(4, "MERGE", {"num_target_rows_inserted": 1, "num_target_rows_updated": 0}),
}


def readings(feed: dict | None = None, enabled: dict | None = None, **overrides: Read) -> Readings:
    """Readings of a faithful table, with any per-version feed or snapshot replaced."""
    feed = feed or FEED
    m = model()
    cdf = enabled or dict.fromkeys(range(5), True)
    plan = oracle.plan_ranges(cdf, seed=1, pairs=4, triples=4)
    r = Readings(model=m, cdf_enabled=cdf, commits=COMMITS, plan=plan)
    r.snapshots = {v: Read(rows=tuple(m.rows(v))) for v in range(5)}
    for a, b in plan.feed_ranges():
        r.feeds[(a, b)] = Read(rows=tuple(row for v in range(a, b + 1) for row in feed[v]))
    for key, read in overrides.items():
        kind, *bounds = key.split("_")
        if kind == "feed":
            r.feeds = {rng: (read if rng[0] <= int(bounds[0]) <= rng[1] else x) for rng, x in r.feeds.items()}
        else:
            r.snapshots[int(bounds[0])] = read
    counted = {v: Read(rows=x.rows, count=len(x.rows)) for v, x in r.snapshots.items()}
    r.engines = {"delta-rs": counted, "duckdb": dict(counted)}
    return r


def failed(r: Readings) -> set[str]:
    checks = [
        oracle.check_replay(r),
        oracle.check_well_formed(r),
        oracle.check_range_splitting(r),
        oracle.check_operation_metrics(r),
        oracle.check_compaction_and_time_travel(r),
        oracle.check_engines_agree(r, {}),
    ]
    return {c.name for c in checks if not c.passed}


def test_model_applies_every_kind_of_change() -> None:
    m = model()
    assert m.rows(-1) == [] and m.rows(1) == [A2, B] and m.rows(4) == [A2, C]
    assert [m.changed(v) for v in range(5)] == [True, True, False, True, True]
    overwrite = Change("overwrite_partition", rows=((7, "p1", 1, None),), part="p1").apply({1: A, 2: B})
    assert sorted(overwrite.values()) == [(2, "p2", 20, None), (7, "p1", 1, None)]
    with pytest.raises(ValueError, match="every version from 0"):
        VersionedModel({1: Change("append")})


def test_faithful_feed_passes_every_check() -> None:
    assert failed(readings()) == set()


def test_replay_removing_a_row_that_is_not_there_is_named() -> None:
    replayed, trouble = oracle.replay([A], [(B, "delete", 3, 0)])
    assert trouble == [f"v3 delete of a row that is not there: {B}"]
    assert oracle.difference(replayed, [A]) == ""


def test_lost_change_rows_fail_replay_and_metrics_only() -> None:
    feed = {**FEED, 3: ()}  # the delete's change rows are gone, the file is readable
    assert failed(readings(feed)) == {oracle.REPLAY, oracle.WELL_FORMED, oracle.OPERATION_METRICS}


def test_unreadable_version_is_judged_by_replay_alone() -> None:
    broken = Read(error="ArrowInvalid: Object at location _change_data/x not found")
    r = readings(feed_3=broken)
    assert failed(r) == {oracle.REPLAY}
    assert "unreadable" in oracle.check_replay(r).detail
    assert "versions 3 unreadable (judged by replay)" in oracle.check_well_formed(r).detail


def test_cdf_switched_off_for_a_data_change_fails_operation_metrics_alone() -> None:
    r = readings(enabled={0: True, 1: False, 2: True, 3: True, 4: True})
    assert r.plan.stretches == ((0, 0), (2, 4))
    assert failed(r) == {oracle.OPERATION_METRICS}
    assert "v1 UPDATE changed rows {'num_updated_rows': 1} with CDF switched off" in (
        oracle.check_operation_metrics(r).detail
    )


def test_feed_shape_problems_are_each_named() -> None:
    bad = {
        **FEED,
        1: ((A, "update_preimage", 1, 2000), (A2, "update_postimage", 1, 2500)),  # two timestamps
        3: ((B, "delete", 3, 500),),  # earlier than v1: goes backwards
        4: ((C, "upsert", 4, 5000),),  # not a protocol change type
    }
    detail = oracle.check_well_formed(readings(bad)).detail
    assert "v1 has 2 different _commit_timestamp values" in detail
    assert "_commit_timestamp goes backwards: v3" in detail
    unpaired = {**FEED, 1: ((A, "update_preimage", 1, 2000),)}
    assert "unpaired update images" in oracle.check_well_formed(readings(unpaired)).detail


def test_range_splitting_compares_whole_ranges_with_their_parts() -> None:
    r = readings()
    a, b = r.plan.stretches[0]
    r.feeds[(a, b)] = Read(rows=r.feeds[(a, b)].rows + ((C, "insert", 4, 5000),))  # a duplicated row
    check = oracle.check_range_splitting(r)
    assert not check.passed and "0 rows only in the split, 1 only in the whole range" in check.detail


def test_metrics_that_disagree_with_the_feed_fail() -> None:
    commits = {**COMMITS, 3: CommitInfo(3, "DELETE", {"num_deleted_rows": 0})}
    r = readings()
    r.commits = commits
    assert "v3 DELETE num_deleted_rows=0 but CDF shows 1" in oracle.check_operation_metrics(r).detail


def test_compaction_with_change_rows_and_wrong_time_travel_fail() -> None:
    rows_in_optimize = {**FEED, 2: ((A2, "delete", 2, 3000), (A2, "insert", 2, 3000))}
    detail = oracle.check_compaction_and_time_travel(readings(rows_in_optimize)).detail
    assert "v2 (OPTIMIZE) changes no data but emitted change rows" in detail
    r = readings(snapshot_2=Read(error="FileNotFound"))
    assert failed(r) == {oracle.COMPACTION_TIME_TRAVEL}


def test_engines_disagreeing_on_rows_or_count_fail() -> None:
    r = readings()
    r.engines["duckdb"][4] = Read(rows=r.engines["duckdb"][4].rows, count=9)
    r.engines["spark"] = {4: Read(error="AnalysisException: Missing commit file")}
    detail = oracle.check_engines_agree(r, {}).detail
    assert "count(*) differs between engines" in detail and "['spark'] failed" in detail


def test_plan_covers_every_stretch_and_boundary() -> None:
    plan = oracle.plan_ranges({v: v != 5 for v in range(12)}, seed=3, pairs=5, triples=5)
    assert plan.stretches == ((0, 4), (6, 11))
    assert {(-1, 4), (5, 11)} <= set(plan.pairs)
    assert all(v + 1 <= w for v, w in plan.pairs)
    assert {(v, v, v + 1) for v in (0, 1, 2, 3, 6, 7, 8, 9, 10)} <= set(plan.triples)
    assert (5, 5) not in plan.feed_ranges()


def test_planners_of_concurrent_writers_never_share_keys() -> None:
    config = DeltaCdfConfig()
    state = {k: (k, f"p{k % 3}", 0, None) for k in range(30)}
    planners = [Planner(config, w, 2, state, seed=w) for w in range(2)]
    for planner in planners:
        for kind in ("append", "update", "delete", "merge"):
            planner.step(kind)
    owned = [{k for k in p.keys} for p in planners]
    assert not owned[0] & owned[1]
    assert all(k % 2 == w for w, keys in enumerate(owned) for k in keys)


def test_serial_plan_has_every_kind_and_one_schema_change() -> None:
    kinds = serial_kinds(16, random.Random(1))
    assert len(kinds) == 16 and kinds.count("schema") == 1
    assert {"append", "update", "delete", "merge", "overwrite"} <= set(kinds)


def test_config_names_bad_values() -> None:
    with pytest.raises(pydantic.ValidationError, match="'sometimes' is unknown; use one of none"):
        DeltaCdfConfig(fault="sometimes")
    with pytest.raises(pydantic.ValidationError):
        DeltaCdfConfig(serial_commits=2)
