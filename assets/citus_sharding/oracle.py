"""The differential oracle: apply each statement to Citus and to vanilla PostgreSQL and judge the pair.

PostgreSQL runs each statement in a transaction that commits only when Citus also succeeded, so a statement
Citus refuses leaves both sides in the same state. Citus runs in autocommit, as an application would use it.
A mismatch keeps its position; `minimal_sequence` then replays shrinking prefixes on fresh schemas.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from assets.citus_sharding.compare import Judgement, Outcome, Verdict, judge
from assets.citus_sharding.minimize import Minimized, ddmin
from assets.citus_sharding.workload import SCHEMA, Statement, copy_sql, final_contents_sql, setup_sql


def execute(conn: psycopg.Connection, stmt: Statement, schema: str) -> tuple[Outcome, float]:
    """Run one statement; an error is an outcome (with its SQLSTATE), never an exception."""
    text = stmt.sql.replace(SCHEMA, schema)
    started = time.perf_counter()
    try:
        with conn.cursor() as cur:
            if stmt.copy_rows:
                with cur.copy(text) as copy:
                    for row in stmt.copy_rows:
                        copy.write_row(row)
                outcome = Outcome(rowcount=len(stmt.copy_rows))
            else:
                cur.execute(text)
                rows = tuple(tuple(r) for r in cur.fetchall()) if cur.description else ()
                outcome = Outcome(rows=rows, rowcount=cur.rowcount)
    except psycopg.Error as exc:
        message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        outcome = Outcome(sqlstate=exc.sqlstate or "?????", error=message[:200])
    return outcome, time.perf_counter() - started


@dataclass
class Step:
    stmt: Statement
    judgement: Judgement
    citus_s: float
    vanilla_s: float


@dataclass
class Pair:
    """One Citus schema and one PostgreSQL schema of the same name, kept in step."""

    citus: psycopg.Connection  # autocommit
    vanilla: psycopg.Connection  # not autocommit: each statement is committed or rolled back explicitly
    schema: str
    shard_count: int
    steps: list[Step] = field(default_factory=list)

    def create(self, initial: dict[str, list[tuple[Any, ...]]]) -> dict[str, float]:
        """Schema, tables and initial rows on both sides (COPY); returns the seconds each side's load took."""
        ident = sql.Identifier(self.schema)
        self.citus.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
        self.vanilla.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
        for statement in setup_sql(distributed=True, shard_count=self.shard_count):
            self.citus.execute(statement.replace(SCHEMA, self.schema))
        for statement in setup_sql(distributed=False, shard_count=self.shard_count):
            self.vanilla.execute(statement.replace(SCHEMA, self.schema))
        self.vanilla.commit()
        seconds = {}
        for side, conn in (("citus", self.citus), ("vanilla", self.vanilla)):
            started = time.perf_counter()
            with conn.cursor() as cur:
                for table, rows in initial.items():
                    with cur.copy(copy_sql(table).replace(SCHEMA, self.schema)) as copy:
                        for row in rows:
                            copy.write_row(row)
            if side == "vanilla":
                conn.commit()
            seconds[side] = time.perf_counter() - started
        return seconds

    def apply(self, stmt: Statement) -> Step:
        vanilla, vanilla_s = execute(self.vanilla, stmt, self.schema)
        citus, citus_s = execute(self.citus, stmt, self.schema)
        if vanilla.failed or citus.failed:
            self.vanilla.rollback()
        else:
            self.vanilla.commit()
        step = Step(stmt, judge(citus, vanilla, stmt.ordered), citus_s, vanilla_s)
        self.steps.append(step)
        return step

    def compare_contents(self) -> list[str]:
        """Whole tables compared as multisets; one line per table that differs (or fails to read)."""
        problems = []
        for table, text in final_contents_sql().items():
            stmt = Statement(-1, f"contents_{table}", text, query=True)
            step = self.apply(stmt)
            self.steps.pop()
            if step.judgement.verdict is not Verdict.SAME:
                problems.append(f"table {table}: {step.judgement.detail}")
        return problems

    def drop(self) -> None:
        """Remove both schemas (also after a failure); errors here are left to the caller's cleanup report."""
        self.vanilla.rollback()
        statement = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
        self.citus.execute(statement)
        self.vanilla.execute(statement)
        self.vanilla.commit()


def replayer(
    citus: psycopg.Connection,
    vanilla: psycopg.Connection,
    schema: str,
    shard_count: int,
    initial: dict[str, list[tuple[Any, ...]]],
    deadline: float,
) -> Callable[[list[Statement]], bool | None]:
    """A `shows_mismatch` for ddmin: replay a candidate on fresh schemas; None once past the deadline."""
    counter = iter(range(1, 10_000))

    def shows_mismatch(candidate: list[Statement]) -> bool | None:
        if time.monotonic() >= deadline:
            return None
        pair = Pair(citus, vanilla, f"{schema}_m{next(counter)}", shard_count)
        try:
            pair.create(initial)
            for stmt in candidate[:-1]:
                pair.apply(stmt)
            return pair.apply(candidate[-1]).judgement.verdict is Verdict.MISMATCH
        finally:
            pair.drop()

    return shows_mismatch


def minimal_sequence(
    steps: Sequence[Step], first_mismatch: int, shows_mismatch: Callable[[list[Statement]], bool | None], budget: int
) -> Minimized[Statement]:
    """The fewest statements before the first mismatching one that still make it mismatch on fresh tables.

    Statements Citus refused are left out up front: they changed neither side.
    """
    prefix = [s.stmt for s in steps[:first_mismatch] if s.judgement.verdict is not Verdict.UNSUPPORTED]
    return ddmin(prefix, steps[first_mismatch].stmt, shows_mismatch, budget)
