"""The cache area's pure parts: entries as bytes, the plan drawn from a seed, the commit log and expiry ledger."""

from __future__ import annotations

from collections import Counter

import pytest

from assets.cache_coherence.config import CacheConfig
from assets.cache_coherence.generate import LARGE_CLASSES, digest, draw_plan
from assets.cache_coherence.oracle import CommitLog, ExpiryLedger, Version
from assets.cache_coherence.store import CacheEntry
from assets.cache_coherence.workload import Op


@pytest.mark.parametrize("value", [b"", b"a|b|c", b"\x00\r\n\xff", b"$5\r\nhello\r\n", b"x" * 70_000])
def test_cache_entries_round_trip_any_bytes(value: bytes) -> None:
    entry = CacheEntry(7, False, "ü|'".encode(), value)
    assert CacheEntry.parse(entry.encode()) == entry
    assert CacheEntry.parse(CacheEntry.tombstone_of(9).encode()).tombstone


def test_the_plan_replays_from_its_seed_and_spreads_every_class() -> None:
    config = CacheConfig(keys=100)
    plan, again = draw_plan(config, 42), draw_plan(config, 42)
    assert plan.describe() == again.describe() and plan.key_names == again.key_names
    assert plan.content(5, 3) == again.content(5, 3)  # a recorded write replays the same bytes
    assert len(set(plan.key_names)) == 100  # names start with the key id: unique whatever their class
    assert set(plan.value_classes) == set(plan.values.class_names)  # every class given to some key
    assert 1 <= sum(Counter(plan.value_classes)[c] for c in LARGE_CLASSES) <= 10
    assert max(len(plan.content(k, 1)[2]) for k in range(100)) <= config.value_max_bytes
    assert draw_plan(config, 43).describe() != plan.describe()
    assert "\x00" not in plan.content(1, 0)[1]  # the initial row's label is never refused


def test_a_stale_read_is_judged_against_writes_that_returned_before_it() -> None:
    log = CommitLog(keys=1)
    log.initial(0, b"d0")
    log.record(0, Version(5, False, b"d5", sent=10.0, committed=10.5))
    log.record(0, Version(9, False, b"d9", sent=11.0, committed=12.0))
    assert log.latest(0) == 9
    assert log.staleness(0, served_version=0, read_started=13.0) == pytest.approx(2.5)
    assert log.staleness(0, served_version=9, read_started=13.0) == 0.0


def test_values_are_judged_by_key_version_and_bytes() -> None:
    log = CommitLog(keys=2)
    log.initial(0, b"d0")
    log.record(0, Version(5, False, b"d5", 1.0, 2.0))
    log.check(0, 5, b"d5", "cache", 3.0)  # intact
    log.check(0, 5, b"other", "cache", 3.1)  # wrong bytes
    log.check(0, 7, b"d7", "db", 3.2)  # not logged yet: judged at the end
    log.record(0, Version(7, False, b"d7", 3.0, 3.5))
    log.check(1, 3, b"x", "cache", 3.3)  # never committed for key 1
    log.maybe(0, False, b"d-unknown", 4.0)
    log.check(0, 11, b"d-unknown", "db", 4.2)  # an unknown-outcome write that did commit: fine
    kinds = [(m.key, m.kind) for m in log.finish()]
    assert kinds == [(0, "wrong_bytes"), (1, "unknown_version")]
    assert log.checked == 5


def test_an_absent_row_needs_a_deletion_that_may_have_come_first() -> None:
    log = CommitLog(keys=1)
    log.initial(0, b"d0")
    log.absent(0, started=1.0, done=1.1, latest_at_start=0)  # nothing deleted it: a lost row
    log.record(0, Version(4, True, b"", sent=2.0, committed=2.5))
    log.absent(0, started=2.1, done=2.2, latest_at_start=0)  # the deletion was sent before the read ended
    log.absent(0, started=3.0, done=3.1, latest_at_start=4)  # the newest write was the deletion
    assert [(m.kind, m.at) for m in log.finish()] == [("missing_row", 1.0)]


def test_a_hit_after_every_possible_expiry_is_a_violation() -> None:
    ledger = ExpiryLedger()
    ledger.wrote(0, sent=1.0, done=1.001, ttl_ms=100)  # alive until 1.101 at the latest
    ledger.hit(0, sent=1.05, done=1.06)  # fine
    ledger.hit(0, sent=1.2, done=1.21)  # the entry should have gone at 1.101
    ledger.wrote(1, sent=1.0, done=1.001, ttl_ms=100)
    ledger.wrote(1, sent=1.15, done=1.3, ttl_ms=100)  # a refresh in flight while the hit ran
    ledger.hit(1, sent=1.2, done=1.21)
    ledger.wrote(2, sent=1.0, done=1.0, ttl_ms=0)  # no expiry meant
    ledger.hit(2, sent=99.0, done=99.1)
    assert [(key, started) for key, started, _ in ledger.violations()] == [(0, 1.2)]
    assert ledger.hits == 4


def test_recorded_operations_describe_themselves_in_words() -> None:
    plan = draw_plan(CacheConfig(keys=10), 1)
    text = Op("write", (3,), 7, 250).describe(plan)
    assert text.startswith("write 3 (") and "draw 7" in text and "ttl 250 ms" in text
    assert digest(b"a", b"bc") != digest(b"ab", b"c")  # lengths are framed


def test_shrinking_keeps_the_target_key_and_cuts_multi_key_reads_down() -> None:
    from assets.cache_coherence.replay import Target, shrink

    history = [
        Op("read", (1,), 0, 100),  # another key: dropped before ddmin
        Op("multi_read", (4, 2, 9), 0, 100),  # fills key 2
        Op("write", (2,), 5, 100),
        Op("read", (2,), 0, 100),
        Op("read", (2,), 0, 100),  # the stale read (target)
    ]

    class Replayer:
        def shows(self, check: str, key: int, ops: list[Op]) -> bool:
            kinds = [op.kind for op in ops if key in op.keys]
            return "multi_read" in kinds and "write" in kinds  # a fill, then a write that did not invalidate

    ops, reproduced, complete, _ = shrink(Target("stale", 2, 4), history, Replayer())  # type: ignore[arg-type]
    assert reproduced and complete
    assert [(op.kind, op.keys) for op in ops] == [("multi_read", (2,)), ("write", (2,)), ("read", (2,))]


def test_rows_the_runs_acknowledged_writes_cannot_explain_are_someone_elses() -> None:
    log = CommitLog(6)
    for key in range(6):
        log.initial(key, b"d0")
    log.record(1, Version(7, False, b"d7", 1.0, 1.1))
    log.record(2, Version(8, True, b"", 1.0, 1.1))  # the run deleted key 2
    log.record(3, Version(9, True, b"", 1.0, 1.1))
    log.record(3, Version(6, False, b"d6", 0.9, 1.2))  # an insert that waited on that deletion keeps its older version
    log.maybe(5, True, b"", 1.0)  # a deletion of unknown outcome
    assert log.unaccounted({0: 0, 1: 7, 3: 6, 4: 0}).describe("t") == ""  # all the run's own (5: maybe deleted)
    found = log.unaccounted({1: 7, 2: 10, 3: 6, 4: 12, 5: 0})  # key 0 gone; 2 re-inserted and 4 edited from outside
    assert (found.gone, found.foreign) == ([0], [2, 4])
    assert found.describe("t") == (
        "rows of t after the workload that the run's acknowledged writes cannot explain: 1 row gone that the run "
        "never deleted (e.g. keys 0); 2 rows at a version the run never wrote for that key (e.g. keys 2, 4)"
    )
