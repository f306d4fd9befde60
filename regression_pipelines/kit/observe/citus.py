"""What the nodes of a Citus cluster say about themselves: which one restarted or stopped answering, and when.

Why: a statement that fails while a worker restarts fails in whatever words the failing code path picks (a
connection error, "failure on connection marked as essential", a missing intermediate-result file of a
repartition job), so the error's text cannot say whether the cluster was disturbed; each node's
`pg_postmaster_start_time()`, read over a fresh connection of the observer's own, can. Given the run's schema,
each look also reads the locks outside sessions hold or await on its tables and shards (a DBA's LOCK on one
shard stalls every statement that touches it, and answers still match: without the look the stall is silent).
`snapshot` looks at every node (never raises); a `Sampler` (kit.observe.watch) takes looks during the run;
`findings(before, after, during)` names restarts, silences, outside locks and settings; `disturbed(before,
look, within_s)` says whether a node restarted in the last `within_s` seconds (by its own clock) or does not
answer now, for a caller deciding whether an error it just saw may be the disturbance's doing. `NodeWatch`
bundles them for one run (any Citus area).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import psycopg

from regression_pipelines.kit.observe import postgres as observe_pg
from regression_pipelines.kit.observe.watch import Sampler
from regression_pipelines.measure import describe_error
from regression_pipelines.results import Invariant

NodeConnect = Callable[[str, int], psycopg.Connection]  # (host, port) -> an autocommit session on that node
NODE_CLOCK = "SELECT pg_postmaster_start_time(), now()"
# Locks on the run's tables and shards (one schema) that block writes, held or awaited by a client session that
# is neither the run's own (application_name regression_pipelines) nor Citus's (citus_internal, citus_rebalancer).
# By the relation's qualified name, not pg_class: Citus hides shards from pg_class for other application names.
# backend_type is NULL for another role's session unless the observer has pg_read_all_stats: unknown is a client.
OUTSIDE_LOCKS = """
SELECT l.relation::regclass::text, l.mode, l.granted, a.pid, coalesce(a.application_name, ''),
       coalesce(a.usename::text, ''), coalesce(a.state, ''), a.xact_start, l.relation
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND starts_with(l.relation::regclass::text, quote_ident(%s) || '.') AND l.pid <> pg_backend_pid()
  AND coalesce(a.backend_type, 'client backend') = 'client backend'
  AND l.mode = ANY(%s) AND NOT coalesce(a.application_name, '') LIKE ANY(%s)
ORDER BY 4, 1
"""
OWN_APPLICATIONS = ["regression_pipelines%", "citus_internal%", "citus_rebalancer%"]


@dataclass(frozen=True)
class NodeLook:
    """One node at one look: when its server started, its clock and the settings someone set, or why not.

    `reached` is False when no session could be opened (down, starting, frozen): the node did not answer. A
    session opened whose query failed (reached, with an `error`) is a node that answers, abnormally."""

    started_at: datetime | None = None
    now: datetime | None = None
    error: str = ""
    reached: bool = True
    settings: Mapping[str, str] = field(default_factory=dict)
    locks: tuple[observe_pg.Lock, ...] = ()  # outside sessions' blocking locks on the run's tables and shards

    @property
    def answered(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class ClusterState:
    """One look at every node, by "role host:port" (the roles: coordinator, worker)."""

    at: float  # monotonic seconds
    nodes: Mapping[str, NodeLook] = field(default_factory=dict)


def snapshot(
    connect: NodeConnect,
    nodes: Sequence[tuple[str, str, int]],
    clock: Callable[[], float] = time.monotonic,
    schema: str = "",
) -> ClusterState:
    """Each node's start time, clock, set settings and (given the run's schema) outside sessions' locks in it,
    over a fresh session; a node that cannot be read says why."""
    return ClusterState(
        clock(), {f"{role} {host}:{port}": _look(connect, host, port, schema) for role, host, port in nodes}
    )


def _look(connect: NodeConnect, host: str, port: int, schema: str = "") -> NodeLook:
    try:
        conn = connect(host, port)
    except Exception as exc:  # noqa: BLE001 - an observer never raises (driver, config or OS errors alike)
        return NodeLook(error=describe_error(exc), reached=False)
    try:
        with conn:
            # no SET of its own: a session value would hide the server's (a statement_timeout set mid-run is news);
            # catalog reads do not wait on locks, and a frozen node already fails the connect's timeout
            started, now = conn.execute(NODE_CLOCK).fetchone()  # type: ignore[misc]
            settings = {str(name): str(value) for name, value in conn.execute(observe_pg.SETTINGS).fetchall()}
            locks = ()
            if schema:
                modes = list(observe_pg.BLOCKING_MODES)
                rows = conn.execute(OUTSIDE_LOCKS, (schema, modes, OWN_APPLICATIONS)).fetchall()
                locks = tuple(observe_pg.Lock(*row) for row in rows)
        return NodeLook(started, now, settings=settings, locks=locks)
    except Exception as exc:  # noqa: BLE001
        return NodeLook(error=describe_error(exc))


def disturbed(before: ClusterState, look: ClusterState, within_s: float) -> str:
    """The nodes that restarted since `before` and at most `within_s` seconds ago (by the node's own clock), or
    that cannot be reached now; '' when none. Why bounded: a restart an hour ago excuses nothing failing now.
    A node that answers with an error, or whose settings changed, is not a disturbance: what the cluster does
    then is its behaviour, judged as such (`findings` names the cause)."""
    found = []
    for node, now in look.nodes.items():
        first = before.nodes.get(node)
        if not now.reached:
            found.append(f"Citus {node} does not answer ({now.error})")
        elif first is not None and first.answered and now.answered and now.started_at != first.started_at:
            ago = (now.now - now.started_at).total_seconds() if now.now and now.started_at else 0.0
            if ago <= within_s:
                found.append(f"Citus {node} restarted {ago:.1f} s ago (pg_postmaster_start_time)")
    return "; ".join(found)


def findings(before: ClusterState, after: ClusterState, during: Sequence[ClusterState] = ()) -> list[str]:
    """Per node: restarts (a newer start time at any look), silences (looks it could not be reached), looks it
    answered with an error, and settings changed during the run."""
    looks = [before, *during, after]
    found = []
    for node in before.nodes:
        seen = [(look, look.nodes[node]) for look in looks if node in look.nodes]
        found += _restarts(before, node, seen)
        found += _failed_looks(
            before, after, node, [(look, n) for look, n in seen[1:] if not n.reached], "did not answer"
        )
        answered_badly = [(look, n) for look, n in seen[1:] if n.reached and not n.answered]
        found += _failed_looks(before, after, node, answered_badly, "answered the observer with an error")
        found += _settings(node, seen)
        found += _outside_locks(before, node, seen)
    return found


def _outside_locks(before: ClusterState, node: str, seen: list[tuple[ClusterState, NodeLook]]) -> list[str]:
    """Each outside session's blocking lock (pid, relation, mode) once: when first seen and in how many looks."""
    firsts: dict[tuple[int, str, str], tuple[ClusterState, observe_pg.Lock]] = {}
    counts: dict[tuple[int, str, str], int] = {}
    for look, n in seen:
        for lock in n.locks:
            key = (lock.pid, lock.table, lock.mode)
            firsts.setdefault(key, (look, lock))
            counts[key] = counts.get(key, 0) + 1
    at_the_end = {(lk.pid, lk.table, lk.mode) for lk in seen[-1][1].locks} if seen else set()
    found = []
    for key, (look, lock) in firsts.items():
        still = " (still at the end of the run)" if key in at_the_end else ""
        found.append(f"on Citus {node}: {lock.describe()}: blocks the run's statements on it (seen "
                     f"{look.at - before.at:.1f} s into the run, in {counts[key]} looks){still}")  # fmt: skip
    return found


def _restarts(before: ClusterState, node: str, seen: list[tuple[ClusterState, NodeLook]]) -> list[str]:
    starts = sorted({n.started_at for _, n in seen if n.answered and n.started_at is not None})
    return [
        f"Citus {node} restarted at {start.astimezone(UTC):%H:%M:%S.%f}"[:-3]
        + f" UTC{_into(before, node, start)} (pg_postmaster_start_time)"
        for start in starts[1:]
    ]


def _failed_looks(
    before: ClusterState, after: ClusterState, node: str, failed: list[tuple[ClusterState, NodeLook]], what: str
) -> list[str]:
    if not failed:
        return []
    (first, look), (last, _) = failed[0], failed[-1]
    span = (
        f"{first.at - before.at:.1f} s" if first is last else f"{first.at - before.at:.1f}-{last.at - before.at:.1f} s"
    )
    still = " (still at the end of the run)" if last is after else ""
    return [f"Citus {node} {what} {len(failed)} looks at {span} into the run{still} ({look.error})"]


def _settings(node: str, seen: list[tuple[ClusterState, NodeLook]]) -> list[str]:
    """Settings changed on the node (kit.observe.postgres words), from the looks it answered."""
    answered = [observe_pg.PgState(look.at, settings=n.settings) for look, n in seen if n.answered]
    if len(answered) < 2:
        return []
    return [f"on Citus {node}: {text}" for text in observe_pg.settings_changed(answered[0], answered[1:])]


def _into(before: ClusterState, node: str, start: datetime) -> str:
    origin = before.nodes[node]
    if origin.now is None:
        return ""
    return f", {(start - origin.now).total_seconds():.1f} s into the run"


PRIMARY_WORKERS = (
    "SELECT nodename, nodeport FROM pg_dist_node WHERE noderole = 'primary' AND groupid <> 0 ORDER BY groupid"
)


def cluster_nodes(coordinator: psycopg.Connection) -> list[tuple[str, str, int]]:
    """("coordinator"|"worker", host, port) for the coordinator (as this session reaches it) and each primary
    worker pg_dist_node lists; the coordinator alone when the list cannot be read."""
    me = (coordinator.info.host, int(coordinator.info.port))
    try:
        rows = coordinator.execute(PRIMARY_WORKERS).fetchall()
    except psycopg.Error:
        rows = []
    return [("coordinator", *me)] + [("worker", str(h), int(p)) for h, p in rows if (str(h), int(p)) != me]


class NodeWatch:
    """One run's looks at the nodes: the first when built, one every `period_s`, a last one at `stop`."""

    def __init__(
        self, connect: NodeConnect, nodes: Sequence[tuple[str, str, int]], period_s: float = 1.0, schema: str = ""
    ):
        self._look = lambda: snapshot(connect, nodes, schema=schema)
        self.before = self._look()
        self._sampler = Sampler(self._look, period_s=period_s, name="citus-node-observer").start()
        self._found: str | None = None

    def disturbed(self, within_s: float) -> str:
        """A node that restarted in the last `within_s` seconds or does not answer now ('' when none)."""
        return disturbed(self.before, self._look(), within_s)

    def stop(self) -> str:
        """Every restart and silence of the run in one line ('' when none); the sampling ends (idempotent)."""
        if self._found is None:
            self._found = "; ".join(findings(self.before, self._look(), self._sampler.stop()))
        return self._found

    def annotate(self, invariants: Sequence[Invariant]) -> list[Invariant]:
        """Failed checks get "observed on Citus: ..." when a node restarted or went silent; others unchanged."""
        found = self.stop()
        if not found:
            return list(invariants)
        return [inv if inv.passed else replace(inv, detail=f"{inv.detail} — observed on Citus: {found}"[:2000])
                for inv in invariants]  # fmt: skip
