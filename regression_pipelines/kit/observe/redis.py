"""What a Redis server says about itself, before, during and after a run: the evidence a failure's detail names.

Why: a failed check that says "OutOfMemoryError" tells the user what the client saw; the server knows why
(`maxmemory` just above `used_memory`, the eviction policy, keys evicted, a restart, a FLUSHALL, a slow Lua
script). `snapshot` reads INFO, CONFIG GET and SLOWLOG over a fresh connection of its own (a run's pool may be
the broken thing) and never raises; `findings(before, after, during)` compares the looks and says what is
abnormal, in words; `explain` gives "unexplained" when it found nothing. A `Watcher` samples memory and the
memory settings during the run, so a limit set and lifted mid-run (a nemesis, an operator) is still named at the
end. Raw replies are parsed here (hiredis), not by redis-py's INFO callback, whose parsing changed between
versions. Only command names and figures are kept: never arguments (they may carry values or secrets).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from regression_pipelines.measure import describe_error
from regression_pipelines.timed_calls import TimedRedis

UNEXPLAINED = "unexplained (INFO, CONFIG and SLOWLOG show nothing abnormal)"
# Settings whose change during a run can explain errors, stale data or vanished keys.
WATCHED_CONFIG = (
    "maxmemory",
    "maxmemory-policy",
    "maxclients",
    "timeout",
    "busy-reply-threshold",
    "min-replicas-to-write",
    "stop-writes-on-bgsave-error",
    "appendonly",
    "save",
    "client-output-buffer-limit",
    "lazyfree-lazy-user-flush",
    "slowlog-log-slower-than",
)
# Commands that act on the whole server or on other clients: one of them during a run is a likely cause.
TELLING_COMMANDS = (
    "flushall",
    "flushdb",
    "swapdb",
    "debug",
    "client|kill",
    "client|pause",
    "client|no-evict",
    "config|set",
    "script|flush",
    "script|kill",
    "function|flush",
    "function|kill",
    "replicaof",
    "slaveof",
    "failover",
    "shutdown",
)
ERROR_MEANINGS = {
    "OOM": "used memory above maxmemory",
    "BUSY": "a script or function ran past busy-reply-threshold",
    "LOADING": "the dataset was loading after a restart",
    "READONLY": "writes sent to a replica",
    "MISCONF": "writes refused after a failed background save",
    "NOREPLICAS": "not enough replicas for min-replicas-to-write",
    "NOSCRIPT": "a script was not in the script cache (after a restart or SCRIPT FLUSH)",
    "MASTERDOWN": "the replica lost its primary",
}
NEAR_LIMIT_BYTES = 256 * 1024
# ERR is every client's catch-all (redis-py 5+ alone causes one per connection on Redis < 7.2: CLIENT SETINFO is
# unknown there): counting it would name noise as a cause.
GENERIC_ERRORS = ("ERR",)


@dataclass(frozen=True)
class SlowEntry:
    id: int
    at_unix_s: int
    duration_us: int
    command: str  # the first word only


@dataclass(frozen=True)
class RedisState:
    """One look at the server (or the reason there was none)."""

    at: float  # monotonic seconds
    info: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[str, str] = field(default_factory=dict)
    slowlog: tuple[SlowEntry, ...] = ()
    error: str = ""

    @property
    def answered(self) -> bool:
        return not self.error

    def number(self, key: str, default: float = 0.0) -> float:
        try:
            return float(self.info.get(key, default))
        except ValueError:
            return default


Connect = Callable[[], TimedRedis]


def connector(client: redis.Redis, timeout_s: float = 2.0) -> Connect:
    """Fresh connections to the server `client` talks to (its host, port, password, database)."""
    kwargs = client.connection_pool.connection_kwargs

    def connect() -> TimedRedis:
        return TimedRedis(
            kwargs.get("host", "localhost"),
            int(kwargs.get("port", 6379)),
            kwargs.get("password"),
            int(kwargs.get("db", 0)),
            timeout_s,
        )

    return connect


def snapshot(connect: Connect, clock: Callable[[], float] = time.monotonic) -> RedisState:
    """INFO everything, CONFIG GET of the watched settings, the newest SLOWLOG entries; never raises."""

    def read(conn: TimedRedis, at: float) -> RedisState:
        info = parse_info(_text(conn.call(TimedRedis.pack("INFO", "everything"))[0]))
        config: dict[str, str] = {}
        for name in WATCHED_CONFIG:
            config.update(_pairs(conn.call(TimedRedis.pack("CONFIG", "GET", name))[0]))
        slow = conn.call(TimedRedis.pack("SLOWLOG", "GET", 32))[0] or []
        return RedisState(at, info, config, tuple(_slow_entry(e) for e in slow if len(e) >= 4))

    return _look(connect, clock, read)


def sample(connect: Connect, clock: Callable[[], float] = time.monotonic) -> RedisState:
    """A light look for the watcher: INFO memory and the memory settings; never raises."""

    def read(conn: TimedRedis, at: float) -> RedisState:
        info = parse_info(_text(conn.call(TimedRedis.pack("INFO", "memory"))[0]))
        return RedisState(at, info, _pairs(conn.call(TimedRedis.pack("CONFIG", "GET", "maxmemory*"))[0]))

    return _look(connect, clock, read)


def _look(connect: Connect, clock: Callable[[], float], read: Callable[[TimedRedis, float], RedisState]) -> RedisState:
    """`read` over a fresh connection, closed afterwards; an error becomes a state that says why."""
    at = clock()
    conn = None
    try:
        conn = connect()
        return read(conn, at)
    except (redis.RedisError, OSError) as exc:
        return RedisState(at, error=describe_error(exc))
    finally:
        if conn is not None:
            conn.close()


def _pairs(reply: Any) -> dict[str, str]:
    items = reply or []
    return {_text(k): _text(v) for k, v in zip(items[::2], items[1::2], strict=False)}


class Watcher:
    """Samples the server every `period_s` in a thread until stopped (at most `keep` samples, evenly thinned)."""

    def __init__(self, look: Callable[[], RedisState], period_s: float = 0.5, keep: int = 400) -> None:
        self.look, self.period_s, self.keep = look, period_s, keep
        self.samples: list[RedisState] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="redis-watcher", daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> list[RedisState]:
        self._halt.set()
        self._thread.join(timeout=10)
        return list(self.samples)

    def _loop(self) -> None:
        while not self._halt.wait(self.period_s):
            self.samples.append(self.look())
            if len(self.samples) > self.keep:
                self.samples = self.samples[::2]


def parse_info(text: str) -> dict[str, str]:
    """`key:value` lines of an INFO reply as text (sections and blank lines dropped)."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            key, value = line.split(":", 1)
            found[key.strip()] = value.strip()
    return found


def subfield(value: str, name: str) -> float:
    """`calls=12,usec=3` -> 12.0 for name "calls" (0.0 when absent)."""
    for part in value.split(","):
        key, _, number = part.partition("=")
        if key == name:
            try:
                return float(number)
            except ValueError:
                return 0.0
    return 0.0


def findings(before: RedisState, after: RedisState, during: Sequence[RedisState] = ()) -> list[str]:
    """What changed or stands out between two looks at the server (and the watcher's samples in between), most
    telling first; [] when nothing."""
    if not after.answered:
        return [f"redis did not answer INFO at the end of the run ({after.error})"]
    looks = [s for s in (*during, after) if s.answered]
    found = _restart(before, after)
    if after.info.get("loading") == "1":
        found.append("redis was still loading its dataset (LOADING)")
    found += _memory(before, after, looks)
    found += _error_replies(before, after)
    found += _commands(before, after)
    found += _config_changes(before, [*looks])
    found += _slow_commands(before, after)
    found += _clients(before, after)
    found += _persistence_and_role(after)
    return found


def explain(before: RedisState, after: RedisState, during: Sequence[RedisState] = ()) -> str:
    """The findings in one line, or "unexplained" when the server shows nothing abnormal."""
    found = findings(before, after, during)
    return "; ".join(found) if found else UNEXPLAINED


def _restart(before: RedisState, after: RedisState) -> list[str]:
    if not before.answered:
        return [f"redis did not answer at the start of the run ({before.error})"]
    elapsed = after.at - before.at
    uptime = after.number("uptime_in_seconds", -1)
    if before.info.get("run_id") and before.info.get("run_id") != after.info.get("run_id"):
        return [f"redis restarted during the run (run_id changed; up {uptime:.0f} s of the run's {elapsed:.0f} s)"]
    if 0 <= uptime < elapsed - 1:
        return [f"redis restarted during the run (up {uptime:.0f} s of the run's {elapsed:.0f} s)"]
    return []


def _memory(before: RedisState, after: RedisState, looks: Sequence[RedisState]) -> list[str]:
    """The look closest to its memory limit (a limit lifted before the end still counts), evictions."""
    found = []
    limited = [s for s in looks if s.number("maxmemory") > 0]
    tightest = max(limited, key=lambda s: s.number("used_memory") / s.number("maxmemory"), default=None)
    if tightest is not None:
        limit, used = tightest.number("maxmemory"), tightest.number("used_memory")
        if used >= min(limit * 0.9, limit - NEAR_LIMIT_BYTES):
            when = "" if tightest is after else f" ({tightest.at - before.at:.1f} s into the run)"
            found.append(
                f"used_memory {used / 1e6:.2f} MB at maxmemory {limit / 1e6:.2f} MB "
                f"({max(0.0, limit - used) / 1e3:.0f} kB headroom), maxmemory-policy "
                f"{tightest.info.get('maxmemory_policy', '?')}{when}"
            )
    evicted = after.number("evicted_keys") - before.number("evicted_keys")
    if evicted > 0:
        policies = sorted({s.info.get("maxmemory_policy", "?") for s in looks if s.number("maxmemory") > 0})
        found.append(f"{evicted:.0f} keys evicted during the run (policy {', '.join(policies) or '?'})")
    evicted_clients = after.number("evicted_clients") - before.number("evicted_clients")
    if evicted_clients > 0:
        found.append(f"{evicted_clients:.0f} clients evicted (maxmemory-clients)")
    return found


def _error_replies(before: RedisState, after: RedisState) -> list[str]:
    parts = []
    for key, value in sorted(after.info.items()):
        if not key.startswith("errorstat_"):
            continue
        code = key.removeprefix("errorstat_")
        if code in GENERIC_ERRORS:
            continue
        grown = subfield(value, "count") - subfield(before.info.get(key, ""), "count")
        if grown > 0:
            meaning = ERROR_MEANINGS.get(code, "")
            parts.append(f"{grown:.0f} {code}" + (f" ({meaning})" if meaning else ""))
    return [f"the server answered errors during the run (all clients): {', '.join(parts)}"] if parts else []


def _commands(before: RedisState, after: RedisState) -> list[str]:
    parts = []
    for name in TELLING_COMMANDS:
        key = f"cmdstat_{name}"
        grown = subfield(after.info.get(key, ""), "calls") - subfield(before.info.get(key, ""), "calls")
        if grown > 0:
            parts.append(f"{name.upper()} x{grown:.0f}")
    return [f"commands run on the server during the run: {', '.join(parts)}"] if parts else []


def _config_changes(before: RedisState, looks: Sequence[RedisState]) -> list[str]:
    """Every watched setting that took another value during the run, with the values in the order seen."""
    changed = []
    for name in WATCHED_CONFIG:
        if name not in before.config:
            continue
        values = [before.config[name]]
        for look in looks:
            value = look.config.get(name)
            if value is not None and value != values[-1]:
                values.append(value)
        if len(values) > 1:
            changed.append(f"{name} " + " -> ".join(repr(v) for v in values))
    return [f"CONFIG changed during the run: {', '.join(changed)}"] if changed else []


def _slow_commands(before: RedisState, after: RedisState) -> list[str]:
    newest = max((e.id for e in before.slowlog), default=-1) if before.answered else -1
    slow = [e for e in after.slowlog if e.id > newest]
    if not slow:
        return []
    threshold = after.config.get("slowlog-log-slower-than", "")
    worst = sorted(slow, key=lambda e: -e.duration_us)[:3]
    listed = ", ".join(f"{e.command.upper()} {e.duration_us / 1e6:.2f} s" for e in worst)
    more = f" (+{len(slow) - 3} more)" if len(slow) > 3 else ""
    return [f"{len(slow)} slow commands in SLOWLOG{f' (> {threshold} us)' if threshold else ''}: {listed}{more}"]


def _clients(before: RedisState, after: RedisState) -> list[str]:
    found = []
    rejected = after.number("rejected_connections") - before.number("rejected_connections")
    if rejected > 0:
        found.append(f"{rejected:.0f} connections rejected (maxclients {after.config.get('maxclients', '?')})")
    blocked = after.number("blocked_clients")
    if blocked > 0:
        found.append(f"{blocked:.0f} clients blocked at the end of the run")
    return found


def _persistence_and_role(after: RedisState) -> list[str]:
    found = []
    if after.info.get("role") == "slave":
        found.append("the server is a replica (writes get READONLY)")
    if after.info.get("rdb_last_bgsave_status") == "err" and after.config.get("stop-writes-on-bgsave-error") == "yes":
        found.append("the last background save failed and stop-writes-on-bgsave-error is on (writes get MISCONF)")
    if after.info.get("aof_last_write_status") == "err":
        found.append("the last AOF write failed")
    return found


def _slow_entry(entry: Any) -> SlowEntry:
    args = entry[3] or [b"?"]
    return SlowEntry(int(entry[0]), int(entry[1]), int(entry[2]), _text(args[0]).lower())


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
