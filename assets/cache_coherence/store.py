"""The system under test: a PostgreSQL table fronted by Redis, in the two classic caching modes.

Cache entries carry the row version. Fills and write-through updates are version-guarded (a Lua script
never replaces a newer entry), and invalidation leaves a short-lived tombstone holding the new version so
a slow reader cannot refill the cache with a value that was already overwritten. Faults are injected here,
on the real code path, so the oracle sees exactly what a buggy application would cause.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psycopg
import redis

from assets.cache_coherence.config import CacheConfig
from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.timed_calls import PreparedQuery, TimedRedis

# What a misbehaving server raises mid-workload (ResourceConfigError: a reconnect the server refused).
OPERATION_ERRORS = (psycopg.Error, redis.RedisError, ResourceConfigError, OSError)

# KEYS[1]=key ARGV: version, payload, ttl_ms (0 = no TTL). Stored as "version|kind|value", kind v=value t=tombstone.
_GUARDED_SET = """
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  if tonumber(string.sub(current, 1, sep - 1)) > tonumber(ARGV[1]) then return 0 end
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
"""


@dataclass(frozen=True)
class CacheEntry:
    version: int
    tombstone: bool
    value: str

    @classmethod
    def parse(cls, raw: str) -> CacheEntry:
        version, kind, value = raw.split("|", 2)
        return cls(int(version), kind == "t", value)

    def encode(self) -> str:
        return f"{self.version}|{'t' if self.tombstone else 'v'}|{self.value}"


class CachedTable:
    """One run's table and key space; unique names per run so concurrent runs never share state."""

    def __init__(self, run_tag: str, config: CacheConfig, cache: redis.Redis) -> None:
        self.table = f"cache_items_{run_tag}"
        self.prefix = f"rp:cache:{run_tag}:"
        self.config = config
        self.cache = cache
        self._guarded_set = cache.register_script(_GUARDED_SET)
        self._pending: list[threading.Timer] = []
        self._pending_lock = threading.Lock()
        self.deferred_errors: list[BaseException] = []  # failures of delayed cache updates, counted later

    # --- setup / teardown -------------------------------------------------------------------------------
    def create(self, conn: psycopg.Connection) -> None:
        conn.execute(f"CREATE TABLE {self.table} (id int PRIMARY KEY, version bigint NOT NULL, value text NOT NULL)")
        conn.execute(
            f"INSERT INTO {self.table} SELECT g, 1, 'v1' FROM generate_series(0, %s) g",
            (self.config.keys - 1,),
        )

    def drop(self, conn: psycopg.Connection) -> None:
        conn.execute(f"DROP TABLE IF EXISTS {self.table}")
        keys = list(self.cache.scan_iter(match=self.prefix + "*", count=1000))
        for start in range(0, len(keys), 500):
            self.cache.delete(*keys[start : start + 500])

    def cache_key(self, key: int) -> str:
        return f"{self.prefix}{key}"

    # --- cache primitives -------------------------------------------------------------------------------
    def _ttl_ms(self, requested_ms: int | None = None) -> int:
        """The TTL the application sets; the `no_ttl` fault makes it forget, as a real bug would."""
        if self.config.fault == "no_ttl":
            return 0
        return int(self.config.ttl_seconds * 1000) if requested_ms is None else requested_ms

    def cache_get(self, key: int) -> CacheEntry | None:
        raw = self.cache.get(self.cache_key(key))
        return CacheEntry.parse(raw) if raw is not None else None

    def cache_put(self, key: int, entry: CacheEntry, ttl_ms: int | None = None) -> None:
        self._guarded_set(keys=[self.cache_key(key)], args=[entry.version, entry.encode(), self._ttl_ms(ttl_ms)])

    def invalidate(self, key: int, new_version: int) -> None:
        """Cache-aside invalidation: a tombstone carrying the new version (so stale refills lose)."""
        fault = self.config.fault
        if fault == "skip_invalidation":
            return
        tombstone = CacheEntry(new_version, True, "")
        if fault == "delay_invalidation":
            self._later(self.cache_put, key, tombstone)
            return
        self.cache_put(key, tombstone)

    def after_write(self, mode: str, key: int, version: int, value: str) -> None:
        """What the application does to the cache once its UPDATE committed."""
        if mode == "cache_aside":
            self.invalidate(key, version)
            return
        if self.config.fault == "skip_invalidation":
            return
        entry = CacheEntry(version, False, value)
        if self.config.fault == "delay_invalidation":
            self._later(self.cache_put, key, entry)
            return
        self.cache_put(key, entry)

    def _later(self, action, *args) -> None:  # noqa: ANN001 - a bound method and its arguments
        def run() -> None:
            try:
                action(*args)
            except redis.RedisError as exc:
                self.deferred_errors.append(exc)

        timer = threading.Timer(self.config.delay_invalidation_ms / 1000, run)
        timer.daemon = True
        with self._pending_lock:
            self._pending.append(timer)
        timer.start()

    def wait_for_pending(self, timeout_s: float) -> None:
        with self._pending_lock:
            timers = list(self._pending)
        for timer in timers:
            timer.join(timeout_s)

    # --- database primitives ----------------------------------------------------------------------------
    def db_read_query(self, conn: psycopg.Connection) -> PreparedQuery:
        """The reader's point SELECT, prepared once per connection; `run(key)` gives ([(version, value)], ns)."""
        return PreparedQuery(conn, f"SELECT version, value FROM {self.table} WHERE id = $1")

    def packed_get(self, key: int) -> bytes:
        """The reader's GET of `key`, packed once for `TimedRedis.call`."""
        return TimedRedis.pack("GET", self.cache_key(key))

    def db_write(self, conn: psycopg.Connection, key: int) -> tuple[int, str, float]:
        """Bump the row's version; returns (version, value, monotonic time COMMIT returned)."""
        row = conn.execute(
            f"UPDATE {self.table} SET version = version + 1, value = 'v' || (version + 1) "
            "WHERE id = %s RETURNING version, value",
            (key,),
        ).fetchone()
        return int(row[0]), str(row[1]), time.monotonic()
