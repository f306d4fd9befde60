"""The PostgreSQL observer on the lab's server: a setting switched mid-run and back (the database made read-only
with ALTER SYSTEM + reload, a fault tried from outside that no area named) is in the findings, with when."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from regression_pipelines.kit.nemeses import lab as lab_admin
from regression_pipelines.kit.observe import postgres as pg
from regression_pipelines.lab.settings import LabSettings


def _admin(s: LabSettings, *statements: str) -> None:
    with lab_admin.pg_admin(s, s.postgres_db) as conn:
        conn.autocommit = True
        for statement in statements:
            conn.execute(statement)


def _after_reload(connect: pg.Connect, seen: Callable[[pg.PgState], bool]) -> pg.PgState:
    """A look once the reload took (pg_reload_conf signals the postmaster; it applies it a moment later)."""
    deadline = time.monotonic() + 10
    while not seen(look := pg.snapshot(connect, [])) and time.monotonic() < deadline:
        time.sleep(0.1)
    return look


def test_a_database_made_read_only_mid_run_is_observed(lab: LabSettings) -> None:
    connect = pg.connector(
        f"host=127.0.0.1 port={lab.postgres_port} dbname={lab.postgres_db} user={lab.postgres_user} "
        f"password={lab.postgres_password}"
    )
    before = pg.snapshot(connect, [])
    assert before.answered, before.error
    try:
        _admin(lab, "ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")
        during = _after_reload(connect, lambda look: "default_transaction_read_only" in look.settings)
    finally:
        _admin(lab, "ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()")
    after = _after_reload(connect, lambda look: "default_transaction_read_only" not in look.settings)
    text = pg.explain(before, after, [during])
    assert "server setting default_transaction_read_only = on" in text and "back by the end" in text, text
    assert pg.explain(before, pg.snapshot(connect, [])) == pg.UNEXPLAINED


def test_a_server_that_cuts_the_observer_off_answered_and_one_not_listening_did_not(lab: LabSettings) -> None:
    """Outside faults of two kinds: a session ended by the server once opened (as a cancel or a terminate from
    another session ends it) is the server answering abnormally; nothing listening is silence. Only the latter
    may read as an outage."""
    conninfo = (
        f"host=127.0.0.1 port={lab.postgres_port} dbname={lab.postgres_db} user={lab.postgres_user} "
        f"password={lab.postgres_password}"
    )
    connect = pg.connector(conninfo)
    before = pg.snapshot(connect, [])

    def cut_off() -> psycopg.Connection:
        conn = connect()
        _admin(lab, f"SELECT pg_terminate_backend({conn.info.backend_pid})")
        return conn

    cut = pg.snapshot(cut_off, [])
    assert cut.reached and not cut.answered, cut
    nobody = pg.snapshot(pg.connector(conninfo.replace(f"port={lab.postgres_port}", "port=1")), [])
    assert not nobody.reached, nobody
    found = pg.findings(before, pg.snapshot(connect, []), [cut, nobody])
    assert found[0].startswith("PostgreSQL did not answer 1 looks at "), found
    assert found[1].startswith("PostgreSQL answered the observer with an error 1 looks at "), found
