"""Readers of the same Delta table: delta-rs (DataFusion SQL), DuckDB (the table's Arrow dataset) and Spark.

Each answers `snapshot(uri, version)` with the rows and its own count(*) answer, errors caught into the `Read`
(a reader that fails is a finding, not a crash). Engines that read the change data feed answer
`change_feed`; the others return None.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import duckdb
import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder

from assets.delta_cdf.model import row_of, rows_of
from assets.delta_cdf.oracle import FeedRow, Read


class DeltaEngine(Protocol):
    name: str

    def snapshot(self, uri: str, version: int) -> Read: ...

    def change_feed(self, uri: str, start: int, end: int) -> Read | None: ...


def timed(read: Callable[[], Read]) -> Read:
    """Run one read; its error (any: engines raise many types) becomes the Read's error, named briefly."""
    started = time.perf_counter()
    try:
        result = read()
    except Exception as exc:
        return Read(error=describe(exc), seconds=time.perf_counter() - started)
    return Read(rows=result.rows, count=result.count, seconds=time.perf_counter() - started)


def describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300]


def feed_rows(records: Iterable[Mapping[str, Any]]) -> tuple[FeedRow, ...]:
    return tuple(
        (row_of(r), str(r["_change_type"]), int(r["_commit_version"]), epoch_ms(r["_commit_timestamp"]))
        for r in records
    )


def epoch_ms(stamp: datetime) -> int:
    """Commit timestamps arrive naive (UTC, delta-rs) or zoned (Spark); both as epoch milliseconds."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return round(stamp.timestamp() * 1000)


class DeltaRsEngine:
    """delta-rs itself: snapshots through its DataFusion SQL engine, the feed through `load_cdf`."""

    name = "delta-rs"

    def snapshot(self, uri: str, version: int) -> Read:
        def read() -> Read:
            table = DeltaTable(uri, version=version)
            rows = pa.table(QueryBuilder().register("t", table).execute("SELECT * FROM t"))
            count = pa.table(QueryBuilder().register("t", table).execute("SELECT count(*) AS n FROM t"))
            return Read(rows=tuple(rows_of(rows.to_pylist())), count=int(count.column("n")[0].as_py()))

        return timed(read)

    def change_feed(self, uri: str, start: int, end: int) -> Read:
        def read() -> Read:
            feed = pa.table(DeltaTable(uri).load_cdf(starting_version=start, ending_version=end))
            return Read(rows=feed_rows(feed.to_pylist()))

        return timed(read)


class DuckDbEngine:
    """DuckDB scanning the table's Arrow dataset (its own Delta extension cannot be installed here)."""

    name = "duckdb"

    def __init__(self) -> None:
        self.connection = duckdb.connect()

    def snapshot(self, uri: str, version: int) -> Read:
        def read() -> Read:
            dataset = DeltaTable(uri, version=version).to_pyarrow_dataset()
            self.connection.register("t", dataset)
            try:
                rows = self.connection.sql("SELECT * FROM t").to_arrow_table()
                (count,) = self.connection.sql("SELECT count(*) FROM t").fetchall()[0]
            finally:
                self.connection.unregister("t")
            return Read(rows=tuple(rows_of(rows.to_pylist())), count=int(count))

        return timed(read)

    def change_feed(self, uri: str, start: int, end: int) -> None:
        return None


class SparkEngine:
    """Spark (a Spark Connect endpoint or a local session with the Delta jars) reading with format("delta").

    `probe` tries delta-spark's own `DeltaTable` API and the change feed once and says what this Spark can do:
    some endpoints (pysail) refuse the Delta Connect relations and silently ignore `readChangeFeed`,
    returning the snapshot instead; the feed is then reported unsupported, never compared.
    """

    name = "spark"

    def __init__(self, session: Any, description: str) -> None:
        self.session, self.description = session, description
        self.reads_feed = False

    def probe(self, uri: str) -> dict[str, str]:
        facts = {"spark_engine": self.description}
        try:
            from delta.tables import DeltaTable as SparkDeltaTable

            history = SparkDeltaTable.forPath(self.session, uri).history().count()
            facts["spark_delta_table_api"] = f"works ({history} versions in history)"
        except Exception as exc:
            facts["spark_delta_table_api"] = f"refused: {describe(exc)}"
        try:
            columns = self._reader().option("readChangeFeed", "true").option("startingVersion", 0).load(uri).columns
            self.reads_feed = "_change_type" in columns
            facts["spark_cdf"] = "supported" if self.reads_feed else "ignored readChangeFeed (returned the snapshot)"
        except Exception as exc:
            facts["spark_cdf"] = f"refused: {describe(exc)}"
        return facts

    def _reader(self) -> Any:
        return self.session.read.format("delta")

    def snapshot(self, uri: str, version: int) -> Read:
        def read() -> Read:
            frame = self._reader().option("versionAsOf", version).load(uri)
            rows = frame.toArrow()
            return Read(rows=tuple(rows_of(rows.to_pylist())), count=int(frame.count()))

        return timed(read)

    def change_feed(self, uri: str, start: int, end: int) -> Read | None:
        if not self.reads_feed:
            return None

        def read() -> Read:
            frame = (
                self._reader()
                .option("readChangeFeed", "true")
                .option("startingVersion", start)
                .option("endingVersion", end)
                .load(uri)
            )
            return Read(rows=feed_rows(frame.toArrow().to_pylist()))

        return timed(read)

    def stop(self) -> None:
        with contextlib.suppress(Exception):  # a session whose endpoint went away is gone anyway
            self.session.stop()
