"""What a PostgreSQL server says about itself and about a run's tables: the evidence a failure's detail names.

Why: "3 lost" tells the user what the run saw; the server knows why rows vanish or writes fail: a trigger whose
function returns NULL, a `DO INSTEAD NOTHING` rule, a CHECK constraint added mid-run, a revoked privilege, a lock
held by an outside session, row-level security switched, a table dropped, or a restart
(`pg_postmaster_start_time()`). `snapshot(connect, tables)` reads the catalogs over a fresh connection of its own
(the run's may be the broken thing) and never raises; a `Sampler` (kit.observe.watch) takes looks during the
run, so a trigger added and dropped again before the judge, or a restart, is still named; `findings(before,
after, during)` says in words what is abnormal; `explain` gives "unexplained" when nothing is.

Outside writers: a run that counts the rows its own statements wrote to a table it created (`OwnWrites`) gets
the rows PostgreSQL counted beyond them named (pg_stat_user_tables, `beyond_own`), with the sessions seen holding a
write lock on the table; a table whose storage was replaced (TRUNCATE, VACUUM FULL, CLUSTER) is named too.

Reusable by any area: it knows nothing of the area but its table names and the `application_name` prefix its
own sessions use (locks held by any other session are an outside session's). Only names, definitions and
figures are kept, never row values.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from regression_pipelines.measure import describe_error

UNEXPLAINED = (
    "unexplained (pg_trigger, pg_rules, constraints, grants, row-level security, locks and "
    "pg_postmaster_start_time show nothing abnormal)"
)
# Lock modes an outside session can hold that stop INSERT/UPDATE/DELETE on the table until it lets go.
BLOCKING_MODES = ("ShareLock", "ShareRowExclusiveLock", "ExclusiveLock", "AccessExclusiveLock")
WRITE_MODES = ("RowExclusiveLock",)  # an outside session writing rows of the table
LOCK_WAIT_MS = 200  # a look never waits longer than this for a lock someone else holds

SERVER = """
SELECT pg_postmaster_start_time(), now(), pg_is_in_recovery(), current_setting('server_version'),
       (SELECT deadlocks FROM pg_stat_database WHERE datname = current_database())
"""
TABLE = """
SELECT c.oid, n.nspname, c.relname, c.relrowsecurity, c.relforcerowsecurity, c.relfilenode
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)
"""
TRIGGERS = """
SELECT t.tgname, pg_get_triggerdef(t.oid), t.tgenabled, p.prosrc
FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid WHERE t.tgrelid = %s AND NOT t.tgisinternal ORDER BY 1
"""
RULES = "SELECT rulename, definition FROM pg_rules WHERE schemaname = %s AND tablename = %s ORDER BY 1"
CONSTRAINTS = """
SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint WHERE conrelid = %s ORDER BY 1
"""
GRANTS = """
SELECT coalesce(r.rolname, 'PUBLIC'), a.privilege_type
FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a LEFT JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = %s
"""
POLICIES = """
SELECT policyname, cmd, roles::text, coalesce(qual, ''), coalesce(with_check, '')
FROM pg_policies WHERE schemaname = %s AND tablename = %s ORDER BY 1
"""
# Server settings someone set (ALTER SYSTEM + reload, ALTER DATABASE/ROLE ... SET, the config file): a change
# mid-run (default_transaction_read_only, statement_timeout, synchronous_commit, ...) changes what writes do.
SETTINGS = """
SELECT name, setting FROM pg_settings
WHERE source NOT IN ('default', 'client', 'session', 'override', 'interactive', 'test')
"""
WRITES = "SELECT n_tup_ins, n_tup_upd, n_tup_del, n_live_tup FROM pg_stat_user_tables WHERE relid = %s"
LOCKS = """
SELECT l.relation::regclass::text, l.mode, l.granted, a.pid, coalesce(a.application_name, ''),
       coalesce(a.usename::text, ''), coalesce(a.state, ''), a.xact_start, l.relation
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.relation = ANY(%s::oid[]) AND l.pid <> pg_backend_pid()
  AND NOT coalesce(a.application_name, '') LIKE %s
ORDER BY 4
"""


@dataclass(frozen=True)
class TableFacts:
    """One table as the catalogs describe it (exists=False: to_regclass found nothing)."""

    name: str
    exists: bool = True
    triggers: Mapping[str, str] = field(default_factory=dict)  # name -> definition (with state and a hint)
    rules: Mapping[str, str] = field(default_factory=dict)  # name -> definition
    constraints: Mapping[str, str] = field(default_factory=dict)  # name -> definition
    grants: frozenset[tuple[str, str]] = frozenset()  # (grantee, privilege)
    rls: str = ""  # "off", "enabled", "forced"
    policies: Mapping[str, str] = field(default_factory=dict)
    writes: tuple[int, int, int] = (0, 0, 0)  # rows inserted, updated, deleted (pg_stat_user_tables)
    read: bool = True  # False: its details could not be read (a lock held on it); nothing is judged from it
    filenode: int = 0  # pg_class.relfilenode: a new one means the storage was replaced (TRUNCATE, VACUUM FULL)
    live: int = 0  # n_live_tup (pg_stat_user_tables): the server's running count of live rows
    oid: int = 0


@dataclass(frozen=True)
class Lock:
    """A lock on one of the tables held (or awaited) by a session that is not the run's."""

    table: str
    mode: str
    granted: bool
    pid: int
    application: str
    user: str
    state: str
    xact_start: datetime | None
    relation: int = 0  # the table's oid

    def who(self) -> str:
        """'pid 42 (psql) as postgres': what pg_stat_activity shows anyone about a session."""
        who = f"pid {self.pid}" + (f" ({self.application})" if self.application else "")
        return who + (f" as {self.user}" if self.user else "")

    def context(self) -> list[str]:
        """Its state and transaction start (NULL, so left out, unless the observer may see that session's)."""
        context = [self.state] if self.state else []
        if self.xact_start:
            context.append(f"in a transaction since {self.xact_start.astimezone(UTC):%H:%M:%S} UTC")
        return context

    def describe(self) -> str:
        held = "holds" if self.granted else "waits for"
        context = self.context()
        return f"an outside session {self.who()} {held} {self.mode} on {self.table}" + (
            f" ({', '.join(context)})" if context else ""
        )


@dataclass(frozen=True)
class PgState:
    """One look at the server and the tables (or the reason there was none)."""

    at: float  # monotonic seconds
    started_at: datetime | None = None  # pg_postmaster_start_time()
    now: datetime | None = None
    in_recovery: bool = False
    version: str = ""
    deadlocks: int = 0
    tables: Mapping[str, TableFacts] = field(default_factory=dict)
    locks: tuple[Lock, ...] = ()
    error: str = ""
    settings: Mapping[str, str] = field(default_factory=dict)  # set, non-session settings (SETTINGS)
    reached: bool = True  # False: no session could be opened; an error with a session is the server answering

    @property
    def answered(self) -> bool:
        return not self.error


Connect = Callable[[], psycopg.Connection]


def snapshot(
    connect: Connect, tables: Sequence[str], own_application: str = "", clock: Callable[[], float] = time.monotonic
) -> PgState:
    """The server's facts, each table's, and outside sessions' locks on them; never raises.

    `own_application`: the application_name prefix of the run's own sessions (their locks are not news).
    """
    at = clock()
    try:
        conn = connect()
    except (psycopg.Error, OSError) as exc:
        return PgState(at, error=describe_error(exc), reached=False)
    try:
        with conn:
            conn.autocommit = True
            started, now, recovery, version, deadlocks = conn.execute(SERVER).fetchone()  # type: ignore[misc]
            settings = {str(name): str(value) for name, value in conn.execute(SETTINGS).fetchall()}
            conn.execute(f"SET lock_timeout = '{LOCK_WAIT_MS}ms'")  # deparsing a CHECK waits for a held lock
            found_rows = {name: conn.execute(TABLE, (name,)).fetchone() for name in tables}
            oids = [row[0] for row in found_rows.values() if row is not None]
            own = f"{own_application}%" if own_application else "<no own sessions>%"  # (text holds no NUL)
            locks = tuple(Lock(*row) for row in conn.execute(LOCKS, (oids, own)).fetchall())
            facts = {}
            for name, found in found_rows.items():
                if found is None:
                    facts[name] = TableFacts(name, exists=False)
                    continue
                try:
                    facts[name] = _table(conn, name, found)
                except psycopg.errors.LockNotAvailable:  # an outside lock (named in `locks`): details next look
                    facts[name] = TableFacts(name, read=False, filenode=int(found[5]), oid=int(found[0]))
        return PgState(at, started, now, bool(recovery), str(version), int(deadlocks or 0), facts, locks, "", settings)
    except (psycopg.Error, OSError) as exc:
        return PgState(at, error=describe_error(exc))


def _table(conn: psycopg.Connection, name: str, found: tuple[Any, ...]) -> TableFacts:
    oid, schema, relname, rls, forced, filenode = found
    triggers = {}
    for tg_name, definition, enabled, source in conn.execute(TRIGGERS, (oid,)).fetchall():
        state = {"D": " (disabled)", "R": " (replica only)", "A": " (always)"}.get(enabled, "")
        skips = "return null" in (source or "").lower()
        hint = " — its function can RETURN NULL: the row is silently skipped" if skips else ""
        triggers[tg_name] = f"{definition}{state}{hint}"
    rules = dict(conn.execute(RULES, (schema, relname)).fetchall())
    constraints = {
        con: definition + ("" if valid or definition.endswith("NOT VALID") else " NOT VALID")
        for con, definition, valid in conn.execute(CONSTRAINTS, (oid,)).fetchall()
    }
    grants = frozenset((str(g), str(p)) for g, p in conn.execute(GRANTS, (oid,)).fetchall())
    policies = {
        policy: f"FOR {cmd} TO {roles}"
        + (f" USING ({qual})" if qual else "")
        + (f" WITH CHECK ({check})" if check else "")  # fmt: skip
        for policy, cmd, roles, qual, check in conn.execute(POLICIES, (schema, relname)).fetchall()
    }
    ins, upd, dele, live = conn.execute(WRITES, (oid,)).fetchone() or (0, 0, 0, 0)
    return TableFacts(
        name, True, triggers, rules, constraints, grants, "forced" if forced else "enabled" if rls else "off",
        policies, (int(ins or 0), int(upd or 0), int(dele or 0)), True, int(filenode), int(live or 0), int(oid),
    )  # fmt: skip


def connector(conninfo: str, timeout_s: float = 3.0, application: str = "regress-observer") -> Connect:
    """Fresh connections to the server `conninfo` names (short connect timeout; the observer's own name)."""

    def connect() -> psycopg.Connection:
        return psycopg.connect(conninfo, connect_timeout=max(1, int(timeout_s)), application_name=application)

    return connect


# -- the run's own writes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowWrites:
    """Rows written to one table; in a run's own tally also `uncertain`: its write statements whose outcome it
    does not know (an error or a broken connection), each of which the server may have counted as one row."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    uncertain: int = 0

    def any(self) -> bool:
        return bool(self.inserted or self.updated or self.deleted)

    def describe(self) -> str:
        """'3 updated and 2 deleted' (only the kinds there are)."""
        kinds = [(self.inserted, "inserted"), (self.updated, "updated"), (self.deleted, "deleted")]
        parts = [f"{n} {verb}" for n, verb in kinds if n]
        return " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts) or "none"


class OwnWrites:
    """A thread-safe tally of the rows a run's statements wrote to one table it created, as their results said
    (e.g. one RETURNING row per row written); `findings(own_writes=...)` names what the server counted beyond."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = RowWrites()

    def add(self, inserted: int = 0, updated: int = 0, deleted: int = 0, uncertain: int = 0) -> None:
        with self._lock:
            c = self._counts
            self._counts = RowWrites(c.inserted + inserted, c.updated + updated, c.deleted + deleted,
                                     c.uncertain + uncertain)  # fmt: skip

    def total(self) -> RowWrites:
        with self._lock:
            return self._counts


def beyond_own(counted: tuple[int, int, int], own: RowWrites) -> RowWrites:
    """The rows PostgreSQL counted on a table the run created (n_tup_ins, n_tup_upd, n_tup_del start at zero with
    it) that the run's own writes do not account for: a lower bound, never a guess.

    Why a bound: a statement of unknown outcome may have been counted, as any one kind (each is taken off every
    kind); and an INSERT ... ON CONFLICT that loses a race for a new key has its speculative row counted as one
    insert and one delete (heap_abort_speculative), which its client cannot see, so inserts and deletes in
    excess by the same number are not claimed. The server's counts are those its backends flushed (at the latest
    when their session ends): compare once the run's own writing sessions have ended."""
    ins, upd, dele = counted[0] - own.inserted, counted[1] - own.updated, counted[2] - own.deleted
    paired = max(0, min(ins, dele))
    slack = own.uncertain
    return RowWrites(max(0, ins - paired - slack), max(0, upd - slack), max(0, dele - paired - slack))


# -- what the looks say ----------------------------------------------------------------------------------------


def findings(
    before: PgState,
    after: PgState,
    during: Sequence[PgState] = (),
    unexpected_writes: Iterable[str] = (),
    own_writes: Mapping[str, RowWrites] | None = None,
) -> list[str]:
    """What stands out between the first look (at the start of the run), the samples and the last look, most
    telling first; [] when nothing. `unexpected_writes` ("update", "delete", "truncate"): changes the run never
    makes itself, so any counted or seen on its tables were made by someone else ("truncate": the table's storage
    replaced). `own_writes`: per table the run created, the rows its own statements wrote (`OwnWrites`); rows
    counted beyond them are named with the sessions seen writing the table."""
    looks = [s for s in (*during, after) if s.answered]
    found = _restarts(before, after, during)
    if not before.answered and not looks:
        return found
    origin = before if before.answered else looks[0]
    found += _objects(origin, looks, "trigger", lambda t: t.triggers, present_is_news=True)
    found += _objects(origin, looks, "rule", lambda t: t.rules, present_is_news=True)
    found += _objects(origin, looks, "constraint", lambda t: t.constraints)
    found += _objects(origin, looks, "row-level security policy", lambda t: t.policies)
    found += _grants(origin, looks)
    found += _rls(origin, looks)
    found += _dropped(origin, looks)
    if "truncate" in set(unexpected_writes):
        found += _rewrites(origin, looks)
    outside, named = _outside_rows(origin, looks, own_writes or {}, bool(restarted(before, after, during)))
    found += outside
    found += _locks(origin, [*looks], named)
    found += _writes(origin, looks, set(unexpected_writes))
    found += settings_changed(origin, looks)
    if looks and (deadlocks := looks[-1].deadlocks - origin.deadlocks) > 0:
        found.append(f"{deadlocks} deadlocks in the database during the run (pg_stat_database)")
    if looks and looks[-1].in_recovery:
        found.append("the server is in recovery (a standby: writes fail)")
    return found


def explain(before: PgState, after: PgState, during: Sequence[PgState] = (), **kwargs: Any) -> str:
    """The findings in one line, or "unexplained" when the server shows nothing abnormal."""
    found = findings(before, after, during, **kwargs)
    return "; ".join(found) if found else UNEXPLAINED


def restarted(before: PgState, after: PgState, during: Sequence[PgState] = ()) -> str:
    """'PostgreSQL restarted at ... (pg_postmaster_start_time)' when a look shows a newer start time, else ''."""
    found = [f for f in _restarts(before, after, during) if "restarted" in f]
    return found[0] if found else ""


def _restarts(before: PgState, after: PgState, during: Sequence[PgState]) -> list[str]:
    found = []
    looks = [s for s in (before, *during, after) if s.answered]
    starts = sorted({s.started_at for s in looks if s.started_at is not None})
    if len(starts) > 1:
        origin = looks[0]
        for start in starts[1:]:
            into = ""
            if origin.now is not None:
                into = f", {(start - origin.now).total_seconds():.1f} s into the run"
            found.append(f"PostgreSQL restarted at {start.astimezone(UTC):%H:%M:%S.%f}"[:-3] + f" UTC{into} "
                         "(pg_postmaster_start_time)")  # fmt: skip
    silent = [s for s in (*during, after) if not s.reached]
    found += _failed_looks(before, silent, "did not answer")
    erred = [s for s in (*during, after) if s.reached and not s.answered]  # a cancel, a timeout: not an outage
    found += _failed_looks(before, erred, "answered the observer with an error")
    if not before.answered:
        what = "did not answer" if not before.reached else "answered the observer with an error"
        found.append(f"PostgreSQL {what} at the start of the run ({before.error})")
    return found


def _failed_looks(before: PgState, failed: Sequence[PgState], what: str) -> list[str]:
    if not failed:
        return []
    first, last = failed[0], failed[-1]
    span = (
        f"{first.at - before.at:.1f} s" if first is last else f"{first.at - before.at:.1f}-{last.at - before.at:.1f} s"
    )
    return [f"PostgreSQL {what} {len(failed)} looks at {span} into the run ({first.error})"]


def _when(origin: PgState, look: PgState, last: PgState) -> str:
    return "at the end of the run" if look is last else f"seen {look.at - origin.at:.1f} s into the run"


def _objects(
    origin: PgState,
    looks: Sequence[PgState],
    kind: str,
    get: Callable[[TableFacts], Mapping[str, str]],
    present_is_news: bool = False,
) -> list[str]:
    """Objects added, changed or removed on the tables during the run; with `present_is_news`, also those there
    from the start (the run makes no triggers or rules of its own: any such object acts on its rows)."""
    found: list[str] = []
    last = looks[-1] if looks else origin
    for name, first in origin.tables.items():
        if not first.read:
            continue
        start = get(first) if first.exists else {}
        if present_is_news:
            found += [f"{kind} {obj} on {name} (already in force at the first look, when the run set up): {definition}"
                      for obj, definition in start.items()]  # fmt: skip
        reported: set[tuple[str, str]] = set()
        added: dict[str, int] = {}  # object -> index of its finding
        for look in looks:
            facts = look.tables.get(name)
            if facts is None or not facts.exists or not facts.read:
                continue
            current = get(facts)
            for obj, definition in current.items():
                if start.get(obj) != definition and ("added", obj) not in reported:
                    reported.add(("added", obj))
                    verb = "changed" if obj in start else "added"
                    added[obj] = len(found)
                    found.append(f"{kind} {obj} {verb} on {name} ({_when(origin, look, last)}): {definition}")
            for obj in start:
                if obj not in current and ("removed", obj) not in reported:
                    reported.add(("removed", obj))
                    found.append(f"{kind} {obj} removed from {name} ({_when(origin, look, last)})")
        final = last.tables.get(name)
        for obj, index in added.items():
            if final is not None and final.exists and final.read and obj not in get(final) and obj not in start:
                found[index] += " (gone again by the end of the run)"
    return found


def _grants(origin: PgState, looks: Sequence[PgState]) -> list[str]:
    found: list[str] = []
    last = looks[-1] if looks else origin
    for name, first in origin.tables.items():
        if not first.exists or not first.read:
            continue
        seen: set[tuple[str, str, str]] = set()
        for look in looks:
            facts = look.tables.get(name)
            if facts is None or not facts.exists or not facts.read:
                continue
            for grantee, privilege in sorted(first.grants - facts.grants):
                if ("revoked", grantee, privilege) not in seen:
                    seen.add(("revoked", grantee, privilege))
                    found.append(f"{privilege} on {name} revoked from {grantee} ({_when(origin, look, last)})")
            for grantee, privilege in sorted(facts.grants - first.grants):
                if ("granted", grantee, privilege) not in seen:
                    seen.add(("granted", grantee, privilege))
                    found.append(f"{privilege} on {name} granted to {grantee} ({_when(origin, look, last)})")
    return found


def _rls(origin: PgState, looks: Sequence[PgState]) -> list[str]:
    found = []
    last = looks[-1] if looks else origin
    for name, first in origin.tables.items():
        values = [first.rls]
        when = ""
        for look in looks:
            facts = look.tables.get(name)
            if facts is not None and facts.exists and facts.read and facts.rls != values[-1]:
                values.append(facts.rls)
                when = when or _when(origin, look, last)
        if first.exists and first.read and len(values) > 1:
            found.append(f"row-level security on {name} changed: {' -> '.join(values)} ({when})")
    return found


def _dropped(origin: PgState, looks: Sequence[PgState]) -> list[str]:
    found = []
    last = looks[-1] if looks else origin
    for name, first in origin.tables.items():
        gone = next((look for look in looks if name in look.tables and not look.tables[name].exists), None)
        if first.exists and gone is not None:
            found.append(f"table {name} was dropped ({_when(origin, gone, last)})")
    return found


def _locks(origin: PgState, looks: Sequence[PgState], named: Collection[tuple[int, int]] = ()) -> list[str]:
    """Outside sessions' locks that block or write (each once); `named`: (pid, table oid) of writers a finding
    on outside rows already names."""
    found: list[str] = []
    seen: set[tuple[int, str, str]] = set()
    for look in [origin, *looks]:
        for lock in look.locks:
            key = (lock.pid, lock.table, lock.mode)
            if lock.relation and (lock.pid, lock.relation) in named and lock.mode in WRITE_MODES:
                continue
            if key in seen or lock.mode not in BLOCKING_MODES + WRITE_MODES:
                continue
            seen.add(key)
            what = "blocks the run's writes" if lock.mode in BLOCKING_MODES else "writes rows"
            found.append(f"{lock.describe()}: {what} ({_when(origin, look, looks[-1] if looks else origin)})")
    return found


def _rewrites(origin: PgState, looks: Sequence[PgState]) -> list[str]:
    """Tables whose storage was replaced during the run (a new relfilenode): each change once, with when."""
    found = []
    last = looks[-1] if looks else origin
    for name, first in origin.tables.items():
        previous, previous_at = first, origin
        for look in looks:
            facts = look.tables.get(name)
            if facts is None or not facts.exists or not facts.filenode:
                continue
            if previous.exists and previous.filenode and facts.filenode != previous.filenode:
                found.append(
                    f"table {name} was emptied or rewritten by someone else ({_when(origin, look, last)}): its storage "
                    f"was replaced (relfilenode {previous.filenode} -> {facts.filenode}), as TRUNCATE, VACUUM FULL, "
                    f"CLUSTER or a rewriting ALTER TABLE do, none of which the run does"
                    + _live_before(origin, previous, previous_at, last)
                )
            previous, previous_at = facts, look
    return found


def _live_before(origin: PgState, facts: TableFacts, look: PgState, last: PgState) -> str:
    if not facts.live:
        return ""
    when = "at the first look" if look is origin else _when(origin, look, last).replace("seen", "at the look")
    return f"; pg_stat_user_tables counted {facts.live} live rows in it {when}"


def _outside_rows(
    origin: PgState, looks: Sequence[PgState], own_writes: Mapping[str, RowWrites], restarted: bool
) -> tuple[list[str], set[tuple[int, int]]]:
    """Rows counted on each table beyond the run's own writes (`beyond_own`, from the last look that read the
    table), with the sessions seen holding a write lock on it; and those sessions as (pid, table oid). Nothing
    is counted across a restart (a crash loses the server's counts)."""
    found: list[str] = []
    named: set[tuple[int, int]] = set()
    if restarted or not looks:
        return found, named
    for name, own in own_writes.items():
        facts = next((t for look in reversed(looks) if (t := look.tables.get(name)) and t.exists and t.read), None)
        if facts is None:
            continue
        beyond = beyond_own(facts.writes, own)
        if not beyond.any():
            continue
        writers = _writers(origin, looks, facts.oid)
        named |= {(lock.pid, facts.oid) for lock, _ in writers}
        seen_in = sum(1 for look in [origin, *looks] if name in look.tables)
        who = _named_writers(origin, looks, writers, seen_in)
        found.append(f"an outside writer changed rows of {name}: {beyond.describe()} beyond the run's own writes "
                     f"({_accounting(facts.writes, own)}); {who}")  # fmt: skip
    return found, named


def _accounting(counted: tuple[int, int, int], own: RowWrites) -> str:
    ins, upd, dele = counted
    text = (
        f"pg_stat_user_tables counted {ins} inserted, {upd} updated, {dele} deleted since the run created it; "
        f"the run's own statements {own.inserted} inserted, {own.updated} updated, {own.deleted} deleted"
    )
    return text + (f", and {own.uncertain} of unknown outcome" if own.uncertain else "")


def _writers(origin: PgState, looks: Sequence[PgState], oid: int) -> list[tuple[Lock, PgState]]:
    """Outside sessions seen holding a write lock on the table (each pid once, at its first sighting)."""
    seen: dict[int, tuple[Lock, PgState]] = {}
    for look in [origin, *looks] if oid else ():
        for lock in look.locks:
            if lock.relation == oid and lock.mode in WRITE_MODES and lock.granted and lock.pid not in seen:
                seen[lock.pid] = (lock, look)
    return list(seen.values())


def _named_writers(origin: PgState, looks: Sequence[PgState], writers: list[tuple[Lock, PgState]], seen_in: int) -> str:
    if not writers:
        return f"no outside session was seen holding a write lock on it in {seen_in} looks"
    last = looks[-1]
    named = [f"{lock.who()} ({', '.join([*lock.context(), _when(origin, look, last)])})" for lock, look in writers]
    return "sessions seen writing it (RowExclusiveLock): " + ", ".join(named)


def _writes(origin: PgState, looks: Sequence[PgState], unexpected: set[str]) -> list[str]:
    if not looks or not unexpected:
        return []
    found = []
    last = looks[-1]
    for name, first in origin.tables.items():
        facts = last.tables.get(name)
        if not first.exists or not first.read or facts is None or not facts.exists or not facts.read:
            continue
        updated = facts.writes[1] - first.writes[1]
        deleted = facts.writes[2] - first.writes[2]
        parts = []
        if "update" in unexpected and updated > 0:
            parts.append(f"{updated} updated")
        if "delete" in unexpected and deleted > 0:
            parts.append(f"{deleted} deleted")
        if parts:
            found.append(f"rows of {name} {' and '.join(parts)} by someone else (pg_stat_user_tables; the run "
                         "makes no such change)")  # fmt: skip
    return found


def settings_changed(origin: PgState, looks: Sequence[PgState]) -> list[str]:
    """Server settings changed during the run (each once, with when it was first seen, and whether it was back
    by the end): a database switched read-only, a statement_timeout lowered, synchronous_commit turned off."""
    if not origin.settings or not looks:
        return []
    found = []
    last = looks[-1]
    reported: set[str] = set()
    for look in looks:
        if not look.settings:
            continue
        for name in sorted(set(origin.settings) | set(look.settings)):
            was, now = origin.settings.get(name), look.settings.get(name)
            if was == now or name in reported:
                continue
            reported.add(name)
            text = f"server setting {name} = {now if now is not None else 'its default'}"
            text += f" (was {was if was is not None else 'its default'}; {_when(origin, look, last)})"
            if look is not last and last.settings and last.settings.get(name) == was:
                text += " (back by the end of the run)"
            found.append(text)
    return found
