"""What one run draws from its seed: the operation mix, the key pattern, each key's name and value class, the TTLs.

Why a plan: the workload searches instead of walking one path. Each run draws (and records) a different mix of
read-through, multi-key reads, TTL refreshes, writes and deletes, a key pattern (uniform, skewed, or a few hot
colliding keys), key names from the kit's adversarial domains (binary, glob characters, hash tags, RESP-looking,
past `key_max_bytes`), a value class per key (empty, binary, UTF-8, RESP-looking, sizes around PostgreSQL's TOAST
threshold and page, around 64 KiB socket reads, past `value_max_bytes`) and TTL classes down to sub-second. A key
keeps its classes for the run (every class is given to some key when there are enough keys), and every write draws
fresh content of its class from a seed of its own, so a recorded operation replays exactly.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from assets.cache_coherence.config import CacheConfig
from regression_pipelines.kit.generate import BYTES, KEY_NAMES, TEXT, Domain, Shape, ValueClass, around, sized
from regression_pipelines.kit.generate.values import KEY_PATTERNS, key_picker

# Operation shapes, for the coverage account (refused by design is decided per shape).
READ = Shape("read", "read")
MULTI_READ = Shape("multi_read", "read")
REFRESH = Shape("refresh_ttl", "ttl")
WRITE = Shape("write", "write", frozenset({"nul_in_text"}))  # PostgreSQL text holds no NUL: refused by design
DELETE = Shape("delete", "write")
FILL = Shape("fill", "cache_write")
INVALIDATE = Shape("invalidate", "cache_write")
WRITE_THROUGH = Shape("write_through_set", "cache_write")
SHAPES = (READ, MULTI_READ, REFRESH, WRITE, DELETE, FILL, INVALIDATE, WRITE_THROUGH)
READ_OPS = (READ.name, MULTI_READ.name, REFRESH.name)
WRITE_OPS = (WRITE.name, DELETE.name)
TTL_CLASSES = ("long", "one_second", "sub_second", "one_ms")
LABELS = TEXT  # the row's text column: PostgreSQL text edges (NUL included: refused by design)
LARGE_CLASSES = ("toast", "socket_read", "large")
TOAST_SIZES = around(2_000, 2_032, 8_192)  # TOAST's tuple threshold (~2 kB) and the 8 kB page
SOCKET_READ_SIZES = around(16_384, 65_536)  # hiredis/redis-py and TimedRedis read 64 KiB at a time
LARGE_KEY_SHARE = 0.05  # at most this share of keys get a large value class (the rest stay small)
LARGEST_KEYS = 8  # keys whose values are drawn up to value_max_bytes


def digest(label: bytes, value: bytes) -> bytes:
    """What a read is compared against: 16 bytes of BLAKE2b over the label and the value (lengths framed)."""
    h = hashlib.blake2b(digest_size=16)
    h.update(len(label).to_bytes(8, "big"))
    h.update(label)
    h.update(value)
    return h.digest()


def label_bytes(label: str) -> bytes:
    return label.encode("utf-8", "surrogatepass")


def value_domain(config: CacheConfig) -> Domain:
    """The value classes of this run: the kit's bytes classes plus sizes at thresholds, capped by the config."""
    cap = int(config.value_max_bytes or 0)

    def within(sizes: Sequence[int]) -> list[int]:
        return [s for s in sizes if s <= cap] or [cap]

    large = within((*around(cap - 1), 1_048_576, 1_048_577) if cap > 1_048_577 else around(cap - 1))
    return Domain(
        "value",
        (
            *BYTES.classes,
            sized("toast", within(TOAST_SIZES)),
            sized("socket_read", within(SOCKET_READ_SIZES)),
            sized("large", large),
        ),
    )


def key_name_domain(config: CacheConfig) -> Domain:
    long_sizes = sorted({min(int(config.key_max_bytes or 16), s) for s in (*around(1_024), 65_536, 65_537)})
    return Domain("key_name", (*KEY_NAMES.classes, sized("long", long_sizes, compressible=True)))


@dataclass(frozen=True)
class Plan:
    """A run's draws; `picker`, `value_for`, `label_for` and `ttl_ms` turn them into operations."""

    seed: int
    read_mix: dict[str, float]
    write_mix: dict[str, float]
    key_pattern: str
    hot_keys: tuple[int, ...]
    ttl_mix: dict[str, float]
    key_names: tuple[bytes, ...]  # per key id: the name after the run's prefix (unique: it starts with the id)
    key_classes: tuple[str, ...]
    value_classes: tuple[str, ...]
    ttl_seconds: float
    values: Domain = field(repr=False)

    # -- drawing operations --------------------------------------------------------------------------------
    def picker(self, rng: random.Random, keys: int) -> Callable[[], int]:
        return key_picker(rng, keys, self.key_pattern, self.hot_keys)

    def read_op(self, rng: random.Random) -> str:
        return _weighted(rng, self.read_mix)

    def write_op(self, rng: random.Random) -> str:
        return _weighted(rng, self.write_mix)

    def ttl(self, rng: random.Random) -> tuple[str, int]:
        """(class, milliseconds) of one cache write."""
        name = _weighted(rng, self.ttl_mix)
        if name == "long":
            return name, int(self.ttl_seconds * 1000)
        if name == "one_second":
            return name, 1000
        if name == "one_ms":
            return name, 1
        return name, rng.randint(20, 999)

    def content(self, key: int, draw: int) -> tuple[str, str, bytes]:
        """(label class, label, value) of write number `draw` of `key`; replayable. Draw 0 is the initial row,
        whose label is never NUL-bearing (PostgreSQL would refuse the table's seed)."""
        rng = random.Random(f"{self.seed}:{key}:{draw}")
        value_class = next(c for c in self.values.classes if c.name == self.value_classes[key])
        label_class, label = (LABELS.without("nul") if draw == 0 else LABELS).drawn(rng)
        return label_class, str(label), value_class.draw(rng)

    def describe(self) -> dict[str, object]:
        """The plan as plain data (metadata and the shrunk case)."""
        return {
            "seed": self.seed,
            "read_mix": {k: round(v, 3) for k, v in self.read_mix.items()},
            "write_mix": {k: round(v, 3) for k, v in self.write_mix.items()},
            "key_pattern": self.key_pattern,
            "hot_keys": list(self.hot_keys),
            "ttl_mix": {k: round(v, 3) for k, v in self.ttl_mix.items()},
        }


def draw_plan(config: CacheConfig, seed: int) -> Plan:
    """The run's plan from its seed (the same seed and settings give the same plan)."""
    rng = random.Random(seed)
    keys = int(config.keys or 1)
    read_mix = _mix(rng, {READ.name: (0.4, 1.0), MULTI_READ.name: (0.0, 0.4), REFRESH.name: (0.0, 0.3)})
    write_mix = _mix(rng, {WRITE.name: (0.6, 1.0), DELETE.name: (0.0, 0.25)})
    ttl_mix = _mix(rng, {"long": (0.4, 0.9), "one_second": (0.0, 0.2), "sub_second": (0.0, 0.3), "one_ms": (0, 0.05)})
    pattern = rng.choice(KEY_PATTERNS)
    hot = tuple(rng.sample(range(keys), k=min(3, keys)))
    names = key_name_domain(config)
    values = value_domain(config)
    key_classes = _spread(rng, names.class_names, keys)
    value_classes = _value_classes(rng, values, keys, hot)
    key_names = tuple(
        f"{key}:".encode() + _draw_class(names.classes, name, random.Random(f"{seed}:name:{key}"))
        for key, name in enumerate(key_classes)
    )
    return Plan(
        seed, read_mix, write_mix, pattern, hot, ttl_mix, key_names, key_classes, value_classes, config.ttl_seconds,
        values,
    )  # fmt: skip


def _value_classes(rng: random.Random, values: Domain, keys: int, hot: Sequence[int]) -> tuple[str, ...]:
    """Every small class spread over the keys; the large classes on at most LARGE_KEY_SHARE of them (at least
    one each when there are enough keys; the largest on at most LARGEST_KEYS), never on the hottest keys, so a
    run touches every class without moving megabytes on every write."""
    small = [c for c in values.class_names if c not in LARGE_CLASSES]
    classes = list(_spread(rng, small, keys))
    if keys < 2 * len(values.classes):
        return tuple(classes)
    cold = [k for k in range(min(10, keys // 10), keys) if k not in hot]
    slots = min(len(cold), max(len(LARGE_CLASSES), int(keys * LARGE_KEY_SHARE)))
    largest = 0
    for slot, key in enumerate(rng.sample(cold, k=slots)):
        name = LARGE_CLASSES[slot % len(LARGE_CLASSES)]
        if name == LARGE_CLASSES[-1]:
            if largest >= LARGEST_KEYS:
                name = LARGE_CLASSES[0]
            largest += 1
        classes[key] = name
    return tuple(classes)


def _spread(rng: random.Random, names: Sequence[str], count: int) -> tuple[str, ...]:
    """`count` class names: each name at least once when count allows, the rest drawn uniformly, shuffled."""
    chosen = list(names[:count]) + [rng.choice(list(names)) for _ in range(max(0, count - len(names)))]
    rng.shuffle(chosen)
    return tuple(chosen)


def _draw_class(classes: Sequence[ValueClass], name: str, rng: random.Random) -> bytes:
    drawn = next(c for c in classes if c.name == name).draw(rng)
    return drawn if isinstance(drawn, bytes) else str(drawn).encode()


def _mix(rng: random.Random, ranges: dict[str, tuple[float, float]]) -> dict[str, float]:
    raw = {name: rng.uniform(low, high) for name, (low, high) in ranges.items()}
    total = sum(raw.values()) or 1.0
    return {name: weight / total for name, weight in raw.items()}


def _weighted(rng: random.Random, mix: dict[str, float]) -> str:
    return rng.choices(list(mix), weights=list(mix.values()))[0]
