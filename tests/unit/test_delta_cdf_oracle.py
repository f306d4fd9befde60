"""The Delta CDF model and oracle: pure logic, judged on hand-made feeds (the real table is in integration)."""

from __future__ import annotations

import random
from decimal import Decimal

import pydantic
import pytest

from assets.delta_cdf import known_bugs, oracle
from assets.delta_cdf.config import DEEP, DeltaCdfConfig
from assets.delta_cdf.model import Change, MergeClauses, VersionedModel, row_of
from assets.delta_cdf.ops import Op
from assets.delta_cdf.oracle import CommitInfo, Read, Readings
from assets.delta_cdf.workload import Planner, WorkloadLog, needs_encoding, partition_values, serial_kinds

A, B = (1, "p1", 10, None, None, None, None), (2, "p2", 20, None, None, None, None)
C = (3, "p0", 30, None, None, None, "x")
A2 = (1, "p1", 15, None, None, None, None)


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
    seven = (7, "p1", 1, None, None, None, None)
    overwrite = Change("overwrite_partition", rows=(seven,), part="p1").apply({1: A, 2: B})
    assert sorted(overwrite.values()) == [B, seven]
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


def test_planners_of_concurrent_writers_never_share_fresh_keys() -> None:
    config = DeltaCdfConfig()
    known = {k: f"p{k % 3}" for k in range(30)}
    planners = [Planner(config, w, 2, known, w, ["p0", "p1", "p2"], WorkloadLog().coverage) for w in range(2)]
    for planner in planners:
        for kind in ("append", "update", "delete", "merge", "merge_clauses"):
            planner.op(kind)
    owned = [set(p.keys) for p in planners]
    assert not owned[0] & owned[1]
    assert all(k % 2 == w for w, keys in enumerate(owned) for k in keys)


def test_serial_plan_has_every_kind_one_schema_change_and_the_large_merges() -> None:
    kinds = serial_kinds(16, random.Random(1), large_merges=2)
    assert len(kinds) == 18 and kinds.count("schema") == 1 and kinds.count("merge_large") == 2
    assert {"append", "update", "delete", "merge", "merge_clauses", "overwrite"} <= set(kinds)


def test_merge_with_every_clause_follows_sql_semantics() -> None:
    """Matched U updates (the target keeps its partition), matched D deletes, unmatched U inserts, unmatched D is
    ignored; not-matched-by-source touches only target rows that existed before the MERGE."""
    d = (4, "p1", 40, None, None, None, None)
    state = {1: A, 2: B, 4: d}
    source = (
        (1, "pX", 99, 5, Decimal("1.5"), 0, "n"),
        (2, "p2", 0, None, None, None, None),
        (8, "p1", 80, None, None, None, None),
        (9, "p1", 90, None, None, None, None),
    )
    merged = Change("merge", rows=source, clauses=MergeClauses(("U", "D", "U", "D"), "update", "p1")).apply(state)
    assert merged == {
        1: (1, "p1", 99, 5, Decimal("1.5"), 0, "n"),
        4: (4, "p1", 41, None, None, None, None),
        8: (8, "p1", 80, None, None, None, None),
    }
    deleted = Change("merge", rows=source[:1], clauses=MergeClauses(("U",), "delete", "p1")).apply(state)
    assert sorted(deleted) == [1, 2]


def test_an_empty_partition_value_reads_back_as_null_and_rows_compare_across_engines() -> None:
    from datetime import UTC, datetime

    record = {
        "id": 1,
        "part": "",
        "val": 2,
        "big": None,
        "amount": Decimal("1.500000000"),
        "ts": datetime(1, 1, 1, tzinfo=UTC),
        "note": None,
    }
    assert row_of(record) == (1, None, 2, None, Decimal("1.5"), -62135596800000000, None)


def test_ops_round_trip_through_json() -> None:
    op = Op(
        "merge_clauses",
        rows=((1, None, 2, -(2**63), Decimal("0.000000001"), 5, "a'b"),),
        clauses=MergeClauses(("D",), "delete", None),
        with_note=True,
    )
    assert Op.from_json(op.to_json()) == op
    with pytest.raises(ValueError, match="unknown op kind"):
        Op("upsert")


def test_adversarial_partition_values_are_distinct_and_avoid_what_a_known_bug_needs() -> None:
    config = DeltaCdfConfig(partitions=12)
    values = partition_values(config, random.Random(3), WorkloadLog().coverage, avoid=False)
    assert len(set(values)) == 12 and any(needs_encoding(v) for v in values)
    safe = partition_values(config, random.Random(3), WorkloadLog().coverage, avoid=True)
    assert not any(needs_encoding(v) for v in safe) and len(set(safe)) == 12
    plain = DeltaCdfConfig(partition_values="plain", partitions=3)
    assert partition_values(plain, random.Random(3), WorkloadLog().coverage, avoid=True) == ["p0", "p1", "p2"]


def test_known_bugs_apply_to_their_version_range_only() -> None:
    (bug,) = known_bugs.KNOWN_BUGS
    assert not bug.affects("1.5.1") and not bug.affects("1.6.0") and bug.affects("1.6.6")
    assert known_bugs.avoided(False, "1.6.6") == [] and known_bugs.avoided(True, "1.6.6") == [bug]


def test_deep_profile_fills_what_was_not_set_and_explicit_settings_win() -> None:
    deep = DeltaCdfConfig(profile="deep", seed=3, partitions=10)
    assert deep.merge_matched_rows == DEEP["merge_matched_rows"] > 8192 and deep.partitions == 10
    assert DeltaCdfConfig().merge_matched_rows < 8192


def test_commits_accounted_for_names_outside_lost_and_duplicated_commits() -> None:
    check = oracle.check_commits_accounted_for(
        5,
        dict.fromkeys(range(5)),
        [],
        ["v4 WRITE by Apache-Spark (app backfill)"],
        {"w0-1": 1, "w0-2": 1},
        {"w0-1": [0, 2]},
    )
    assert not check.passed and check.facts["first_version"] == 2
    for text in (
        "not made by this workload: v4 WRITE by Apache-Spark",
        "acknowledged commit(s) not in the log: ['w0-2']",
        "commit w0-1 is in the log 2 times",
    ):
        assert text in check.detail
    gap = oracle.check_commits_accounted_for(4, dict.fromkeys((0, 1, 3)), [2], [], {}, {})
    assert "commit file of v2 is missing from _delta_log" in gap.detail


def test_config_names_bad_values() -> None:
    with pytest.raises(pydantic.ValidationError, match="'sometimes' is unknown; use one of none"):
        DeltaCdfConfig(fault="sometimes")
    with pytest.raises(pydantic.ValidationError):
        DeltaCdfConfig(serial_commits=2)


def test_a_commit_that_landed_despite_its_writers_error_is_named_not_blamed_on_outside() -> None:
    from assets.delta_cdf.tablelog import Forensics

    landed = "v3 MERGE by delta-rs:py-1.6.6 (its writer got DeltaError: Invalid Checkpoint)"
    check = oracle.check_commits_accounted_for(3, {0: 0, 1: 1, 2: 2, 3: 3}, [], [], {"a": 1, "b": 1, "c": 1},
                                               {"a": [0], "b": [1], "c": [2], "d": [3]}, [landed])  # fmt: skip
    assert check.passed and f"1 more landed although their writer got an error: {landed}" in check.detail
    found = Forensics(committed_despite_error=[landed]).describe()
    assert "1 commit(s) of this workload landed although their writer got an error: v3 MERGE" in found
    assert "not made by this workload" not in found
