"""kit.observe.citus: which node restarted or went silent, from looks built by hand (pure logic)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from regression_pipelines.kit.observe.citus import ClusterState, NodeLook, disturbed, findings
from regression_pipelines.kit.observe.postgres import Lock

T0 = datetime(2026, 12, 7, 3, 0, 0, tzinfo=UTC)
WORKER = "worker 127.0.0.1:15437"
COORDINATOR = "coordinator 127.0.0.1:15436"


def _look(at: float, worker: NodeLook, started: datetime = T0 - timedelta(hours=1)) -> ClusterState:
    return ClusterState(at, {COORDINATOR: NodeLook(started, T0 + timedelta(seconds=at)), WORKER: worker})


def _down(why: str) -> NodeLook:
    return NodeLook(error=why, reached=False)


def _up(at: float, started: datetime = T0 - timedelta(hours=1), **settings: str) -> NodeLook:
    return NodeLook(started, T0 + timedelta(seconds=at), settings=settings)


def test_a_steady_cluster_shows_nothing() -> None:
    before, after = _look(0, _up(0)), _look(5, _up(5))
    assert findings(before, after, [_look(2, _up(2))]) == []
    assert disturbed(before, after, within_s=10) == ""


def test_a_restart_seen_only_during_the_run_is_named_with_when() -> None:
    restarted = T0 + timedelta(seconds=2)
    during = [_look(1, _down("connection refused")), _look(3, _up(3, restarted))]
    found = findings(_look(0, _up(0)), _look(9, _up(9, restarted)), during)
    assert any("restarted at 03:00:02.000 UTC, 2.0 s into the run" in f and WORKER in f for f in found), found
    assert any("did not answer 1 looks at 1.0 s" in f for f in found), found
    assert not any("still at the end" in f for f in found)


def test_a_node_silent_at_the_end_says_so() -> None:
    found = findings(_look(0, _up(0)), _look(4, _down("timeout")), [_look(2, _down("timeout"))])
    assert found == [f"Citus {WORKER} did not answer 2 looks at 2.0-4.0 s into the run (still at the end of the run) "
                     "(timeout)"]  # fmt: skip


def test_disturbed_is_bounded_by_the_nodes_own_clock() -> None:
    before = _look(0, _up(0))
    recent = _look(60, _up(60, T0 + timedelta(seconds=55)))  # restarted 5 s ago by the worker's clock
    assert "restarted 5.0 s ago" in disturbed(before, recent, within_s=10)
    assert disturbed(before, recent, within_s=3) == ""  # too long ago to explain an error now
    assert "does not answer (refused)" in disturbed(before, _look(1, _down("refused")), within_s=0)


def test_a_node_that_was_already_young_at_the_start_is_not_a_restart() -> None:
    young = T0 - timedelta(seconds=1)  # the lab had just started: same start time at every look
    assert disturbed(_look(0, _up(0, young)), _look(2, _up(2, young)), within_s=10) == ""


def test_a_node_that_answers_with_an_error_is_named_but_not_a_disturbance() -> None:
    """A server-wide statement_timeout of 3 ms makes the node answer with errors: what the cluster does then is
    its behaviour (judged), not an outage (excused)."""
    before = _look(0, _up(0))
    erring = _look(2, NodeLook(error="QueryCanceled: canceling statement due to statement timeout"))
    assert disturbed(before, erring, within_s=10) == ""
    found = findings(before, _look(3, _up(3)), [erring])
    assert found == [f"Citus {WORKER} answered the observer with an error 1 looks at 2.0 s into the run "
                     "(QueryCanceled: canceling statement due to statement timeout)"]  # fmt: skip


def test_a_setting_changed_on_a_node_mid_run_is_named_and_back_by_the_end() -> None:
    during = [_look(2, _up(2, port="15437", statement_timeout="3"))]
    found = findings(_look(0, _up(0, port="15437")), _look(4, _up(4, port="15437")), during)
    assert len(found) == 1 and found[0].startswith(f"on Citus {WORKER}: server setting statement_timeout = 3"), found
    assert "back by the end of the run" in found[0]


def test_an_outside_lock_on_a_shard_is_named_once_with_when_and_for_how_many_looks() -> None:
    """A DBA's LOCK on one shard stalls the statements touching it while answers still match: only a look shows it."""
    lock = Lock("s.accounts_102008", "AccessExclusiveLock", True, 4242, "psql", "postgres", "", None, 1)
    locked = replace(_up(2), locks=(lock,))
    found = findings(
        _look(0, _up(0)), _look(9, _up(9)), [_look(2, locked), _look(3, replace(locked)), _look(5, _up(5))]
    )
    assert found == [
        f"on Citus {WORKER}: an outside session pid 4242 (psql) as postgres holds AccessExclusiveLock on "
        "s.accounts_102008: blocks the run's statements on it (seen 2.0 s into the run, in 2 looks)"
    ]
    still = findings(_look(0, _up(0)), _look(9, locked))
    assert still[0].endswith("(seen 9.0 s into the run, in 1 looks) (still at the end of the run)"), still
