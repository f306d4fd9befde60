"""Pure parts of the Citus area: range coverage, colocation, result comparison, the statement generator and
the minimal-sequence search. No Citus needed (these run in CI)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pydantic
import pytest

from assets.citus_sharding.compare import Outcome, Verdict, diff_rows, judge, normalize
from assets.citus_sharding.config import CitusShardingConfig
from assets.citus_sharding.oracle import connection_lost, misplacing_sequence
from assets.citus_sharding.shapes import SHAPES, mix, shape_of, value_classes
from assets.citus_sharding.workload import SCHEMA, Generator, Statement, literal, setup_sql
from regression_pipelines.kit import describe_validation_error
from regression_pipelines.kit.checkers.citus_layout import (
    INT32_MAX,
    INT32_MIN,
    ShardRange,
    colocation_problems,
    coverage_problems,
    outside,
    reference_problems,
    skew,
)
from regression_pipelines.kit.generate.coverage import Coverage
from regression_pipelines.kit.generate.shrink import ddmin


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
    assert judge(refused, ok, False, frozenset({"0A000"})).verdict is Verdict.UNSUPPORTED
    unexpected = judge(refused, ok, False)  # a shape that is not refused by design: a finding, never hidden
    assert unexpected.verdict is Verdict.MISMATCH and "not refused by design" in unexpected.detail
    duplicate = Outcome(sqlstate="23505", error="duplicate key")
    assert judge(duplicate, duplicate, False).verdict is Verdict.SAME
    assert judge(duplicate, ok, False).verdict is Verdict.MISMATCH
    assert judge(ok, duplicate, False).verdict is Verdict.MISMATCH  # Citus accepting what PostgreSQL refuses
    affected = judge(Outcome(rowcount=3), Outcome(rowcount=4), False)
    assert (affected.verdict, affected.detail) == (Verdict.MISMATCH, "3 rows affected on Citus, 4 on PostgreSQL")
    assert judge(ok, Outcome(rows=((1,),), rowcount=1), True).verdict is Verdict.SAME


# --- the generator -----------------------------------------------------------------------------------------


def test_generator_is_seeded_bounded_and_reaches_every_shape() -> None:
    first, again = Generator(5, 40, 2), Generator(5, 40, 2)
    assert first.initial_rows() == again.initial_rows()
    statements = mix(first, 1500)
    assert [(s.sql, s.params) for s in statements] == [(s.sql, s.params) for s in mix(again, 1500)]
    assert len(statements) == 1500 and [s.index for s in statements] == list(range(1500))
    assert {s.kind for s in statements} == set(SHAPES)
    assert all(SCHEMA in s.sql for s in statements)
    assert all("ORDER BY" in s.sql for s in statements if s.ordered)
    assert not any(s.query for s in statements if s.copy_rows)


def test_key_writes_from_other_relations_are_generated_and_refused_by_design_only_per_shape() -> None:
    """The shapes that reach Citus issue 8087: the key SET from another relation's (or a subquery's) column."""
    g = Generator(3, 50, 1)
    g.initial_rows()
    text = {name: SHAPES[name].build(g)[0].sql for name in SHAPES}
    assert "SET id = t.new_id FROM @s.transfers t WHERE a.id = t.account_id" in text["key_from_other_relation"]
    assert "UPDATE SET id = t.new_id" in text["merge_key_from_source"]
    assert "SET id = s.id FROM (SELECT id + " in text["key_from_same_table"]
    assert "ON (a.id = t.order_id)" in text["merge_repartition"] or "ON (a.id = t.new_id)" in text["merge_repartition"]
    refused = {name for name, spec in SHAPES.items() if spec.shape.by_design}
    assert refused == {
        "non_colocated_join", "update_distribution_key", "key_from_other_relation", "key_from_same_table",
        "merge_key_from_source", "merge_key_from_same_table", "upsert_sets_key", "key_noop_from_other_relation",
    }  # fmt: skip
    assert shape_of("merge_repartition").by_design == frozenset()  # a repartitioned MERGE must be answered


def test_prepared_shapes_run_past_the_generic_plan_threshold() -> None:
    g = Generator(8, 50, 1)
    g.initial_rows()
    for name in ("prepared_router", "prepared_insert_multi_row", "prepared_insert_on_worker"):
        run = SHAPES[name].build(g)
        assert len(run) >= 6 and len({s.sql for s in run}) == 1 and all(s.prepared for s in run)
    worker = SHAPES["prepared_insert_on_worker"].build(g)
    assert all(s.on_worker for s in worker)
    assert worker[0].params[0] == worker[0].params[3] and "prepared, params" in worker[0].text()


def test_values_come_from_the_adversarial_domains_and_are_accounted() -> None:
    coverage = Coverage()
    coverage.declare((spec.shape for spec in SHAPES.values()), value_classes())
    g = Generator(2, 200, 1, sink=coverage)
    g.initial_rows()
    mix(g, 1500)
    assert {"text", "numeric", "timestamp", "int64", "int32", "key_pattern"} <= set(coverage.values)
    assert {"unicode", "quotes", "long", "empty", "null_like"} <= set(coverage.values["text"])
    assert "nul" not in coverage.values["text"]
    assert coverage.value_classes_used() >= 30


def test_literals_escape_text_and_type_timestamps() -> None:
    assert literal("it's") == "'it''s'" and literal(None) == "NULL"
    assert literal(datetime(1, 1, 1, tzinfo=UTC)) == "'0001-01-01T00:00:00+00:00'::timestamptz"


def test_initial_rows_and_copies_use_fresh_keys() -> None:
    gen = Generator(1, 30, 3)
    rows = gen.initial_rows()
    assert [len(rows[t]) for t in ("regions", "accounts", "orders")] == [5, 30, 90]
    new_ids = [r[0] for r in rows["transfers"]]
    assert len(new_ids) == len(set(new_ids)) and {r[1] for r in rows["transfers"]} <= set(range(1, 31))
    copy = gen.copy_batch(25)
    order_ids = [r[1] for r in rows["orders"]] + [r[1] for r in copy.copy_rows]
    assert len(order_ids) == len(set(order_ids)) == 115
    assert all(1 <= r[0] <= 30 for r in copy.copy_rows)
    assert copy.text("s") == "COPY s.orders (account_id, order_id, amount, status) FROM STDIN -- 25 rows"


def test_setup_distributes_only_on_citus() -> None:
    citus, vanilla = setup_sql(True, 8), setup_sql(False, 8)
    assert vanilla == citus[:5] and len(citus) == 9  # notes stays a local table on the coordinator
    assert "shard_count => 8" in citus[5] and "colocate_with => 'none'" in citus[5]
    assert "colocate_with => '@s.accounts'" in citus[6] and "'@s.transfers', 'account_id'" in citus[7]
    assert "create_reference_table('@s.regions')" in citus[8]


def test_the_deep_profile_fills_what_the_run_config_leaves_out() -> None:
    deep = CitusShardingConfig(profile="deep", statements=300)
    assert (deep.statements, deep.shard_count, deep.accounts) == (300, 32, 2000)
    assert CitusShardingConfig().shard_count == 8


class FakeReplayer:
    """Rows are misplaced once statement 30 ran, and only if 12 ran before it."""

    def __init__(self, needs: set[int]) -> None:
        self.needs, self.replays = needs, 0

    def misplaces(self, candidate: list[Statement]) -> bool:
        self.replays += 1
        return bool(self.needs) and self.needs <= {s.index for s in candidate}

    def first_misplacing(self, statements: list[Statement]) -> int | None:
        self.replays += 1
        return next((i for i in range(len(statements)) if self.misplaces(statements[: i + 1])), None)


def test_misplacement_is_located_by_a_watched_replay_then_shrunk() -> None:
    statements = [Statement(i, "x", f"s{i}") for i in range(60)]
    found = misplacing_sequence(statements, FakeReplayer({12, 30}), budget=40)  # type: ignore[arg-type]
    assert found.found is not None and [s.index for s in found.found.steps] == [12, 30]
    assert misplacing_sequence(statements, FakeReplayer(set()), budget=40).found is None  # type: ignore[arg-type]


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


def test_a_lost_session_or_unreachable_node_is_told_from_an_answer() -> None:
    class Conn:
        closed = broken = False

    assert connection_lost(Outcome(sqlstate="57P01", error="terminating connection"), Conn())  # type: ignore[arg-type]
    assert connection_lost(Outcome(sqlstate="08006", error="connection to the remote node x failed"), Conn())  # type: ignore[arg-type]
    unreachable = Outcome(sqlstate="XX000", error="cannot connect to 127.0.0.1:1 to fetch intermediate results")
    assert connection_lost(unreachable, Conn())  # type: ignore[arg-type]
    assert not connection_lost(Outcome(sqlstate="0A000", error="cannot perform"), Conn())  # type: ignore[arg-type]
    assert not connection_lost(Outcome(sqlstate="XX000", error="unexpected planner state"), Conn())  # type: ignore[arg-type]
    broken = Conn()
    broken.broken = True
    assert connection_lost(Outcome(sqlstate="?????", error="consuming input failed"), broken)  # type: ignore[arg-type]
