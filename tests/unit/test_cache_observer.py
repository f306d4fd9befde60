"""cache_coherence's PostgreSQL cause: each table judged between its first look and its last one (taken before the
run's own cleanup drops it), so the run's own DROP is never named, and a trigger seen in between is; rows counted
beyond the run's own writes and a truncation are named as an outside writer's."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from assets.cache_coherence import scenario
from regression_pipelines.kit.observe.postgres import UNEXPLAINED, Lock, OwnWrites, PgState, TableFacts

START = datetime(2026, 12, 7, tzinfo=UTC)
TRIGGER = {"regress_nemesis_drop_rows": "CREATE TRIGGER ... — its function can RETURN NULL"}
OID = 16400


def _look(at: float, table: TableFacts) -> PgState:
    return PgState(at, started_at=START, now=START, tables={table.name: table})


class _Watch:
    def __init__(self, samples: list[PgState]) -> None:
        self.samples = samples

    def stop(self) -> list[PgState]:
        return self.samples


def _run(
    samples: list[PgState], last: TableFacts | None = None, own: OwnWrites | None = None, content: str = ""
) -> Any:
    name = "cache_items_x"
    return SimpleNamespace(
        pg_watch=_Watch(samples),
        pg_origins=[_look(0.0, TableFacts(name, oid=OID, filenode=100))],
        pg_last={name: _look(5.0, last or TableFacts(name, oid=OID, filenode=100))},
        pg_tables=[],
        pg_own={name: own or OwnWrites()},
        pg_content={name: content},
    )


def test_the_runs_own_drop_after_the_last_look_is_not_a_finding() -> None:
    dropped_by_cleanup = _look(6.0, TableFacts("cache_items_x", exists=False))
    assert scenario._observe_postgres(_run([dropped_by_cleanup]), failed=True) == UNEXPLAINED


def test_a_trigger_seen_between_the_looks_is_named_and_clean_runs_are_not_looked_at() -> None:
    with_trigger = _look(2.0, TableFacts("cache_items_x", triggers=TRIGGER))
    found = scenario._observe_postgres(_run([with_trigger]), failed=True)
    assert "trigger regress_nemesis_drop_rows added on cache_items_x" in found and "gone again" in found
    assert scenario._observe_postgres(_run([with_trigger]), failed=False).startswith("not looked")


def test_rows_beyond_the_runs_own_writes_name_an_outside_writer_and_the_session_seen_writing() -> None:
    own = OwnWrites()
    own.add(inserted=1100)  # the COPY at set-up
    own.add(inserted=3, updated=40, deleted=5)
    counted = TableFacts("cache_items_x", writes=(1103, 52, 12), oid=OID, filenode=100)
    writer = Lock("cache_items_x", "RowExclusiveLock", True, 4242, "psql", "postgres", "", None, OID)
    seen = PgState(2.0, started_at=START, now=START, tables={"cache_items_x": counted}, locks=(writer,))
    found = scenario._observe_postgres(_run([seen], last=counted, own=own), failed=True)
    assert found == (
        "an outside writer changed rows of cache_items_x: 12 updated and 7 deleted beyond the run's own writes "
        "(pg_stat_user_tables counted 1103 inserted, 52 updated, 12 deleted since the run created it; the run's own "
        "statements 1103 inserted, 40 updated, 5 deleted); sessions seen writing it (RowExclusiveLock): pid 4242 "
        "(psql) as postgres (seen 2.0 s into the run)"
    )


def test_the_runs_own_writes_alone_are_not_news_and_a_truncate_is() -> None:
    own = OwnWrites()
    own.add(inserted=1100, updated=30, deleted=4)
    mine = TableFacts("cache_items_x", writes=(1100, 30, 4), oid=OID, filenode=100)
    assert scenario._observe_postgres(_run([], last=mine, own=own), failed=True) == UNEXPLAINED
    truncated = TableFacts("cache_items_x", writes=(1100, 30, 4), oid=OID, filenode=101)
    found = scenario._observe_postgres(_run([], last=truncated, own=own), failed=True)
    assert found.startswith("table cache_items_x was emptied or rewritten by someone else (at the end of the run): "
                            "its storage was replaced (relfilenode 100 -> 101), as TRUNCATE")  # fmt: skip


def test_rows_the_runs_writes_cannot_explain_are_named_even_when_the_counts_are_not_flushed_yet() -> None:
    content = "rows of cache_items_x after the workload that the run's acknowledged writes cannot explain: ..."
    assert scenario._observe_postgres(_run([], content=content), failed=True) == content
