"""Pure parts of the Citus area: range coverage, colocation, result comparison, the statement generator and
the minimal-sequence search. No Citus needed (these run in CI)."""

from __future__ import annotations

from decimal import Decimal

import pydantic
import pytest

from assets.citus_sharding.compare import Outcome, Verdict, diff_rows, judge, normalize
from assets.citus_sharding.config import CitusShardingConfig
from assets.citus_sharding.coverage import (
    INT32_MAX,
    INT32_MIN,
    ShardRange,
    colocation_problems,
    coverage_problems,
    outside,
    reference_problems,
    skew,
)
from assets.citus_sharding.minimize import ddmin
from assets.citus_sharding.workload import SCHEMA, Generator, setup_sql
from regression_pipelines.kit import describe_validation_error


def uniform(n: int, first_id: int = 1) -> list[ShardRange]:
    """Citus's own layout: shard i starts at INT32_MIN + i * 2^32/n, the last ends at INT32_MAX."""
    step = 2**32 // n
    lows = [INT32_MIN + i * step for i in range(n)]
    highs = [lo - 1 for lo in lows[1:]] + [INT32_MAX]
    return [ShardRange(first_id + i, lo, hi) for i, (lo, hi) in enumerate(zip(lows, highs, strict=True))]


@pytest.mark.parametrize("n", [1, 3, 8, 32, 7])
def test_uniform_ranges_in_any_order_tile_int32(n: int) -> None:
    assert coverage_problems("t", list(reversed(uniform(n)))) == []


def test_a_split_non_uniform_layout_is_fine() -> None:
    ranges = uniform(2)
    a, b = ranges[0], ShardRange(9, ranges[0].high + 1, 100)
    assert coverage_problems("t", [a, b, ShardRange(10, 101, INT32_MAX)]) == []


def test_gap_overlap_and_missing_ends_are_named() -> None:
    r = uniform(4)
    gap = [r[0], ShardRange(r[1].shard_id, r[1].low + 10, r[1].high), r[2], r[3]]
    assert coverage_problems("t", gap) == [f"t: gap [{r[1].low}, {r[1].low + 9}] between shards 1 and 2"]
    overlap = [r[0], ShardRange(2, r[1].low - 5, r[1].high), r[2], r[3]]
    assert coverage_problems("t", overlap) == [f"t: shards 1 and 2 overlap on [{r[1].low - 5}, {r[0].high}]"]
    ends = [ShardRange(1, INT32_MIN + 1, 0), ShardRange(2, 1, INT32_MAX - 1)]
    assert coverage_problems("t", ends) == [
        f"t: gap [{INT32_MIN}, {INT32_MIN}] before shard 1",
        f"t: gap [{INT32_MAX}, {INT32_MAX}] after shard 2",
    ]
    assert coverage_problems("t", []) == ["t: no shards"]
    assert "is empty" in coverage_problems("t", [ShardRange(1, INT32_MAX, INT32_MIN)])[0]


def test_colocation_needs_identical_ranges_and_placements() -> None:
    same = {1: {"a": [(0, 9, (1,)), (10, 19, (2,))], "b": [(10, 19, (2,)), (0, 9, (1,))]}}
    assert colocation_problems(same) == []
    moved = {1: {"a": [(0, 9, (1,)), (10, 19, (2,))], "b": [(0, 9, (2,)), (10, 19, (2,))]}}
    assert colocation_problems(moved) == ["colocation 1: range [0, 9] of b on groups [2], of a on [1]"]
    shifted = {1: {"a": [(0, 9, (1,))], "b": [(0, 8, (1,))]}}
    assert colocation_problems(shifted) == ["colocation 1: b range [0, 8] vs a [0, 9]"]
    fewer = {1: {"a": [(0, 9, (1,)), (10, 19, (1,))], "b": [(0, 19, (1,))]}}
    assert colocation_problems(fewer) == ["colocation 1: b has 1 shards, a has 2"]


def test_reference_tables_must_be_on_every_node_group() -> None:
    assert reference_problems({"r": {0, 1, 2}}, {0, 1, 2}) == []
    assert reference_problems({"r": {0, 2}}, {0, 1, 2}) == ["reference table r has no placement on node group(s) [1]"]


def test_rows_outside_a_range_and_skew() -> None:
    assert outside([5, 10, 11, -3], 0, 10) == 2
    assert skew([10, 10, 10, 10]) == 1.0
    assert skew([30, 10]) == 1.5
    assert skew([]) != skew([])  # NaN: nothing measured


# --- comparing results -------------------------------------------------------------------------------------


def test_numbers_compare_by_value_not_by_scale() -> None:
    assert normalize(Decimal("191.3750000000000000")) == normalize(Decimal("191.375"))
    assert normalize(Decimal("-0.00")) == normalize(Decimal("0"))
    assert normalize(Decimal("1.00000000001")) == normalize(Decimal("1"))
    assert normalize(Decimal("1.0000001")) != normalize(Decimal("1"))
    assert normalize(0.1 + 0.2) == normalize(0.3)
    assert normalize(Decimal("1e40") * 3) == Decimal("3e40")  # no overflow of the default 28 digits


def test_order_matters_only_when_the_query_has_a_total_order() -> None:
    a, b = [(1, "x"), (2, "y")], [(2, "y"), (1, "x")]
    assert diff_rows(a, b, ordered=False) == ""
    assert diff_rows(a, b, ordered=True) == "row 1 differs: Citus (1, 'x'), PostgreSQL (2, 'y')"
    assert diff_rows([(1,), (1,)], [(1,)], ordered=False).startswith("2 rows on Citus, 1 on PostgreSQL")
    text = diff_rows([(1,), (None,)], [(1,), (3,)], ordered=False)
    assert "only on Citus (1): [(None,)]" in text and "only on PostgreSQL (1): [(3,)]" in text


def test_judging_outcomes() -> None:
    ok = Outcome(rows=((1,),), rowcount=1)
    refused = Outcome(sqlstate="0A000", error="modifying the partition value of rows is not allowed")
    assert judge(refused, ok, False).verdict is Verdict.UNSUPPORTED
    duplicate = Outcome(sqlstate="23505", error="duplicate key")
    assert judge(duplicate, duplicate, False).verdict is Verdict.SAME
    assert judge(duplicate, ok, False).verdict is Verdict.MISMATCH
    assert judge(ok, duplicate, False).verdict is Verdict.MISMATCH  # Citus accepting what PostgreSQL refuses
    affected = judge(Outcome(rowcount=3), Outcome(rowcount=4), False)
    assert (affected.verdict, affected.detail) == (Verdict.MISMATCH, "3 rows affected on Citus, 4 on PostgreSQL")
    assert judge(ok, Outcome(rows=((1,),), rowcount=1), True).verdict is Verdict.SAME


# --- the generator -----------------------------------------------------------------------------------------


def test_generator_is_seeded_bounded_and_covers_every_kind() -> None:
    first, again = Generator(5, 40, 2), Generator(5, 40, 2)
    assert first.initial_rows() == again.initial_rows()
    mix = first.mix(600)
    assert [s.sql for s in mix] == [s.sql for s in again.mix(600)]
    assert len(mix) == 600 and [s.index for s in mix] == list(range(600))
    kinds = {s.kind for s in mix}
    assert {"merge", "update_from", "copy_orders", "distinct_on", "window_global", "non_colocated_join"} <= kinds
    assert len(kinds) == 29
    assert all(SCHEMA in s.sql for s in mix)
    assert all("ORDER BY" in s.sql for s in mix if s.ordered)
    assert all(s.query for s in mix if s.kind in ("router", "cte")) and not any(s.query for s in mix if s.copy_rows)
    assert sum(s.query for s in mix) / len(mix) == pytest.approx(0.6, abs=0.08)


def test_initial_rows_and_copies_use_fresh_keys() -> None:
    gen = Generator(1, 30, 3)
    rows = gen.initial_rows()
    assert [len(rows[t]) for t in ("regions", "accounts", "orders")] == [5, 30, 90]
    copy = gen.copy_batch(25)
    order_ids = [r[1] for r in rows["orders"]] + [r[1] for r in copy.copy_rows]
    assert len(order_ids) == len(set(order_ids)) == 115
    assert all(1 <= r[0] <= 30 for r in copy.copy_rows)
    assert copy.text("s") == "COPY s.orders (account_id, order_id, amount, status) FROM STDIN -- 25 rows"


def test_setup_distributes_only_on_citus() -> None:
    citus, vanilla = setup_sql(True, 8), setup_sql(False, 8)
    assert vanilla == citus[:3] and len(citus) == 6
    assert "shard_count => 8" in citus[3] and "colocate_with => 'none'" in citus[3]
    assert "colocate_with => '@s.accounts'" in citus[4] and "create_reference_table('@s.regions')" in citus[5]


# --- the minimal sequence ----------------------------------------------------------------------------------


def needs(*wanted: int):  # type: ignore[no-untyped-def]
    calls: list[list[int]] = []

    def shows(candidate: list[int]) -> bool:
        calls.append(candidate)
        assert candidate[-1] == 99  # the target always comes last
        return set(wanted) <= set(candidate)

    return shows, calls


def test_ddmin_finds_the_statements_the_mismatch_needs() -> None:
    shows, calls = needs(3, 17)
    found = ddmin(list(range(40)), 99, shows, budget=200)
    assert found.steps == [3, 17, 99] and found.reproduced and found.complete
    assert found.tests == len(calls) < 60


def test_ddmin_target_alone_and_empty_prefix() -> None:
    shows, _ = needs()
    assert ddmin(list(range(10)), 99, shows, budget=5).steps == [99]
    assert ddmin([], 99, shows, budget=5).steps == [99]


def test_ddmin_reports_a_mismatch_that_does_not_come_back() -> None:
    found = ddmin(list(range(10)), 99, lambda _c: False, budget=50)
    assert (found.steps, found.tests, found.reproduced, found.complete) == ([*range(10), 99], 1, False, True)


def test_ddmin_stops_at_its_budget_or_deadline() -> None:
    shows, _ = needs(3, 17)
    found = ddmin(list(range(40)), 99, shows, budget=4)
    assert found.tests == 4 and not found.complete and found.reproduced and {3, 17, 99} <= set(found.steps)
    out_of_time = ddmin(list(range(4)), 99, lambda _c: None, budget=50)
    assert not out_of_time.complete and not out_of_time.reproduced


def test_bad_fault_names_the_field_and_the_choices() -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        CitusShardingConfig(fault="chaos")
    assert describe_validation_error(info.value).startswith(
        "fault: 'chaos' is unknown; use one of none, wrong_shard_row"
    )
