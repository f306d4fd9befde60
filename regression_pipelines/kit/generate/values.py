"""Adversarial value domains: values drawn by class (spaces, quotes, unicode, NULL-like text, extremes...).

Why classes: real bugs live at the edges of the input space (a partition value with a space, a key at INT32_MAX,
a timestamp at the epoch), and a run should say which edges it touched. A `Domain` draws a class, then a value of
that class, from a seeded `random.Random`, and tells the coverage account which class it used. Areas narrow a
domain to what their system accepts (`without("nul")` for PostgreSQL text) instead of walking one safe path.
"""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class ValueSink(Protocol):
    """Where a domain reports the class of each drawn value (kit.generate.coverage.Coverage)."""

    def value(self, domain: str, value_class: str) -> None: ...


@dataclass(frozen=True)
class ValueClass:
    name: str
    draw: Callable[[random.Random], Any]


@dataclass(frozen=True)
class Domain:
    """A named set of value classes; `draw` picks a class uniformly, then a value of it."""

    name: str
    classes: tuple[ValueClass, ...]

    def draw(self, rng: random.Random, sink: ValueSink | None = None) -> Any:
        value_class = rng.choice(self.classes)
        if sink is not None:
            sink.value(self.name, value_class.name)
        return value_class.draw(rng)

    def drawn(self, rng: random.Random) -> tuple[str, Any]:
        """(class name, value): for callers that keep the class with the value (e.g. in a replayable log)."""
        value_class = rng.choice(self.classes)
        return value_class.name, value_class.draw(rng)

    def without(self, *names: str) -> Domain:
        unknown = set(names) - set(self.class_names)
        if unknown:
            raise ValueError(f"{self.name}: no value classes {sorted(unknown)}; it has {self.class_names}")
        return Domain(self.name, tuple(c for c in self.classes if c.name not in names))

    def only(self, *names: str) -> Domain:
        unknown = set(names) - set(self.class_names)
        if unknown:
            raise ValueError(f"{self.name}: no value classes {sorted(unknown)}; it has {self.class_names}")
        return Domain(self.name, tuple(c for c in self.classes if c.name in names))

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def one_of_each(self, rng: random.Random) -> list[tuple[str, Any]]:
        """One value per class: the edges, in a fixed order, for workloads that must touch all of them."""
        return [(c.name, c.draw(rng)) for c in self.classes]


def _word(rng: random.Random, low: int = 1, high: int = 12) -> str:
    return "".join(rng.choices(string.ascii_lowercase + string.digits, k=rng.randint(low, high)))


_UNICODE = ("é", "ß", "Ω", "日本", "中文", "한국어", "Ж", "ع", "\u200b", "e\u0301", "👩‍💻", "🙂", "\u202e", "𝔘")
_QUOTES = ("'", '"', "`", "''", "\\'", '\\"')
_NULL_LIKE = ("NULL", "null", "None", "\\N", "nil", "NaN", "undefined", "")
_SQLISH = ("'; DROP TABLE x; --", "%", "_", "%_%", "a' OR '1'='1", "$1", "?", ":name", "/* */")
_CONTROL = ("\t", "\n", "\r\n", "\x1b")
_PATHISH = ("a/b", "..", ".", "a=b", "a b", "a#b", "a%20b", "a:b", "a\\b", "a?b", "a&b", "a+b")

TEXT = Domain(
    "text",
    (
        ValueClass("plain", _word),
        ValueClass("empty", lambda r: ""),
        ValueClass("spaces", lambda r: r.choice([" ", "  ", f" {_word(r)}", f"{_word(r)} ", f"{_word(r)} {_word(r)}"])),
        ValueClass("quotes", lambda r: f"{_word(r, 0, 4)}{r.choice(_QUOTES)}{_word(r, 0, 4)}"),
        ValueClass("unicode", lambda r: f"{_word(r, 0, 3)}{r.choice(_UNICODE)}{_word(r, 0, 3)}"),
        ValueClass("null_like", lambda r: r.choice(_NULL_LIKE[:-1])),
        ValueClass("long", lambda r: _word(r, 1, 1) * r.choice([256, 1024, 8193])),
        ValueClass("control", lambda r: f"{_word(r, 1, 3)}{r.choice(_CONTROL)}{_word(r, 1, 3)}"),
        ValueClass("sql_like", lambda r: r.choice(_SQLISH)),
        ValueClass("path_like", lambda r: r.choice(_PATHISH)),
        ValueClass("nul", lambda r: f"{_word(r, 1, 3)}\x00{_word(r, 1, 3)}"),  # PostgreSQL text refuses it
    ),
)


def _ints(low: int, high: int) -> tuple[ValueClass, ...]:
    return (
        ValueClass("small", lambda r: r.randint(-100, 100)),
        ValueClass("zero", lambda r: 0),
        ValueClass("negative", lambda r: r.randint(low // 2, -1)),
        ValueClass("minimum", lambda r: r.choice([low, low + 1])),
        ValueClass("maximum", lambda r: r.choice([high, high - 1])),
        ValueClass("power_of_two", lambda r: r.choice([1, -1]) * 2 ** r.randint(7, high.bit_length() - 2)),
        ValueClass("wide", lambda r: r.randint(low, high)),
    )


INT32 = Domain("int32", _ints(INT32_MIN, INT32_MAX))
INT64 = Domain("int64", _ints(INT64_MIN, INT64_MAX))

NUMERIC = Domain(
    "numeric",
    (
        ValueClass("money", lambda r: Decimal(r.randint(0, 10**7)) / 100),
        ValueClass("zero", lambda r: Decimal("0")),
        ValueClass("negative", lambda r: -Decimal(r.randint(1, 10**7)) / 100),
        ValueClass("tiny", lambda r: Decimal("0.000001") * r.randint(1, 9)),
        ValueClass("huge", lambda r: Decimal(10**15 - r.randint(0, 1000)) + Decimal("0.99")),
        ValueClass("many_digits", lambda r: Decimal(r.randint(0, 10**9)) / Decimal(10**9)),
    ),
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EDGES = (
    _EPOCH,
    _EPOCH - timedelta(microseconds=1),
    datetime(2038, 1, 19, 3, 14, 7, tzinfo=UTC),
    datetime(2000, 2, 29, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(2024, 3, 10, 2, 30, tzinfo=UTC),  # a US DST gap as local time
    datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC),  # the end of int64 nanoseconds (Arrow/pandas)
    datetime(1677, 9, 21, 0, 12, 43, 145225, tzinfo=UTC),  # its start
)

TIMESTAMP = Domain(
    "timestamp",
    (
        ValueClass("recent", lambda r: datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=r.randint(0, 3 * 10**7))),
        ValueClass("boundary", lambda r: r.choice(_EDGES)),
        ValueClass("microseconds", lambda r: _EPOCH + timedelta(microseconds=r.randint(1, 10**15))),
        ValueClass("far_past", lambda r: datetime(r.randint(1, 1900), 1, 1, tzinfo=UTC)),
        ValueClass("far_future", lambda r: datetime(r.randint(3000, 9999), 12, 31, tzinfo=UTC)),
    ),
)


def around(*limits: int) -> tuple[int, ...]:
    """Sizes on each side of each threshold (limit - 1, limit, limit + 1; never below 0), sorted."""
    return tuple(sorted({max(0, limit + d) for limit in limits for d in (-1, 0, 1)}))


def filler(rng: random.Random, size: int, compressible: bool) -> bytes:
    """`size` bytes: a repeated short pattern (compresses: PostgreSQL's TOAST takes its pglz path) or random
    bytes (does not compress: stored out of line as they are)."""
    if compressible:
        pattern = _word(rng, 1, 8).encode()
        return (pattern * (size // len(pattern) + 1))[:size]
    return rng.randbytes(size)


def sized(name: str, sizes: Sequence[int], compressible: bool | None = None) -> ValueClass:
    """A class of byte strings whose size is one of `sizes` (e.g. `around(65536)`): thresholds where buffers,
    encodings and storage switch. `compressible` None draws both kinds."""

    def draw(rng: random.Random) -> bytes:
        squeeze = rng.random() < 0.5 if compressible is None else compressible
        return filler(rng, rng.choice(list(sizes)), squeeze)

    return ValueClass(name, draw)


# Byte strings a wire protocol or a parser can trip on: RESP fragments, separators, NUL and CR LF.
_RESP_LIKE = (
    b"$5\r\nhello\r\n",
    b"-ERR not an error\r\n",
    b"+OK\r\n",
    b":42\r\n",
    b"*2\r\n$1\r\na\r\n$1\r\nb\r\n",
    b"$-1\r\n",
    b"_\r\n",
    b">3\r\n",
    b"\r\n",
    b"\r",
    b"\n",
)

_SEPARATORS = (b"|", b"||", b"|t|", b"0|v|", b":", b"{", b"}")
_GLOB = (b"*", b"?", b"[a-z]", b"\\*", b"[", b"]", b"^")

BYTES = Domain(
    "bytes",
    (
        ValueClass("empty", lambda r: b""),
        ValueClass("ascii", lambda r: _word(r).encode()),
        ValueClass("utf8", lambda r: f"{_word(r, 0, 3)}{r.choice(_UNICODE)}{_word(r, 0, 3)}".encode()),
        ValueClass("binary", lambda r: r.randbytes(r.randint(0, 48)) + r.choice([b"\x00", b"\xff\xfe", b"\x00\r\n"])),
        ValueClass("resp_like", lambda r: r.choice(_RESP_LIKE)),
        ValueClass("separators", lambda r: r.choice(_SEPARATORS) * r.randint(1, 4)),
        ValueClass("null_like", lambda r: r.choice(_NULL_LIKE[:-1]).encode()),
    ),
)

# Names a key-value store keys by: glob characters (SCAN MATCH), hash tags (cluster slots), separators.
KEY_NAMES = Domain(
    "key_names",
    (
        ValueClass("plain", lambda r: _word(r).encode()),
        ValueClass("numeric", lambda r: str(r.choice([0, 1, -1, 10**18, r.randint(0, 10**6)])).encode()),
        ValueClass("utf8", lambda r: f"{_word(r, 0, 3)}{r.choice(_UNICODE)}".encode()),
        ValueClass("binary", lambda r: r.randbytes(r.randint(1, 24)) + b"\x00\xff"),
        ValueClass("glob_like", lambda r: r.choice(_GLOB) + _word(r).encode()),
        ValueClass("hash_tag", lambda r: b"{" + _word(r, 0, 4).encode() + b"}" + _word(r).encode()),
        ValueClass("spaces", lambda r: r.choice([b" ", b"a b", b" a", b"a\t", b"a\r\nb"])),
        ValueClass("resp_like", lambda r: r.choice(_RESP_LIKE)),
    ),
)


def skewed_key(rng: random.Random, keys: Sequence[Any], skew: float = 1.2) -> Any:
    """A Zipf-like pick: the first keys are hot (contention, colliding updates)."""
    weights = [1.0 / (rank + 1) ** skew for rank in range(len(keys))]
    return rng.choices(list(keys), weights=weights, k=1)[0]


KEY_PATTERNS = ("uniform", "skewed", "colliding")


def pick_keys(rng: random.Random, keys: Sequence[Any], count: int, pattern: str) -> list[Any]:
    """`count` keys: uniform, skewed (hot keys) or colliding (the same few keys over and over)."""
    if not keys:
        return []
    if pattern == "uniform":
        return [rng.choice(list(keys)) for _ in range(count)]
    if pattern == "skewed":
        return [skewed_key(rng, keys) for _ in range(count)]
    if pattern == "colliding":
        few = rng.sample(list(keys), k=min(2, len(keys)))
        return [rng.choice(few) for _ in range(count)]
    raise ValueError(f"key pattern {pattern!r} is unknown; use one of {', '.join(KEY_PATTERNS)}")


def key_picker(
    rng: random.Random, count: int, pattern: str, hot: Sequence[int] = (), skew: float = 0.9
) -> Callable[[], int]:
    """A picker of key indexes in range(count), one call per operation (cheap: weights computed once).

    uniform; skewed (Zipf-like, the first indexes hot); colliding (nine picks in ten among `hot`, the same few
    indexes every worker of a run shares, so their operations really collide on them)."""
    if count <= 0:
        raise ValueError("key_picker: count must be >= 1")
    if pattern == "uniform":
        return lambda: rng.randrange(count)
    if pattern == "skewed":
        cum = list(itertools.accumulate(1.0 / (rank + 1) ** skew for rank in range(count)))
        population = range(count)
        return lambda: rng.choices(population, cum_weights=cum)[0]
    if pattern == "colliding":
        few = [k for k in hot if 0 <= k < count] or [0]
        return lambda: rng.choice(few) if rng.random() < 0.9 else rng.randrange(count)
    raise ValueError(f"key pattern {pattern!r} is unknown; use one of {', '.join(KEY_PATTERNS)}")
