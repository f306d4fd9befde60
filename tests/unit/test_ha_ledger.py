"""The ledger judge: lost, phantom, unknown and duplicate writes, and the outage from server timestamps."""

from __future__ import annotations

import json
from pathlib import Path

from assets.ha_failover.ledger import ledger_table_name
from regression_pipelines.kit.checkers.ledger import Op, Outcome, Row, judge_ledger, write_history_jsonl

ACK, FAIL, UNK = Outcome.ACKNOWLEDGED, Outcome.FAILED, Outcome.UNKNOWN


def op(value: int, outcome: Outcome, port: int | None = 1) -> Op:
    return Op(value, 100.0 + value * 0.05, 100.0 + value * 0.05 + 0.01, outcome, port if outcome is ACK else None)


def row(value: int, at: float, port: int = 1) -> Row:
    return Row(value, at, port)


def test_clean_history_has_nothing_lost_and_the_largest_gap_as_outage() -> None:
    ops = [op(1, ACK), op(2, ACK), op(3, FAIL), op(4, ACK)]
    rows = [row(1, 10.0), row(2, 10.05), row(4, 12.05)]
    verdict = judge_ledger(ops, rows, fault_start=10.06, writer_end=13.0)
    assert verdict.lost == [] and verdict.phantom == [] and verdict.duplicates == []
    assert abs(verdict.outage_s - 2.0) < 1e-9
    assert (verdict.acknowledged, verdict.failed, verdict.unknown) == (3, 1, 0)


def test_deleted_acknowledged_row_is_lost() -> None:
    ops = [op(1, ACK), op(2, ACK), op(3, ACK)]
    verdict = judge_ledger(ops, [row(1, 10.0), row(3, 10.1)], fault_start=10.0, writer_end=11.0)
    assert verdict.lost == [2]


def test_present_unknown_is_allowed_but_present_failed_is_a_phantom() -> None:
    ops = [op(1, ACK), op(2, UNK), op(3, FAIL)]
    rows = [row(1, 10.0), row(2, 10.05), row(3, 10.1), row(9, 10.2)]  # 9 was never even attempted
    verdict = judge_ledger(ops, rows, fault_start=10.0, writer_end=11.0)
    assert verdict.unknown_present == 1
    assert verdict.phantom == [3, 9]


def test_duplicates_are_reported() -> None:
    ops = [op(1, ACK)]
    verdict = judge_ledger(ops, [row(1, 10.0), row(1, 10.01)], fault_start=9.0, writer_end=11.0)
    assert verdict.duplicates == [1]


def test_no_commit_after_the_fault_runs_the_outage_to_the_writer_end() -> None:
    verdict = judge_ledger([op(1, ACK)], [row(1, 10.0)], fault_start=10.5, writer_end=20.0)
    assert verdict.outage_s == 10.0


def test_writes_returning_to_a_server_they_left_is_haproxy_split_brain() -> None:
    ops = [op(1, ACK, 5433), op(2, ACK, 5434), op(3, ACK, 5433)]
    assert judge_ledger(ops, [], 0.0, 1.0).haproxy_split_brain
    ops = [op(1, ACK, 5433), op(2, ACK, 5433), op(3, ACK, 5434)]
    assert not judge_ledger(ops, [], 0.0, 1.0).haproxy_split_brain


def test_history_jsonl_has_one_op_per_line(tmp_path: Path) -> None:
    ops = [op(1, ACK), op(2, UNK), op(3, FAIL)]
    path = write_history_jsonl(ops, tmp_path / "h.jsonl", origin=100.0)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(d["value"], d["type"], d["outcome"]) for d in lines] == [
        (1, "ok", "acknowledged"),
        (2, "info", "unknown"),
        (3, "fail", "failed"),
    ]
    assert all({"process", "type", "value", "time", "outcome"} <= set(d) for d in lines)


def test_ledger_table_name_is_sql_safe() -> None:
    assert ledger_table_name("3f2a-Bc;DROP TABLE x") == "ha_ledger_3f2abcdroptablex"


def test_the_default_outcome_rules_of_the_kit_writer() -> None:
    """Never sent: failed; sent and the connection broke: unknown; refused by a live server: failed."""
    import psycopg

    from regression_pipelines.kit.checkers.ledger import classify_by_connection

    assert classify_by_connection(psycopg.OperationalError("refused"), sent=False) is FAIL
    assert classify_by_connection(psycopg.OperationalError("server closed the connection"), sent=True) is UNK
    assert classify_by_connection(psycopg.errors.UniqueViolation("duplicate"), sent=True) is FAIL


def test_the_failover_writer_treats_a_read_only_refusal_as_failed() -> None:
    import psycopg

    from assets.ha_failover.ledger import classify

    class ReadOnly(psycopg.errors.ReadOnlySqlTransaction):
        pass

    assert classify(ReadOnly("read-only"), sent=True) is FAIL
    assert classify(psycopg.errors.QueryCanceled("timeout"), sent=True) is UNK
    assert classify(psycopg.OperationalError("no route"), sent=False) is FAIL
