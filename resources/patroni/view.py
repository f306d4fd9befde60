"""Read-only observations of a Patroni cluster: member roles, replication, routing through HAProxy.

Shared by the health scenario and by the failover scenario (before, during and after a fault). Every
function returns what it saw, including errors as text, and never raises on a down member.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg

from resources.patroni.client import READ_ONLY_SQLSTATE, ClusterTarget, Member


@dataclass(frozen=True)
class MemberView:
    """One member as its REST API and its own SQL port describe it."""

    name: str
    rest_is_primary: bool  # GET /primary answered 200
    rest_role: str | None
    rest_state: str | None
    timeline: int | None
    in_recovery: bool | None  # pg_is_in_recovery() on the member's own port; None if unreachable
    error: str = ""
    dcs_last_seen: float | None = None  # epoch seconds Patroni last reached its DCS (GET /patroni), if it says

    @property
    def sql_says_primary(self) -> bool:
        return self.in_recovery is False


@dataclass(frozen=True)
class ReplicaView:
    """One row of pg_stat_replication on the leader."""

    name: str
    state: str
    lag_bytes: float
    lag_s: float


@dataclass(frozen=True)
class RouteView:
    """What a client saw on one HAProxy port: which member served it, and whether a write went through."""

    port: int
    member: str | None
    in_recovery: bool | None
    write_accepted: bool | None
    write_refused_read_only: bool
    latency_s: float
    error: str = ""


def view_member(target: ClusterTarget, member: Member) -> MemberView:
    status, _ = target.rest(member, "/primary")
    _, info = target.rest(member, "/patroni")
    info = info if isinstance(info, dict) else {}
    in_recovery: bool | None = None
    error = ""
    try:
        with target.connect(member.pg_port) as conn:
            in_recovery = bool(conn.execute("SELECT pg_is_in_recovery()").fetchone()[0])
    except psycopg.Error as exc:
        error = target.mask(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    timeline = info.get("timeline")
    seen = info.get("dcs_last_seen")
    return MemberView(
        name=member.name,
        rest_is_primary=status == 200,
        rest_role=info.get("role"),
        rest_state=info.get("state"),
        timeline=int(timeline) if timeline is not None else None,
        in_recovery=in_recovery,
        error=error,
        dcs_last_seen=float(seen) if isinstance(seen, int | float) else None,
    )


def view_members(target: ClusterTarget) -> list[MemberView]:
    with ThreadPoolExecutor(max_workers=len(target.members)) as pool:
        return list(pool.map(lambda m: view_member(target, m), target.members))


def replication_from(target: ClusterTarget, leader: Member) -> list[ReplicaView]:
    """pg_stat_replication on the leader; replay_lag is NULL when a replica is idle and caught up (0 s)."""
    sql = """
        SELECT application_name, state,
               coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::float8,
               coalesce(extract(epoch FROM replay_lag), 0)::float8
        FROM pg_stat_replication ORDER BY application_name"""
    with target.connect(leader.pg_port) as conn:
        return [ReplicaView(str(r[0]), str(r[1]), float(r[2]), float(r[3])) for r in conn.execute(sql)]


def probe_route(target: ClusterTarget, port: int) -> RouteView:
    """Connect through one HAProxy port, see who answers, and try a (temporary, self-dropping) write."""
    started = time.monotonic()
    member = None
    in_recovery = None
    try:
        with target.connect(port) as conn:
            server_port, in_recovery = conn.execute("SELECT inet_server_port(), pg_is_in_recovery()").fetchone()
            found = target.member_by_pg_port(int(server_port)) if server_port is not None else None
            member = found.name if found else f"port:{server_port}"
            try:
                with conn.transaction():
                    conn.execute("CREATE TEMP TABLE ha_route_probe (x int) ON COMMIT DROP")
                    conn.execute("INSERT INTO ha_route_probe VALUES (1)")
                accepted, refused = True, False
            except psycopg.Error as exc:
                accepted, refused = False, exc.sqlstate == READ_ONLY_SQLSTATE
        return RouteView(port, member, in_recovery, accepted, refused, time.monotonic() - started)
    except psycopg.Error as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return RouteView(port, member, in_recovery, None, False, time.monotonic() - started, target.mask(text))


def writable_members(target: ClusterTarget) -> list[str]:
    """Members that accept a write on their own port right now (split-brain probe, one round).

    Assigning a transaction id is the smallest real write capability test: a standby refuses it. The
    transaction is rolled back, so the probe adds no data of its own.
    """

    def can_write(member: Member) -> bool:
        try:
            with target.connect(member.pg_port, statement_timeout_ms=1500) as conn:
                if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return False  # asked first so standbys' logs are not flooded with refused writes
                with conn.transaction():
                    conn.execute("SELECT txid_current()")
                    raise _Rollback
        except _Rollback:
            return True
        except psycopg.Error:
            return False

    with ThreadPoolExecutor(max_workers=len(target.members)) as pool:
        results = list(pool.map(can_write, target.members))
    return [m.name for m, ok in zip(target.members, results, strict=True) if ok]


class _Rollback(Exception):
    """Raised inside a transaction block to roll it back on purpose."""


def cluster_facts(target: ClusterTarget) -> dict[str, str | int | float | bool]:
    """Versions and the replication mode, so baselines never mix synchronous and asynchronous runs."""
    for member in target.members:
        status, info = target.rest(member, "/patroni")
        if status != 200 or not isinstance(info, dict):
            continue
        _, config = target.rest(member, "/config")
        config = config if isinstance(config, dict) else {}
        return {
            "patroni_version": str(info.get("patroni", {}).get("version", "unknown")),
            "scope": str(info.get("patroni", {}).get("scope", "unknown")),
            "server_version": int(info.get("server_version", 0)),
            "synchronous_mode": bool(config.get("synchronous_mode", False)),
            "synchronous_mode_strict": bool(config.get("synchronous_mode_strict", False)),
        }
    return {"synchronous_mode": False, "patroni_version": "unknown"}
