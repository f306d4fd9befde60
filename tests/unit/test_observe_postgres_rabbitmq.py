"""The PostgreSQL and RabbitMQ observers' judgement on looks at the servers (issue 17: causes are observed, for
the class, not one example): triggers, rules, constraints, grants, row-level security, dropped tables, outside
locks and writes, restarts; policies and operator policies, limiting queue arguments, unbound dead-letter
exchanges, alarms, uptime; "unexplained" when nothing stands out. Pure: no server needed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from regression_pipelines.kit.observe import postgres as pg
from regression_pipelines.kit.observe import rabbitmq as mq
from regression_pipelines.kit.observe.watch import Sampler

T0 = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
JOBS = "public.etl_x_jobs"
GRANTS = frozenset({("etl_x_worker", "INSERT"), ("etl_x_worker", "SELECT"), ("owner", "INSERT")})


def _table(**changes: object) -> pg.TableFacts:
    facts = {"name": JOBS, "constraints": {"etl_x_jobs_pkey": "PRIMARY KEY (job_id)"}, "grants": GRANTS,
             "rls": "enabled", "policies": {"tenant_isolation": "FOR ALL TO {public}"}}  # fmt: skip
    return pg.TableFacts(**{**facts, **changes})  # type: ignore[arg-type]


def _pg(at: float, started: datetime = T0, **changes: object) -> pg.PgState:
    return pg.PgState(at, started, T0 + timedelta(hours=1, seconds=at), tables={JOBS: _table(**changes)})


def test_postgres_nothing_abnormal_is_unexplained() -> None:
    before, after = _pg(0.0), _pg(5.0, writes=(200, 0, 0))
    assert pg.findings(before, after, [_pg(1.0)], unexpected_writes=("update", "delete")) == []
    assert pg.explain(before, after) == pg.UNEXPLAINED


def test_a_trigger_added_and_dropped_within_the_run_is_still_named() -> None:
    trigger = {"drop_rows": "CREATE TRIGGER drop_rows BEFORE INSERT ... — its function can RETURN NULL: ..."}
    during = [_pg(1.0), _pg(1.5, triggers=trigger), _pg(2.0)]
    found = pg.findings(_pg(0.0), _pg(5.0), during)
    assert found == [f"trigger drop_rows added on {JOBS} (seen 1.5 s into the run): {trigger['drop_rows']} (gone "
                     "again by the end of the run)"]  # fmt: skip


def test_a_rule_present_from_the_start_is_named() -> None:
    rule = {"nothing": "CREATE RULE nothing AS ON INSERT TO etl_x_jobs DO INSTEAD NOTHING"}
    found = pg.findings(_pg(0.0, rules=rule), _pg(5.0, rules=rule))
    assert found == [f"rule nothing on {JOBS} (already in force at the first look, when the run set up): "
                     f"{rule['nothing']}"]  # fmt: skip


def test_constraints_grants_rls_policies_and_drops_are_named() -> None:
    after = _pg(
        5.0,
        constraints={"etl_x_jobs_pkey": "PRIMARY KEY (job_id)", "no_low": "CHECK ((priority > 2)) NOT VALID"},
        grants=GRANTS - {("etl_x_worker", "INSERT")},
        rls="off",
        policies={},
    )
    found = " | ".join(pg.findings(_pg(0.0), after))
    assert f"constraint no_low added on {JOBS} (at the end of the run): CHECK ((priority > 2)) NOT VALID" in found
    assert f"INSERT on {JOBS} revoked from etl_x_worker" in found
    assert f"row-level security on {JOBS} changed: enabled -> off" in found
    assert f"row-level security policy tenant_isolation removed from {JOBS}" in found
    gone = pg.findings(_pg(0.0), pg.PgState(5.0, T0, tables={JOBS: pg.TableFacts(JOBS, exists=False)}))
    assert gone == [f"table {JOBS} was dropped (at the end of the run)"]


def test_a_restart_is_named_from_the_postmaster_start_time_and_the_silent_looks() -> None:
    restarted_at = T0 + timedelta(hours=1, seconds=2.5)
    silent = pg.PgState(2.0, error="OperationalError: connection refused", reached=False)
    found = pg.findings(_pg(0.0), _pg(5.0, started=restarted_at), [_pg(1.0), silent])
    assert found[0] == "PostgreSQL restarted at 00:00:02.500 UTC, 2.5 s into the run (pg_postmaster_start_time)"
    assert found[1].startswith("PostgreSQL did not answer 1 looks at 2.0 s into the run (OperationalError")
    assert pg.restarted(_pg(0.0), _pg(5.0, started=restarted_at)).startswith("PostgreSQL restarted at 00:00:02")
    assert pg.restarted(_pg(0.0), _pg(5.0)) == ""


def test_a_look_the_server_answered_with_an_error_is_not_called_silence() -> None:
    """Someone cancelling every active statement cancelled the observer's too: the server answered, abnormally."""
    cancelled = pg.PgState(1.5, error="QueryCanceled: canceling statement due to user request")
    found = pg.findings(_pg(0.0), _pg(5.0), [_pg(1.0), cancelled])
    assert found == ["PostgreSQL answered the observer with an error 1 looks at 1.5 s into the run (QueryCanceled: "
                     "canceling statement due to user request)"]  # fmt: skip
    assert pg.restarted(_pg(0.0), _pg(5.0), [cancelled]) == ""


def test_outside_locks_and_writes_are_named_but_readers_are_not() -> None:
    since = T0 + timedelta(minutes=59)
    locks = (
        pg.Lock(JOBS, "AccessExclusiveLock", True, 42, "psql", "postgres", "idle in transaction", since),
        pg.Lock(JOBS, "AccessShareLock", True, 43, "psql", "postgres", "active", None),
    )
    during = [pg.PgState(1.0, T0, T0, tables={JOBS: _table()}, locks=locks)]
    found = pg.findings(_pg(0.0), _pg(5.0, writes=(100, 2, 3)), during, unexpected_writes=("update", "delete"))
    assert found == [
        f"an outside session pid 42 (psql) as postgres holds AccessExclusiveLock on {JOBS} (idle in transaction, in "
        f"a transaction since 23:59:00 UTC): blocks the run's writes (seen 1.0 s into the run)",
        f"rows of {JOBS} 2 updated and 3 deleted by someone else (pg_stat_user_tables; the run makes no such change)",
    ]


def test_postgres_snapshot_never_raises() -> None:
    def refuse() -> object:
        raise OSError("connection refused")

    state = pg.snapshot(refuse, [JOBS])  # type: ignore[arg-type]
    assert not state.answered and "connection refused" in state.error


# -- RabbitMQ ---------------------------------------------------------------------------------------------------

QUEUES = ["etl.ab.extract", "etl.ab.dlq"]


def _ctl(policies: list[dict] | None = None, uptime: int = 500, queues: list[dict] | None = None,
         bindings: list[dict] | None = None, alarms: list | None = None) -> mq.Ctl:  # fmt: skip
    """A stand-in for rabbitmqctl answering with the JSON shapes RabbitMQ 3.10.8 prints (measured on the lab)."""
    listed = queues if queues is not None else [
        {"name": "etl.ab.extract", "arguments": [["x-queue-type", "longstr", "classic"],
         ["x-dead-letter-exchange", "longstr", "etl.ab.dlx"]], "policy": "", "messages": 0, "consumers": 1,
         "type": "classic"},
        {"name": "etl.ab.dlq", "arguments": [["x-queue-type", "longstr", "classic"]], "policy": "", "messages": 3,
         "consumers": 0, "type": "classic"},
    ]  # fmt: skip
    bound = bindings if bindings is not None else [
        {"source_name": "etl.ab.dlx", "destination_name": "etl.ab.dlq", "destination_kind": "queue",
         "routing_key": "etl.ab.dlq"},
        {"source_name": "", "destination_name": "etl.ab.dlq", "destination_kind": "queue", "routing_key": "etl.ab.dlq"},
        {"source_name": "other.x", "destination_name": "other.q", "destination_kind": "queue", "routing_key": ""},
    ]  # fmt: skip
    answers = {
        "status": {"uptime": uptime, "rabbitmq_version": "3.10.8", "alarms": alarms or []},
        "list_policies": policies or [],
        "list_operator_policies": [],
        "list_queues": listed,
        "list_bindings": bound,
        "list_exchanges": [{"name": "etl.ab.dlx"}, {"name": ""}],
    }

    def ctl(*args: str) -> str:
        return json.dumps(answers[args[0]])

    return ctl


def _look(**kwargs: object) -> mq.BrokerState:
    return mq.snapshot_ctl(_ctl(**kwargs), "/", QUEUES, ["etl.ab.dlx"])  # type: ignore[arg-type]


def test_rabbitmq_nothing_abnormal_is_unexplained() -> None:
    state = _look()
    assert state.answered and state.version == "3.10.8" and state.queues["etl.ab.dlq"].messages == 3
    assert state.bindings == (("etl.ab.dlx", "etl.ab.dlq", "queue", "etl.ab.dlq"),)  # the run's, not implicit
    assert mq.findings(state, state, [], {"etl.ab.dlx": "etl.ab.dlq"}, run_seconds=30.0) == []
    assert mq.explain(state, state) == mq.UNEXPLAINED


def test_a_policy_capping_the_dead_letter_queue_is_named_not_at_most_once() -> None:
    policy = {"vhost": "/", "name": "ops-cap", "pattern": r"\.dlq$", "apply-to": "queues",
              "definition": '{"max-length":1}', "priority": 0}  # fmt: skip
    state = _look(policies=[policy])
    found = mq.findings(state, state)
    assert found == [
        "policy 'ops-cap' (max-length=1; pattern '\\\\.dlq$', apply-to queues, priority 0) bounds or reroutes "
        "messages on etl.ab.dlq (the broker names it on none) (in force from the first look, when the run set up)"
    ]
    assert mq.AT_MOST_ONCE not in " ".join(found)


def test_policies_follow_rabbitmqs_matching_rules() -> None:
    quorum_only = mq.Policy("q", "/", "^etl", "quorum_queues", {"max-length": 1})
    assert not quorum_only.applies("etl.ab.dlq", "queue", "classic") and quorum_only.applies("etl.x", "queue", "quorum")
    assert not quorum_only.applies("etl.ab.dlx", "exchange")
    assert mq.Policy("e", "/", "dlx", "exchanges", {}).applies("etl.ab.dlx", "exchange")
    assert not mq.Policy("bad", "/", "(", "all", {}).applies("etl", "queue")  # a broken pattern matches nothing


def test_a_restart_an_alarm_an_unbound_dlx_and_a_deleted_queue_are_named() -> None:
    state = _look(uptime=4, bindings=[], alarms=[{"node": "rabbit@x", "resource": "memory", "type": "resource_limit"}],
                  queues=[{"name": "etl.ab.extract", "arguments": [["x-dead-letter-exchange", "longstr", "etl.ab.dlx"],
                           ["x-max-length", "signedint", 50], ["x-overflow", "longstr", "drop-head"]],
                           "type": "classic"}])  # fmt: skip
    found = mq.findings(state, state, [], {"etl.ab.dlx": "etl.ab.dlq"}, run_seconds=30.0)
    assert found[0] == "RabbitMQ restarted during the run (broker uptime 4 s, the run 30 s)"
    assert found[1] == mq.AT_MOST_ONCE  # observed: a restart, and queues that dead-letter at most once
    assert "broker memory alarm (node rabbit@x): publishers are blocked while it is in force (in force from the " \
           "first look, when the run set up)" in found  # fmt: skip
    assert "queue etl.ab.extract (classic) declared with x-max-length=50, x-overflow=drop-head" in found
    assert "queue etl.ab.dlq does not exist at the last look (deleted from outside, or lost in a restart)" in found
    assert found[-1].startswith("dead-letter exchange etl.ab.dlx has no binding (not even to etl.ab.dlq)")


def test_rabbitmq_snapshot_never_raises() -> None:
    def broken(*_args: str) -> str:
        raise RuntimeError("rabbitmqctl: nodedown")

    state = mq.snapshot_ctl(broken, "/", QUEUES)
    assert not state.answered and mq.findings(state, state, run_seconds=1.0) == [
        "the broker could not be asked (rabbitmqctl: RuntimeError: rabbitmqctl: nodedown)"
    ]


def test_the_sampler_keeps_looks_and_survives_a_raising_look() -> None:
    calls = []

    def look() -> int:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("observer bug")
        return len(calls)

    sampler = Sampler(look, period_s=0.01).start()
    while len(calls) < 4:
        pass
    samples = sampler.stop()
    assert 1 in samples and 2 not in samples and len(samples) >= 2
    assert sampler.stop() == samples or len(sampler.stop()) >= len(samples)


def test_a_table_whose_details_a_lock_hid_is_not_judged_changed() -> None:
    """A look that could not read a table's details (an outside lock: the lock itself is named) claims nothing."""
    hidden = pg.PgState(1.0, T0, T0, tables={JOBS: pg.TableFacts(JOBS, read=False)})
    assert pg.findings(_pg(0.0), _pg(5.0), [hidden]) == []


def test_a_server_setting_changed_mid_run_is_named_with_when_and_whether_it_came_back() -> None:
    base = {"max_connections": "100"}
    before = pg.PgState(0.0, T0, T0, settings=base)
    during = [pg.PgState(2.0, T0, T0, settings={**base, "default_transaction_read_only": "on"})]
    after = pg.PgState(5.0, T0, T0, settings=base)
    (finding,) = pg.findings(before, after, during)
    assert finding.startswith("server setting default_transaction_read_only = on (was its default; seen 2.0 s")
    assert finding.endswith("(back by the end of the run)")
    assert pg.findings(before, pg.PgState(5.0, T0, T0, settings=base)) == []


def test_rows_beyond_the_runs_own_writes_are_a_lower_bound_never_a_guess() -> None:
    own = pg.RowWrites(inserted=100, updated=20, deleted=5)
    assert pg.beyond_own((100, 20, 5), own) == pg.RowWrites()
    assert pg.beyond_own((100, 26, 9), own) == pg.RowWrites(0, 6, 4)  # an outside UPDATE and DELETE, exactly
    assert pg.beyond_own((103, 20, 5), own) == pg.RowWrites(3, 0, 0)  # an outside INSERT
    # an ON CONFLICT race counts one insert and one delete the client never saw: equal excesses are not claimed
    assert pg.beyond_own((102, 20, 7), own) == pg.RowWrites()
    assert pg.beyond_own((102, 20, 10), own) == pg.RowWrites(0, 0, 3)
    # statements of unknown outcome may have been counted as any one kind: taken off every kind
    assert pg.beyond_own((100, 26, 9), pg.RowWrites(100, 20, 5, uncertain=2)) == pg.RowWrites(0, 4, 2)
    # counts not yet flushed (fewer than the run's own) are never someone else's
    assert pg.beyond_own((50, 10, 1), own) == pg.RowWrites()
    assert pg.RowWrites(1, 2, 3).describe() == "1 inserted, 2 updated and 3 deleted"
    assert pg.RowWrites(0, 2, 0).describe() == "2 updated"


def test_own_writes_tally_across_threads() -> None:
    import threading

    own = pg.OwnWrites()
    threads = [threading.Thread(target=lambda: [own.add(updated=1, uncertain=1) for _ in range(500)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert own.total() == pg.RowWrites(0, 2000, 0, 2000)


def test_outside_rows_are_named_with_the_writer_once_and_not_across_a_restart() -> None:
    oid = 16500
    writer = pg.Lock(JOBS, "RowExclusiveLock", True, 77, "psql", "postgres", "idle in transaction", None, oid)
    during = [pg.PgState(1.0, T0, T0, tables={JOBS: _table(oid=oid)}, locks=(writer,))]
    own = {JOBS: pg.RowWrites(10, 0, 0)}
    found = pg.findings(_pg(0.0, oid=oid), _pg(5.0, oid=oid, writes=(10, 0, 3)), during, own_writes=own)
    assert found == [
        f"an outside writer changed rows of {JOBS}: 3 deleted beyond the run's own writes (pg_stat_user_tables "
        f"counted 10 inserted, 0 updated, 3 deleted since the run created it; the run's own statements 10 inserted, "
        f"0 updated, 0 deleted); "
        f"sessions seen writing it (RowExclusiveLock): pid 77 (psql) as postgres (idle in transaction, seen 1.0 s "
        f"into the run)"
    ]  # the writer's lock is not named a second time
    unseen = pg.findings(_pg(0.0, oid=oid), _pg(5.0, oid=oid, writes=(10, 0, 3)), own_writes=own)
    assert unseen[0].endswith("no outside session was seen holding a write lock on it in 2 looks")
    restarted = _pg(5.0, started=T0 + timedelta(hours=1, seconds=2), oid=oid, writes=(0, 0, 3))
    assert [f for f in pg.findings(_pg(0.0, oid=oid), restarted, own_writes=own) if "outside writer" in f] == []


def test_a_truncate_is_named_only_when_the_run_says_it_never_truncates() -> None:
    before, during = _pg(0.0, filenode=100, live=40), [_pg(1.0, filenode=100, live=40)]
    after = _pg(5.0, filenode=123, live=0)
    assert pg.findings(before, after, during) == []
    assert pg.findings(before, after, during, unexpected_writes=("truncate",)) == [
        f"table {JOBS} was emptied or rewritten by someone else (at the end of the run): its storage was replaced "
        "(relfilenode 100 -> 123), as TRUNCATE, VACUUM FULL, CLUSTER or a rewriting ALTER TABLE do, none of which "
        "the run does; pg_stat_user_tables counted 40 live rows in it at the look 1.0 s into the run"
    ]
