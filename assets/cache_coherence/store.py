"""The system under test: a PostgreSQL table fronted by Redis, in the two classic caching modes.

Cache entries carry the row version. Fills and write-through updates are version-guarded (a Lua script never
replaces a newer entry), and invalidation (after an update or a delete) leaves a tombstone holding the new version
so a slow reader cannot refill the cache with a value that was already overwritten. Versions come from one sequence
per table, taken under the row lock, so they grow with commit order per key, across deletes and re-inserts. Keys
and values are bytes end to end (binary, RESP-looking, past 64 KiB and 1 MiB). Faults are injected here, on the
real code path, so the oracle sees exactly what a buggy application would cause.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import psycopg
import redis

from assets.cache_coherence.config import CacheConfig
from assets.cache_coherence.generate import Plan, label_bytes
from assets.cache_coherence.oracle import ExpiryLedger
from regression_pipelines.errors import ResourceConfigError
from regression_pipelines.kit.observe.postgres import OwnWrites
from regression_pipelines.timed_calls import PreparedQuery, TimedRedis

# What a misbehaving server raises mid-workload (ResourceConfigError: a reconnect the server refused).
OPERATION_ERRORS = (psycopg.Error, redis.RedisError, ResourceConfigError, OSError)
LATENCY_LABEL, LATENCY_VALUE = "lat", b"v1"

# KEYS[1]=entry key, KEYS[2]=its version floor. ARGV: version, entry, ttl, unit (PX, or EX: the ttl_unit_mixup
# fault; ttl 0: no expiry), floor ttl (ms), and "write" (an invalidation or write-through: raises the floor) or
# "fill". The floor outlives short-lived entries, so a reader slower than an entry's TTL still cannot bring back
# an older version (until the floor's own TTL, the longest the application sets, has passed).
_GUARDED_SET = """
local version = tonumber(ARGV[1])
local floor = tonumber(redis.call('GET', KEYS[2]) or '-1')
if version < floor then return 0 end
local current = redis.call('GET', KEYS[1])
if current then
  local sep = string.find(current, '|', 1, true)
  if sep and tonumber(string.sub(current, 1, sep - 1)) > version then return 0 end
end
if ARGV[6] == 'write' then redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[5]) end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], ARGV[4], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
"""


def remove_prefix(client: redis.Redis, prefix: bytes) -> int:
    """Delete every key starting with `prefix` (which holds no glob characters); how many there were."""
    keys = list(client.scan_iter(match=prefix + b"*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    return len(keys)


def prefix_exists(client: redis.Redis, prefix: bytes) -> bool:
    return next(iter(client.scan_iter(match=prefix + b"*", count=1000)), None) is not None


@dataclass(frozen=True)
class CacheEntry:
    """`version|kind|label length|label value` as bytes; kind v (a value) or t (a tombstone)."""

    version: int
    tombstone: bool
    label: bytes
    value: bytes

    @classmethod
    def parse(cls, raw: bytes) -> CacheEntry:
        version, kind, length, rest = raw.split(b"|", 3)
        size = int(length)
        return cls(int(version), kind == b"t", rest[:size], rest[size:])

    def encode(self) -> bytes:
        head = b"%d|%s|%d|" % (self.version, b"t" if self.tombstone else b"v", len(self.label))
        return head + self.label + self.value

    @classmethod
    def tombstone_of(cls, version: int) -> CacheEntry:
        return cls(version, True, b"", b"")


class CachedTable:
    """One mode's table and key space; unique names per run so concurrent runs never share state.

    Ids 0..keys-1 are the workload's keys; `latency_keys` more rows (never written) hold small fixed values for the
    latency phase and the instruments, so their figures stay comparable whatever the run's values are."""

    def __init__(self, run_tag: str, config: CacheConfig, plan: Plan, cache: redis.Redis, latency_keys: int) -> None:
        self.table = f"cache_items_{run_tag}"
        self.sequence = f"{self.table}_version"
        self.prefix = f"rp:cache:{run_tag}:".encode()
        self.config = config
        self.plan = plan
        self.cache = cache
        self.keys = int(config.keys or 0)
        self.latency_ids = range(self.keys, self.keys + latency_keys)
        self._guarded_set = cache.register_script(_GUARDED_SET)
        self._pending: list[threading.Timer] = []
        self._pending_lock = threading.Lock()
        self.deferred_errors: list[BaseException] = []  # failures of delayed cache updates, counted later
        self.ledger: ExpiryLedger | None = None  # when set: every hit, write and refresh, for the expiry oracle
        self.own = OwnWrites()  # rows this table's statements wrote, so the observer can name anyone else's

    # --- setup / teardown -------------------------------------------------------------------------------
    def create(self, conn: psycopg.Connection, ids: Iterable[int] | None = None) -> None:
        """The table, its version sequence, the initial rows (draw 0 of each key; version 0) and latency rows."""
        conn.execute(
            f"CREATE TABLE {self.table} "
            "(id int PRIMARY KEY, version bigint NOT NULL, label text NOT NULL, value bytea NOT NULL)"
        )
        conn.execute(f"CREATE SEQUENCE {self.sequence} OWNED BY {self.table}.version")
        rows = 0
        with conn.cursor() as cur, cur.copy(f"COPY {self.table} (id, version, label, value) FROM STDIN") as copy:
            for key in range(self.keys) if ids is None else ids:
                _, label, value = self.plan.content(key, 0)
                copy.write_row((key, 0, label, value))
                rows += 1
            for key in self.latency_ids if ids is None else ():
                copy.write_row((key, 0, LATENCY_LABEL, LATENCY_VALUE))
                rows += 1
        self.own.add(inserted=rows)

    def drop(self, conn: psycopg.Connection) -> None:
        conn.execute(f"DROP TABLE IF EXISTS {self.table}")  # the sequence is owned by it

    def remove_keys(self) -> int:
        """Delete every key under the prefix (SCAN, then DEL in batches); how many there were."""
        return remove_prefix(self.cache, self.prefix)

    def table_exists(self, conn: psycopg.Connection) -> bool:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (self.table,)).fetchone()[0]

    def cache_key(self, key: int) -> bytes:
        if key >= self.keys:
            return self.prefix + b"lat:%d" % key
        return self.prefix + self.plan.key_names[key]

    def floor_key(self, key: int) -> bytes:
        """Where the newest written version of `key` is kept (key names start with digits: no clash)."""
        return self.prefix + b"f:%d" % key

    # --- cache primitives (bytes) -------------------------------------------------------------------------
    def get(self, key: int) -> CacheEntry | None:
        sent = time.monotonic()
        raw = self.cache.get(self.cache_key(key))
        if raw is None:
            return None
        if self.ledger is not None:
            self.ledger.hit(key, sent, time.monotonic())
        return CacheEntry.parse(raw)

    def get_many(self, keys: Sequence[int]) -> list[CacheEntry | None]:
        sent = time.monotonic()
        raws = self.cache.mget([self.cache_key(k) for k in keys])
        done = time.monotonic()
        if self.ledger is not None:
            for key, raw in zip(keys, raws, strict=True):
                if raw is not None:
                    self.ledger.hit(key, sent, done)
        return [CacheEntry.parse(raw) if raw is not None else None for raw in raws]

    def put(self, key: int, entry: CacheEntry, ttl_ms: int, write: bool = False) -> bool:
        """Version-guarded SET with the TTL the application means (`write`: an invalidation or write-through,
        which also raises the key's version floor); True when it replaced what was there."""
        sent = time.monotonic()
        try:
            applied = bool(self._guarded_set(keys=self._keys(key), args=self._args(entry, ttl_ms, write)))
        except OPERATION_ERRORS:
            self._wrote(key, sent, ttl_ms)  # it may have been applied before the error
            raise
        if applied:
            self._wrote(key, sent, ttl_ms)
        return applied

    def put_many(self, entries: Sequence[tuple[int, CacheEntry, int]]) -> list[bool]:
        """Several guarded SETs in one pipeline (multi-key reads fill their misses this way)."""
        sent = time.monotonic()
        pipe = self.cache.pipeline(transaction=False)
        for key, entry, ttl_ms in entries:
            self._guarded_set(keys=self._keys(key), args=self._args(entry, ttl_ms, False), client=pipe)
        try:
            applied = [bool(done) for done in pipe.execute()]
        except OPERATION_ERRORS:
            for key, _, ttl_ms in entries:
                self._wrote(key, sent, ttl_ms)
            raise
        for (key, _, ttl_ms), done in zip(entries, applied, strict=True):
            if done:
                self._wrote(key, sent, ttl_ms)
        return applied

    def refresh(self, key: int, ttl_ms: int) -> bool:
        """Sliding expiration after a hit (PEXPIRE ... GT: it only ever extends, never shortens a tombstone's or
        a longer-lived entry's TTL), racing the key's own expiry; True when it extended the TTL."""
        if self.config.fault == "no_ttl":
            return False  # an application that forgot TTLs does not refresh them either
        sent = time.monotonic()
        try:
            if self.config.fault == "ttl_unit_mixup":
                applied = bool(self.cache.expire(self.cache_key(key), ttl_ms, gt=True))
            else:
                applied = bool(self.cache.pexpire(self.cache_key(key), ttl_ms, gt=True))
        except OPERATION_ERRORS:
            self._wrote(key, sent, ttl_ms)
            raise
        if applied:
            self._wrote(key, sent, ttl_ms)
        return applied

    def _wrote(self, key: int, sent: float, ttl_ms: int) -> None:
        if self.ledger is not None:
            self.ledger.wrote(key, sent, time.monotonic(), ttl_ms)

    def _keys(self, key: int) -> list[bytes]:
        return [self.cache_key(key), self.floor_key(key)]

    def _args(self, entry: CacheEntry, ttl_ms: int, write: bool) -> list[bytes | int]:
        """The script's ARGV, faults applied: no TTL, or milliseconds given as seconds (EX)."""
        if not entry.tombstone and self.config.fault == "lossy_values":
            # a text-only serializer: bytes decoded as UTF-8 with replacement characters, as decode_responses does
            entry = CacheEntry(entry.version, False, entry.label, entry.value.decode("utf-8", "replace").encode())
        unit = b"EX" if self.config.fault == "ttl_unit_mixup" else b"PX"
        ttl = 0 if self.config.fault == "no_ttl" else ttl_ms
        return [entry.version, entry.encode(), ttl, unit, self.tombstone_ms(), b"write" if write else b"fill"]

    def tombstone_ms(self) -> int:
        """Tombstones live as long as the longest TTL: a reader slower than that could refill a stale value."""
        return int(self.config.ttl_seconds * 1000)

    def invalidate(self, key: int, new_version: int) -> bool:
        """Cache-aside invalidation: a tombstone carrying the new version (so stale refills lose)."""
        fault = self.config.fault
        if fault == "skip_invalidation":
            return False
        tombstone = CacheEntry.tombstone_of(new_version)
        if fault == "delay_invalidation":
            self._later(self.put, key, tombstone, self.tombstone_ms(), True)
            return False
        return self.put(key, tombstone, self.tombstone_ms(), write=True)

    def after_write(self, mode: str, key: int, version: int, label: str, value: bytes, ttl_ms: int) -> bool:
        """What the application does to the cache once its write committed; True when it changed the entry."""
        if mode == "cache_aside":
            return self.invalidate(key, version)
        if self.config.fault == "skip_invalidation":
            return False
        entry = CacheEntry(version, False, label_bytes(label), value)
        if self.config.fault == "delay_invalidation":
            self._later(self.put, key, entry, ttl_ms, True)
            return False
        return self.put(key, entry, ttl_ms, write=True)

    def after_delete(self, key: int, version: int) -> bool:
        """Both modes invalidate a deleted row (a tombstone with the deletion's version)."""
        return self.invalidate(key, version)

    def _later(self, action: Callable[..., object], *args: object) -> None:
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
    def db_read(self, conn: psycopg.Connection, key: int) -> tuple[int, str, bytes] | None:
        row = conn.execute(f"SELECT version, label, value FROM {self.table} WHERE id = %s", (key,)).fetchone()
        return (int(row[0]), str(row[1]), bytes(row[2])) if row is not None else None

    def db_read_many(self, conn: psycopg.Connection, keys: Sequence[int]) -> dict[int, tuple[int, str, bytes]]:
        rows = conn.execute(
            f"SELECT id, version, label, value FROM {self.table} WHERE id = ANY(%s)", (list(keys),)
        ).fetchall()
        return {int(r[0]): (int(r[1]), str(r[2]), bytes(r[3])) for r in rows}

    def db_write(self, conn: psycopg.Connection, key: int, label: str, value: bytes) -> int | None:
        """Insert or update the row with a new version (taken under the row lock); returns the version, or None
        when the server wrote nothing and said so only by returning no row (e.g. a trigger returning NULL).
        `xmax = 0` tells an inserted row from an updated one (ON CONFLICT locks the row it updates, and the new
        version keeps that lock's xmax), so `own` counts them as pg_stat_user_tables does."""
        try:
            row = conn.execute(
                f"INSERT INTO {self.table} (id, version, label, value) VALUES (%s, nextval('{self.sequence}'), %s, "
                f"%s) ON CONFLICT (id) DO UPDATE SET version = nextval('{self.sequence}'), label = EXCLUDED.label, "
                "value = EXCLUDED.value RETURNING version, xmax = 0",
                (key, label, value),
            ).fetchone()
        except OPERATION_ERRORS:
            self.own.add(uncertain=0 if "\x00" in label else 1)  # text refuses NUL before any row is written
            raise
        if row is None:
            return None
        self.own.add(inserted=int(bool(row[1])), updated=int(not row[1]))
        return int(row[0])

    def db_delete(self, conn: psycopg.Connection, key: int) -> int | None:
        """Delete the row; its deletion's version (None when there was no row)."""
        try:
            row = conn.execute(
                f"DELETE FROM {self.table} WHERE id = %s RETURNING nextval('{self.sequence}')", (key,)
            ).fetchone()
        except OPERATION_ERRORS:
            self.own.add(uncertain=1)
            raise
        if row is None:
            return None
        self.own.add(deleted=1)
        return int(row[0])

    def db_versions(self, conn: psycopg.Connection) -> dict[int, int]:
        return dict(conn.execute(f"SELECT id, version FROM {self.table} WHERE id < %s", (self.keys,)).fetchall())

    # --- timed reads (latency phase) --------------------------------------------------------------------
    def db_read_query(self, conn: psycopg.Connection) -> PreparedQuery:
        """The point SELECT the latency phase times, prepared once per connection."""
        return PreparedQuery(conn, f"SELECT version, label, value FROM {self.table} WHERE id = $1")

    def packed_get(self, key: int) -> bytes:
        return TimedRedis.pack("GET", self.cache_key(key))

    def latency_entry(self) -> CacheEntry:
        return CacheEntry(0, False, label_bytes(LATENCY_LABEL), LATENCY_VALUE)

    def calibration_script(self) -> str:
        """pgbench's script: the latency phase's point SELECT on this table's latency rows."""
        first, last = self.latency_ids[0], self.latency_ids[-1]
        return f"\\set id random({first}, {last})\nSELECT version, label, value FROM {self.table} WHERE id = :id;\n"
