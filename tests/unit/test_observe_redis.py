"""The Redis observer's judgement on two snapshots: restarts, memory at the limit, error replies, telling commands,
config changes, slow commands; "unexplained" when nothing stands out. Pure: no server needed."""

from __future__ import annotations

from regression_pipelines.kit.observe.redis import UNEXPLAINED, RedisState, SlowEntry, explain, findings, parse_info

BASE = {
    "run_id": "a" * 40,
    "uptime_in_seconds": "500",
    "used_memory": "1000000",
    "maxmemory": "0",
    "maxmemory_policy": "noeviction",
    "evicted_keys": "0",
    "rejected_connections": "0",
    "blocked_clients": "0",
    "loading": "0",
    "role": "master",
    "errorstat_ERR": "count=3",
    "cmdstat_get": "calls=10,usec=5",
}
CONFIG = {"maxmemory": "0", "maxmemory-policy": "noeviction", "slowlog-log-slower-than": "10000"}


def _state(at: float = 0.0, config: dict | None = None, slow: tuple = (), **info: str) -> RedisState:
    return RedisState(at, {**BASE, **info}, {**CONFIG, **(config or {})}, slow)


def test_nothing_abnormal_is_unexplained() -> None:
    before, after = _state(0.0), _state(10.0, uptime_in_seconds="510", errorstat_ERR="count=40")
    assert findings(before, after) == []  # ERR is every client's catch-all: not a cause
    assert explain(before, after) == UNEXPLAINED


def test_memory_at_the_limit_names_limit_policy_and_evictions() -> None:
    before = _state(0.0)
    after = _state(
        5.0, config={"maxmemory": "1020000", "maxmemory-policy": "allkeys-random"}, uptime_in_seconds="505",
        used_memory="1010000", maxmemory="1020000", maxmemory_policy="allkeys-random", evicted_keys="12",
        errorstat_OOM="count=7", cmdstat_config_set="calls=2",
    )  # fmt: skip
    text = explain(before, after)
    assert "used_memory 1.01 MB at maxmemory 1.02 MB (10 kB headroom), maxmemory-policy allkeys-random" in text
    assert "12 keys evicted" in text and "7 OOM (used memory above maxmemory)" in text
    assert "maxmemory '0' -> '1020000'" in text


def test_a_restart_and_telling_commands_are_named() -> None:
    before = _state(0.0, cmdstat_flushall="calls=1")
    after = _state(30.0, run_id="b" * 40, uptime_in_seconds="4", **{"cmdstat_flushall": "calls=3"})
    text = explain(before, after)
    assert text.startswith("redis restarted during the run (run_id changed")
    assert "FLUSHALL x2" in text


def test_slow_commands_since_the_first_look_are_listed_without_arguments() -> None:
    old = SlowEntry(4, 0, 20_000, "keys")
    before = _state(0.0, slow=(old,))
    after = _state(5.0, slow=(SlowEntry(5, 0, 2_500_000, "eval"), old), uptime_in_seconds="505")
    assert explain(before, after) == "1 slow commands in SLOWLOG (> 10000 us): EVAL 2.50 s"


def test_no_answer_is_a_finding_in_itself() -> None:
    assert findings(_state(0.0), RedisState(1.0, error="ConnectionError: refused")) == [
        "redis did not answer INFO at the end of the run (ConnectionError: refused)"
    ]


def test_info_text_is_parsed_without_the_client_library() -> None:
    parsed = parse_info("# Server\r\nredis_version:7.0.15\r\nerrorstat_OOM:count=2\r\n\r\n")
    assert parsed == {"redis_version": "7.0.15", "errorstat_OOM": "count=2"}


def test_a_limit_lifted_before_the_end_is_still_named_from_the_watchers_samples() -> None:
    before = _state(0.0)
    limited = _state(
        1.0, config={"maxmemory": "1020000", "maxmemory-policy": "allkeys-random"},
        used_memory="1015000", maxmemory="1020000", maxmemory_policy="allkeys-random",
    )  # fmt: skip
    after = _state(3.0, uptime_in_seconds="503", evicted_keys="40")
    text = explain(before, after, [limited])
    assert "maxmemory 1.02 MB (5 kB headroom), maxmemory-policy allkeys-random (1.0 s into the run)" in text
    assert "40 keys evicted during the run (policy allkeys-random)" in text
    assert "maxmemory '0' -> '1020000' -> '0'" in text
