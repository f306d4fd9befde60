"""Waiting for a cluster to be whole again, and timing the old leader's rejoin and catch-up."""

from __future__ import annotations

import time
from dataclasses import dataclass

import psycopg

from resources.patroni.client import ClusterTarget
from resources.patroni.view import replication_from, view_members


@dataclass(frozen=True)
class ClusterState:
    leader: str | None  # the single leader REST and SQL agree on, else None
    streaming: tuple[str, ...]
    timeline: int | None

    def healthy(self, member_count: int) -> bool:
        return self.leader is not None and len(self.streaming) == member_count - 1


def cluster_state(target: ClusterTarget) -> ClusterState:
    members = view_members(target)
    rest = sorted(m.name for m in members if m.rest_is_primary)
    sql = sorted(m.name for m in members if m.sql_says_primary)
    leader = rest[0] if len(rest) == 1 and rest == sql else None
    streaming: tuple[str, ...] = ()
    if leader is not None:
        try:
            rows = replication_from(target, target.member(leader))
            streaming = tuple(sorted(r.name for r in rows if r.state == "streaming"))
        except psycopg.Error:
            streaming = ()
    timeline = next((m.timeline for m in members if m.name == leader), None)
    return ClusterState(leader, streaming, timeline)


def wait_healthy(target: ClusterTarget, timeout_s: float, poll_s: float = 0.3) -> ClusterState | None:
    """The first healthy state (one leader, every other member streaming) within the timeout, else None."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = cluster_state(target)
        if state.healthy(len(target.members)):
            return state
        if time.monotonic() >= deadline:
            return None
        time.sleep(poll_s)


@dataclass(frozen=True)
class Recovery:
    healthy_at: float | None  # epoch seconds
    state: ClusterState | None
    rejoined_at: float | None  # old leader streaming from the new leader
    caught_up_at: float | None  # old leader replayed everything the leader had written at rejoin


def wait_recovery(target: ClusterTarget, old_leader: str, timeout_s: float, poll_s: float = 0.2) -> Recovery:
    """Poll until healthy; when the leader changed, also time the old leader's rejoin and catch-up."""
    deadline = time.monotonic() + timeout_s
    rejoined_at = caught_up_at = None
    target_lsn: str | None = None
    while time.monotonic() < deadline:
        now = time.time()
        state = cluster_state(target)
        if state.leader is not None and state.leader != old_leader and old_leader in state.streaming:
            leader = target.member(state.leader)
            try:
                with target.connect(leader.pg_port) as conn:
                    if target_lsn is None:
                        rejoined_at = now
                        target_lsn = str(conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0])
                    row = conn.execute(
                        "SELECT pg_wal_lsn_diff(replay_lsn, %s::pg_lsn) >= 0 FROM pg_stat_replication "
                        "WHERE application_name = %s",
                        (target_lsn, old_leader),
                    ).fetchone()
                    if row and row[0] and caught_up_at is None:
                        caught_up_at = time.time()
            except psycopg.Error:
                pass
        if state.healthy(len(target.members)) and (state.leader == old_leader or caught_up_at is not None):
            return Recovery(time.time(), state, rejoined_at, caught_up_at)
        time.sleep(poll_s)
    return Recovery(None, None, rejoined_at, caught_up_at)


def reinit_stranded_replicas(target: ClusterTarget, timeout_s: float = 90.0) -> list[str]:
    """Lab repair, never part of a measurement: reinitialize running replicas that cannot stream.

    Measured on Patroni 3.0.2 (etcd3): a leader paused past ttl resumes and can overwrite the leader key a
    replica had just taken (fixed upstream in patroni PR #2689, 3.0.3). The new leader is demoted on a newer
    timeline, pg_rewind reports "no rewind required", and it never streams again; POST /reinitialize fixes it.
    """
    state = cluster_state(target)
    if state.leader is None or state.healthy(len(target.members)):
        return []
    stranded = [m.name for m in target.members if m.name != state.leader and m.name not in state.streaming]
    for name in stranded:
        target.rest(target.member(name), "/reinitialize", "POST", {"force": True}, timeout_s=10.0)
    wait_healthy(target, timeout_s)
    return stranded


def wait_sync_standby(target: ClusterTarget, timeout_s: float, poll_s: float = 0.5) -> bool:
    """In synchronous_mode, healthy also means Patroni has named a synchronous standby (GET /cluster)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for member in target.members:
            status, cluster = target.rest(member, "/cluster")
            if status == 200 and isinstance(cluster, dict):
                if any(m.get("role") == "sync_standby" for m in cluster.get("members", [])):
                    return True
                break
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
