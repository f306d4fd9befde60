"""Generators replay from their seed, domains reach every class they declare, coverage decides refusals per
shape (so an always-refused shape cannot hide an allowed one)."""

from __future__ import annotations

import random

import pytest

from regression_pipelines.kit.generate import (
    BYTES,
    INT32,
    KEY_NAMES,
    TEXT,
    TIMESTAMP,
    Coverage,
    Shape,
    around,
    key_picker,
    pick_keys,
    sized,
)
from regression_pipelines.kit.generate.values import INT32_MAX, INT32_MIN


def test_a_seed_replays_the_same_values() -> None:
    first = [TEXT.drawn(random.Random(5)) for _ in range(3)]
    again = [TEXT.drawn(random.Random(5)) for _ in range(3)]
    assert first == again


def test_every_declared_class_is_reached_and_reported() -> None:
    coverage, rng = Coverage(), random.Random(1)
    for _ in range(500):
        TEXT.draw(rng, coverage)
    assert set(coverage.values["text"]) == set(TEXT.class_names)
    ints = dict(INT32.one_of_each(rng))
    assert ints["minimum"] in (INT32_MIN, INT32_MIN + 1) and ints["maximum"] in (INT32_MAX, INT32_MAX - 1)
    assert "nul" not in TEXT.without("nul").class_names
    assert TIMESTAMP.only("boundary").class_names == ["boundary"]
    with pytest.raises(ValueError, match="no value classes"):
        TEXT.only("emoji")


def test_refused_by_design_is_decided_per_shape() -> None:
    coverage = Coverage()
    always_refused = Shape("update_key_by_expression", "dml", frozenset({"0A000"}))
    allowed = Shape("update_key_from_other_table", "dml", frozenset())
    coverage.declare([always_refused, allowed, Shape("merge_multi_clause", "merge")])
    assert coverage.op(always_refused, "0A000") == "refused_by_design"
    assert coverage.op(allowed, "0A000") == "refused"  # the same SQLSTATE is not by design for this shape
    assert coverage.op(allowed, None) == "accepted"
    assert coverage.never_accepted() == ["update_key_by_expression"]
    assert coverage.unreached() == ["merge_multi_clause"]
    figures = {m.name: m.value for m in coverage.metrics()}
    assert figures["coverage.refused_unexpectedly"] == 1 and figures["coverage.shapes_exercised"] == 2
    assert "never accepted: update_key_by_expression" in coverage.describe()


def test_key_patterns() -> None:
    rng = random.Random(3)
    colliding = pick_keys(rng, list(range(100)), 50, "colliding")
    assert len(set(colliding)) <= 2
    skewed = pick_keys(rng, list(range(100)), 2000, "skewed")
    assert skewed.count(0) > skewed.count(50) * 5
    with pytest.raises(ValueError, match="use one of uniform, skewed, colliding"):
        pick_keys(rng, [1], 1, "zipf")


def test_byte_domains_and_thresholds() -> None:
    rng, coverage = random.Random(2), Coverage()
    for _ in range(300):
        BYTES.draw(rng, coverage)
        KEY_NAMES.draw(rng, coverage)
    assert set(coverage.values["bytes"]) == set(BYTES.class_names)
    assert set(coverage.values["key_names"]) == set(KEY_NAMES.class_names)
    assert around(44, 65_536) == (43, 44, 45, 65_535, 65_536, 65_537)
    assert {len(sized("edge", around(100)).draw(rng)) for _ in range(50)} == {99, 100, 101}


def test_key_picker_patterns_share_hot_keys_across_workers() -> None:
    first = key_picker(random.Random(1), 100, "colliding", hot=(7, 9))
    second = key_picker(random.Random(2), 100, "colliding", hot=(7, 9))
    picks = [first() for _ in range(500)] + [second() for _ in range(500)]
    assert sum(p in (7, 9) for p in picks) > 800
    skewed = key_picker(random.Random(3), 100, "skewed")
    draws = [skewed() for _ in range(3000)]
    assert draws.count(0) > draws.count(60) * 5
    with pytest.raises(ValueError, match="use one of uniform, skewed, colliding"):
        key_picker(random.Random(1), 10, "zipf")
