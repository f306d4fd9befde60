"""The timed clients against the lab's real Redis and PostgreSQL: they return what the library would, and a
server-side failure raises the library's own exception type (so areas count it as an operation error) and
leaves the connection marked unusable. No timing is asserted beyond "a positive duration"."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis

from regression_pipelines.lab.settings import LAB_HOST, LabSettings
from regression_pipelines.timed_calls import PreparedQuery, TimedRedis, unusable
from resources.postgres import PostgresResource


@pytest.fixture
def client(lab: LabSettings) -> Iterator[redis.Redis]:
    client = redis.Redis(host=LAB_HOST, port=lab.redis_port, db=3)
    yield client
    client.close()


@pytest.fixture
def conn(lab: LabSettings) -> Iterator[psycopg.Connection]:
    pg = PostgresResource(
        port=lab.postgres_port, user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
    )
    with pg.connect() as conn:
        yield conn


def test_redis_get_matches_redis_py_on_the_same_database(client: redis.Redis) -> None:
    key = f"rp:timed:{uuid.uuid4().hex[:8]}"
    client.set(key, "1|v|é", px=60_000)
    timed = TimedRedis.like(client)  # db=3 comes from the client's pool, as AUTH would
    try:
        reply, elapsed_ns = timed.call(TimedRedis.pack("GET", key))
        assert reply == client.get(key) and elapsed_ns > 0
        assert timed.call(TimedRedis.pack("GET", key + ":missing"))[0] is None
    finally:
        timed.close()
        client.delete(key)


def test_redis_error_reply_raises_response_error_and_the_connection_stays_usable(client: redis.Redis) -> None:
    key = f"rp:timed:{uuid.uuid4().hex[:8]}"
    client.rpush(key, "x")
    timed = TimedRedis.like(client)
    try:
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            timed.call(TimedRedis.pack("GET", key))
        assert not timed.broken and timed.call(TimedRedis.pack("PING"))[0] == b"PONG"
    finally:
        timed.close()
        client.delete(key)


def test_redis_connection_killed_by_the_server_is_a_connection_error(client: redis.Redis) -> None:
    timed = TimedRedis.like(client)
    try:
        timed.call(TimedRedis.pack("CLIENT", "SETNAME", "rp-timed-victim"))
        victim = next(c for c in client.client_list() if c.get("name") == "rp-timed-victim")
        client.client_kill_filter(_id=victim["id"])
        with pytest.raises(redis.ConnectionError):
            timed.call(TimedRedis.pack("GET", "anything"))
        assert timed.broken
    finally:
        timed.close()


def test_redis_nothing_listening_is_a_connection_error() -> None:
    with pytest.raises(redis.ConnectionError, match="cannot connect"):
        TimedRedis(LAB_HOST, 1)


def test_prepared_query_returns_text_rows_and_raises_the_sqlstate_class(conn: psycopg.Connection) -> None:
    query = PreparedQuery(conn, "SELECT $1::int * 2, NULL::text, 1 / $1::int")
    rows, elapsed_ns = query.run(3)
    assert rows == [("6", None, "0")] and elapsed_ns > 0
    with pytest.raises(psycopg.errors.DivisionByZero):
        query.run(0)
    assert not unusable(conn) and query.run(1)[0] == [("2", None, "1")]


def test_prepared_query_on_a_terminated_backend_fails_and_marks_the_connection(
    conn: psycopg.Connection, lab: LabSettings
) -> None:
    query = PreparedQuery(conn, "SELECT 1")
    pid = conn.info.backend_pid
    with psycopg.connect(conn.info.dsn, password=lab.postgres_password, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(psycopg.Error):
        query.run()
    assert unusable(conn)
