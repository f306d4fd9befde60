"""The differential oracle: apply each statement to Citus and to vanilla PostgreSQL and judge the pair.

PostgreSQL runs each statement in a transaction that commits only when Citus also succeeded, so a statement
Citus refuses leaves both sides in the same state. Citus runs in autocommit, as an application would use it.
Each outcome goes to the run's coverage account under the statement's shape (accepted, refused by design for
that shape, refused unexpectedly, or an error both systems gave alike).

Two shrinkers replay candidates on fresh schemas: `minimal_sequence` for a mismatching statement, and
`misplacing_sequence` for rows left in a shard that does not own their key (`rows_in_right_shard`): the first
prefix of the workload after which rows are misplaced is found by bisection, then ddmin shrinks what came before.

A broken connection (a restarted server or worker, a killed session) is survived, not thrown (`Pair.apply`):
- PostgreSQL's session lost mid-statement: its open transaction died with it, so the statement is applied on
  neither side (Citus is not asked); the step is UNKNOWN (not judged) and counted as an operation error.
- Citus's session lost, or a node unreachable (SQLSTATE class 08, 57P01-57P03), or PostgreSQL's COMMIT lost:
  whether the statement took effect there is unknown. It is never judged as applied or not applied blindly:
  the step is UNKNOWN, counted as an operation error, and the pair is marked out of step. Before the next
  statement the pair re-reads (`resync`): it reconnects through fresh connections (bounded retries), compares
  every table's contents on both sides and, where they differ, rebases PostgreSQL's copy on what Citus now
  holds, so later statements are judged from a common state. Chosen over guessing because a Citus bug shows
  up in the statements after the fault (or in the cluster checks), never as an outcome we made up; the price
  is that a wrong effect of the very statement whose outcome was lost is accepted as Citus's state.
- Citus answers with some other error (any SQLSTATE: a repartition job's intermediate file gone with a
  restarted worker is 58P01) while a node restarted during the statement or does not answer (`disturbed`: each
  node's pg_postmaster_start_time, kit.observe.citus): the error is the disturbance's, not a difference in
  behaviour; the step is UNKNOWN and the pair re-reads, as above. Errors with no disturbance seen are judged.
- Shrinkers leave UNKNOWN steps out (like refused ones); a mismatch that needed one does not come back on
  fresh tables, and the detail says so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from assets.citus_sharding.compare import Judgement, Outcome, Verdict, diff_rows, judge
from assets.citus_sharding.shapes import shape_of
from assets.citus_sharding.workload import DISTRIBUTION, SCHEMA, Statement, copy_sql, final_contents_sql, setup_sql
from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.kit.checkers import citus as cluster
from regression_pipelines.kit.generate.coverage import Coverage
from regression_pipelines.kit.generate.shrink import Minimized, ddmin
from regression_pipelines.measure import ErrorTally

LOST_STATES = ("08", "57P01", "57P02", "57P03")  # connection class; admin/crash shutdown; cannot connect now
RESYNC_ATTEMPTS = 5
RESYNC_PAUSE_S = 1.0
Connect = Callable[[str], psycopg.Connection]  # side ("citus", "vanilla", "worker") -> a fresh, bounded session


# Citus reports a node it could not reach mid-statement with XX000 (internal error) and these words
# (found restarting a worker under a repartition join: "cannot connect to ... to fetch intermediate results").
LOST_WORDS = ("cannot connect to", "could not connect to", "connection to the remote node", "connection not open",
              "server closed the connection", "could not establish connection")  # fmt: skip


def connection_lost(outcome: Outcome, conn: psycopg.Connection) -> bool:
    """The statement's session broke (or a node it needed was unreachable): its effect there is unknown."""
    if conn.closed or conn.broken or (outcome.sqlstate or "").startswith(LOST_STATES):
        return True
    internal = outcome.sqlstate in ("XX000", "?????")
    return internal and any(words in outcome.error.lower() for words in LOST_WORDS)


def _run(cur: psycopg.Cursor[Any], stmt: Statement, text: str) -> Outcome:
    if stmt.copy_rows:
        with cur.copy(text) as copy:
            for row in stmt.copy_rows:
                copy.write_row(row)
        return Outcome(rowcount=len(stmt.copy_rows))
    if stmt.prepared:
        cur.execute(text, stmt.params, prepare=True)  # server-side: the sixth execution runs the generic plan
    else:
        cur.execute(text)
        while cur.nextset():  # a multi-statement transaction: its last statement's answer
            pass
    rows = tuple(tuple(r) for r in cur.fetchall()) if cur.description else ()
    return Outcome(rows=rows, rowcount=cur.rowcount)


def execute(conn: psycopg.Connection, stmt: Statement, schema: str, citus: bool = False) -> tuple[Outcome, float]:
    """Run one statement; an error is an outcome (with its SQLSTATE), never an exception. Citus settings of the
    statement are set around it on the Citus side only."""
    text = stmt.sql.replace(SCHEMA, schema)
    settings = stmt.settings if citus else ()
    started = time.perf_counter()
    try:
        with conn.cursor() as cur:
            for name, value in settings:
                cur.execute(sql.SQL("SET {} = {}").format(sql.Identifier(*name.split(".")), sql.Literal(value)))
            try:
                outcome = _run(cur, stmt, text)
            finally:
                for name, _ in settings:
                    cur.execute(sql.SQL("RESET {}").format(sql.Identifier(*name.split("."))))
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
    worker: psycopg.Connection | None = None  # a worker node, for statements sent there (None: the coordinator)
    coverage: Coverage | None = None
    steps: list[Step] = field(default_factory=list)
    connect: Connect | None = None  # fresh sessions after a lost one (None: a lost session stays lost)
    errors: ErrorTally | None = None  # each statement an operation; an UNKNOWN one an error, under `where`
    where: str = "workload"
    out_of_step: bool = False  # an outcome was unknown: `resync` before the next statement
    reconnects: int = 0
    resyncs: list[str] = field(default_factory=list)  # per re-read: the tables rebased ("-": none differed)
    # (seconds the statement took) -> the cluster disturbance that may explain a Citus error, '' for none
    disturbed: Callable[[float], str] | None = None

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
            load(conn, self.schema, initial)
            if side == "vanilla":
                conn.commit()
            seconds[side] = time.perf_counter() - started
        return seconds

    def apply(self, stmt: Statement) -> Step:
        """Both sides, judged; a lost session gives an UNKNOWN step and an operation error (module docstring)."""
        if self.out_of_step and not self.resync():
            return self._unknown(stmt, "not run: the pair could not be brought back in step (systems unreachable)")
        vanilla, vanilla_s = execute(self.vanilla, stmt, self.schema)
        if connection_lost(vanilla, self.vanilla):  # its transaction died with the session: applied nowhere
            self.out_of_step = True  # nothing to rebase, but the session is replaced (and the re-read is cheap)
            return self._unknown(stmt, f"PostgreSQL session lost: {vanilla.error}", vanilla_s=vanilla_s)
        citus_conn = self.worker if stmt.on_worker and self.worker is not None else self.citus
        citus, citus_s = execute(citus_conn, stmt, self.schema, citus=True)
        if connection_lost(citus, citus_conn):
            with contextlib.suppress(psycopg.Error):
                self.vanilla.rollback()
            self.out_of_step = True  # did it take effect on Citus? re-read before the next statement
            return self._unknown(stmt, f"Citus session lost or node unreachable: {citus.error}", citus_s, vanilla_s)
        shape = shape_of(stmt.kind)
        if cause := self._disturbance(citus, vanilla, shape.by_design, citus_s):
            with contextlib.suppress(psycopg.Error):
                self.vanilla.rollback()
            self.out_of_step = True  # a failure in the commit phase may still be completed by Citus's recovery
            return self._unknown(stmt, f"Citus error {citus.sqlstate} while {cause}: {citus.error}", citus_s, vanilla_s)
        try:
            if vanilla.failed or citus.failed:
                self.vanilla.rollback()
            else:
                self.vanilla.commit()
        except psycopg.Error as exc:  # the COMMIT's fate is unknown on PostgreSQL
            self.out_of_step = True
            message = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            return self._unknown(stmt, f"PostgreSQL COMMIT lost: {message[:200]}", citus_s, vanilla_s)
        if self.errors is not None:
            self.errors.ok()
        step = Step(stmt, judge(citus, vanilla, stmt.ordered, shape.by_design), citus_s, vanilla_s)
        if self.coverage is not None:
            by_design = citus.failed and citus.sqlstate in shape.by_design
            refused = citus.sqlstate if citus.failed and (not vanilla.failed or by_design) else None
            self.coverage.op(shape, refusal=refused, error=citus.failed and vanilla.failed and not by_design)
        self.steps.append(step)
        return step

    def _disturbance(self, citus: Outcome, vanilla: Outcome, by_design: frozenset[str], citus_s: float) -> str:
        """Why a Citus error is not judged: a node restarted while the statement ran, or does not answer ('' when
        neither, or when the error is one PostgreSQL gave too or one refused by design: those are judged)."""
        if self.disturbed is None or not citus.failed or citus.sqlstate in by_design:
            return ""
        if vanilla.failed and vanilla.sqlstate == citus.sqlstate:
            return ""
        return self.disturbed(citus_s)

    def _unknown(self, stmt: Statement, why: str, citus_s: float = 0.0, vanilla_s: float = 0.0) -> Step:
        detail = f"#{stmt.index} {stmt.kind}: {why}"
        if self.errors is not None:
            self.errors.failed(detail, where=self.where)
        step = Step(stmt, Judgement(Verdict.UNKNOWN, detail), citus_s, vanilla_s)
        self.steps.append(step)
        return step

    def reconnect(self) -> None:
        """Replace every closed or broken session by a fresh one (raises when a system is unreachable)."""
        if self.connect is None:
            raise psycopg.OperationalError("no way to reconnect (the pair was built without `connect`)")
        for side in ("vanilla", "citus", "worker"):
            conn = getattr(self, side)
            if conn is None or not (conn.closed or conn.broken):
                continue
            with contextlib.suppress(psycopg.Error):
                conn.close()
            try:
                setattr(self, side, self.connect(side))
            except (psycopg.Error, ResourceConfigError):
                if side != "worker":
                    raise
                setattr(self, side, None)  # worker-side statements go to the coordinator from here on
            self.reconnects += 1

    def resync(self) -> bool:
        """Re-read after an unknown outcome: fresh sessions, every table compared, PostgreSQL's copy rebased on
        Citus's where they differ. Bounded retries; False when the systems stay unreachable."""
        for attempt in range(RESYNC_ATTEMPTS):
            if attempt:
                time.sleep(RESYNC_PAUSE_S)
            try:
                self.reconnect()
                self.vanilla.rollback()
                rebased = []
                for table, text in final_contents_sql().items():
                    query = text.replace(SCHEMA, self.schema)
                    on_citus = self.citus.execute(query).fetchall()
                    if diff_rows(on_citus, self.vanilla.execute(query).fetchall(), ordered=False):
                        self.vanilla.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(self.schema, table)))
                        load(self.vanilla, self.schema, {table: [tuple(r) for r in on_citus]})
                        rebased.append(table)
                self.vanilla.commit()
            except (psycopg.Error, ResourceConfigError):
                with contextlib.suppress(psycopg.Error):
                    self.vanilla.rollback()
                continue
            self.out_of_step = False
            self.resyncs.append(", ".join(rebased) or "-")
            return True
        return False

    def close(self) -> None:
        for conn in (self.citus, self.vanilla, self.worker):
            if conn is not None:
                with contextlib.suppress(psycopg.Error):
                    conn.close()

    def compare_contents(self) -> list[str]:
        """Whole tables compared as multisets; one line per table that differs (or fails to read)."""
        problems = []
        coverage, self.coverage = self.coverage, None
        try:
            for table, text in final_contents_sql().items():
                step = self.apply(Statement(-1, f"contents_{table}", text, query=True))
                self.steps.pop()
                if step.judgement.verdict is Verdict.UNKNOWN:
                    problems.append(f"table {table}: not compared ({step.judgement.detail})")
                elif step.judgement.verdict is not Verdict.SAME:
                    problems.append(f"table {table}: {step.judgement.detail}")
        finally:
            self.coverage = coverage
        return problems

    def drop(self) -> None:
        """Remove both schemas (also after a failure); errors here are left to the caller's cleanup report."""
        self.vanilla.rollback()
        statement = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
        self.citus.execute(statement)
        self.vanilla.execute(statement)
        self.vanilla.commit()


def load(conn: psycopg.Connection, schema: str, initial: dict[str, list[tuple[Any, ...]]]) -> None:
    with conn.cursor() as cur:
        for table, rows in initial.items():
            with cur.copy(copy_sql(table).replace(SCHEMA, schema)) as copy:
                for row in rows:
                    copy.write_row(row)


def replayer(
    pair: Pair, initial: dict[str, list[tuple[Any, ...]]], deadline: float
) -> Callable[[list[Statement]], bool | None]:
    """A `shows_mismatch` for ddmin: replay a candidate on fresh schemas; None once past the deadline."""
    counter = iter(range(1, 10_000))

    def shows_mismatch(candidate: list[Statement]) -> bool | None:
        if time.monotonic() >= deadline:
            return None
        fresh = Pair(pair.citus, pair.vanilla, f"{pair.schema}_m{next(counter)}", pair.shard_count, pair.worker)
        try:
            fresh.create(initial)
            for stmt in candidate[:-1]:
                fresh.apply(stmt)
            return fresh.apply(candidate[-1]).judgement.verdict is Verdict.MISMATCH
        except psycopg.Error:  # the cluster cannot replay right now (e.g. a worker restarted): cannot tell
            return None
        finally:
            with contextlib.suppress(psycopg.Error):  # the run's cleanup removes replay schemas left here
                fresh.drop()

    return shows_mismatch


def minimal_sequence(
    steps: Sequence[Step], first_mismatch: int, shows_mismatch: Callable[[list[Statement]], bool | None], budget: int
) -> Minimized[Statement]:
    """The fewest statements before the first mismatching one that still make it mismatch on fresh tables.

    Statements Citus refused are left out up front: they changed neither side; so are UNKNOWN ones.
    """
    skip = (Verdict.UNSUPPORTED, Verdict.UNKNOWN)
    prefix = [s.stmt for s in steps[:first_mismatch] if s.judgement.verdict not in skip]
    return ddmin(prefix, steps[first_mismatch].stmt, shows_mismatch, budget)


# --- rows in the wrong shard ---------------------------------------------------------------------------------------


@dataclass
class Misplaced:
    """What the misplacement shrinker found: the statement after which rows sit in the wrong shard, and the
    fewest statements before it that still leave them there on fresh tables."""

    found: Minimized[Statement] | None  # None: the whole workload replayed on fresh tables misplaced nothing
    replays: int


class ShardProbe:
    """Counts rows whose key hashes outside their shard's range: one query per node (every shard of the schema's
    distributed tables on it), on connections kept for the probe's life, so it can run after every statement."""

    def __init__(self, citus: psycopg.Connection, connect_node: cluster.NodeConnector, schema: str) -> None:
        by_node: dict[tuple[str, int], list[sql.Composable]] = {}
        for table, column in DISTRIBUTION.items():
            for place in cluster.own_placements(citus, f"{schema}.{table}"):
                shard_schema, _, shard = place.shard.rpartition(".")
                by_node.setdefault((place.host, place.port), []).append(
                    sql.SQL("SELECT count(*) AS n FROM {} WHERE worker_hash({}) NOT BETWEEN {} AND {}").format(
                        sql.Identifier(shard_schema, shard), sql.Identifier(column), place.low, place.high
                    )
                )
        self.queries = {
            node: sql.SQL("SELECT coalesce(sum(n), 0) FROM ({}) counts").format(sql.SQL(" UNION ALL ").join(parts))
            for node, parts in by_node.items()
        }
        self.nodes = {node: connect_node(*node) for node in self.queries}

    def misplaced(self) -> int:
        return sum(int(conn.execute(self.queries[node]).fetchone()[0]) for node, conn in self.nodes.items())

    def close(self) -> None:
        for conn in self.nodes.values():
            conn.close()


def _writes(stmt: Statement) -> bool:
    return not stmt.sql.lstrip().upper().startswith("SELECT")


@dataclass
class MisplacementReplayer:
    """Replays statements on Citus alone, on a fresh schema per replay, and watches where rows land."""

    citus: psycopg.Connection
    worker: psycopg.Connection | None
    connect_node: cluster.NodeConnector
    schema: str
    shard_count: int
    initial: dict[str, list[tuple[Any, ...]]]
    deadline: float
    replays: int = 0

    def first_misplacing(self, statements: Sequence[Statement]) -> int | None:
        """The index of the first statement after which a row sits in the wrong shard (one replay), else None."""
        return self._replay(list(statements), watch=True)

    def misplaces(self, candidate: list[Statement]) -> bool | None:
        """`shows` for ddmin: does replaying the candidate leave a row in the wrong shard? None past the deadline."""
        if time.monotonic() >= self.deadline:
            return None
        return self._replay(candidate, watch=False) is not None

    def _replay(self, statements: list[Statement], watch: bool) -> int | None:
        self.replays += 1
        fresh = f"{self.schema}_r{self.replays}"
        probe: ShardProbe | None = None
        try:
            self.citus.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(fresh)))
            for statement in setup_sql(distributed=True, shard_count=self.shard_count):
                self.citus.execute(statement.replace(SCHEMA, fresh))
            load(self.citus, fresh, self.initial)
            probe = ShardProbe(self.citus, self.connect_node, fresh)
            for index, stmt in enumerate(statements):
                on = self.worker if stmt.on_worker and self.worker is not None else self.citus
                execute(on, stmt, fresh, citus=True)
                if watch and _writes(stmt) and probe.misplaced():
                    return index
            return len(statements) - 1 if probe.misplaced() else None
        finally:
            if probe is not None:
                probe.close()
            with contextlib.suppress(psycopg.Error):  # the run's cleanup removes replay schemas left here
                self.citus.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(fresh)))


def misplacing_sequence(statements: Sequence[Statement], replayer: MisplacementReplayer, budget: int) -> Misplaced:
    """The statement after which rows are misplaced (one watched replay), then ddmin of what came before it."""
    items = list(statements)
    culprit = replayer.first_misplacing(items) if items else None
    if culprit is None:
        return Misplaced(None, replayer.replays)
    found = ddmin(items[:culprit], items[culprit], replayer.misplaces, budget)
    return Misplaced(found, replayer.replays)
