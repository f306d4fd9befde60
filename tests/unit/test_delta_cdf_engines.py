"""The engines' column-by-column row conversion equals the record-by-record one, and a read's time bound."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa

from assets.delta_cdf.engines import MAX_TIMEOUTS, Bounded, bounded, feed_rows, table_feed_rows, table_rows
from assets.delta_cdf.model import row_key, rows_of
from assets.delta_cdf.oracle import Read

ROWS = {
    "id": [3, -(2**63), 2**63 - 1, 7],
    "part": ["b", "", None, "a%2F"],
    "val": [1, -5, 0, 10_000],
    "big": [None, -(2**63), 2**63 - 1, 0],
    "amount": [Decimal("1.500000000"), None, Decimal("-99999999999999999999999999999.999999999"), Decimal("0E-9")],
    "ts": [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        None,
        datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
    ],
}
SCHEMA = [
    ("id", pa.int64()),
    ("part", pa.string()),
    ("val", pa.int64()),
    ("big", pa.int64()),
    ("amount", pa.decimal128(38, 9)),
    ("ts", pa.timestamp("us", tz="UTC")),
]


def _table(with_note: bool) -> pa.Table:
    fields = [pa.field(n, t) for n, t in SCHEMA]
    columns = [pa.array(ROWS[n], t) for n, t in SCHEMA]
    if with_note:
        fields.append(pa.field("note", pa.string()))
        columns.append(pa.array(["x", None, "", "é'"], pa.string()))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def test_table_rows_equal_rows_of_records() -> None:
    for with_note in (True, False):
        table = _table(with_note)
        assert sorted(table_rows(table), key=row_key) == rows_of(table.to_pylist())
    assert table_rows(_table(True).slice(0, 0)) == []


def test_table_rows_handle_other_timestamp_units() -> None:
    table = _table(True)
    stamps = pa.array([datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)] * 4, pa.timestamp("ms", tz="UTC"))
    table = table.set_column(5, "ts", stamps)
    assert sorted(table_rows(table), key=row_key) == rows_of(table.to_pylist())


def test_table_feed_rows_equal_feed_rows_of_records() -> None:
    table = _table(True)
    table = table.append_column("_change_type", pa.array(["insert", "delete", "update_preimage", "update_postimage"]))
    table = table.append_column("_commit_version", pa.array([1, 2, 3, 4], pa.int64()))
    stamp = datetime(2026, 12, 6, 23, 0, 0, 123456)
    table = table.append_column("_commit_timestamp", pa.array([stamp] * 4, pa.timestamp("us")))
    assert table_feed_rows(table) == feed_rows(table.to_pylist())


def test_a_read_without_an_answer_times_out_and_names_the_read() -> None:
    release = threading.Event()
    try:
        read = bounded(lambda: release.wait(60) and Read(), 0.2, "delta-rs snapshot v3")
    finally:
        release.set()
    assert read.error is not None and read.error.startswith("TimedOut: delta-rs snapshot v3 gave no answer in 0.2 s")
    assert bounded(lambda: Read(rows=(1,)), 5, "quick").rows == (1,)
    assert bounded(lambda: 1 / 0, 5, "failing").error.startswith("ZeroDivisionError")  # type: ignore[union-attr]


def test_an_engine_skips_its_reads_after_max_timeouts() -> None:
    engine = Bounded(timeout_s=0.1)
    engine.name = "duckdb"
    release = threading.Event()
    try:
        first = engine.bounded(lambda: release.wait(60) and Read(), "snapshot v5")
        assert engine.bounded(lambda: Read(rows=(1,)), "snapshot v6").ok, "a read after one that timed out is tried"
        for version in range(7, 6 + MAX_TIMEOUTS):
            engine.bounded(lambda: release.wait(60) and Read(), f"snapshot v{version}")
    finally:
        release.set()
    later = engine.bounded(lambda: Read(), "snapshot v9")
    assert first.error is not None and "duckdb snapshot v5" in first.error
    assert later.error is not None and later.error.startswith(
        f"Skipped: duckdb snapshot v9 not tried: {MAX_TIMEOUTS} reads timed out, first: TimedOut: duckdb snapshot v5"
    )
