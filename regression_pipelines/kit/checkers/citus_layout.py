"""Pure judgements over Citus metadata, shared by the Citus areas: hash-range coverage, colocation, reference
placement, row placement.

Citus maps a row to the shard whose [min, max] holds worker_hash(distribution value); for a hash-distributed
table the ranges must be sorted, contiguous, without gap or overlap, and cover the whole int32 range (splits
make them non-uniform, so uniformity is not required).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class ShardRange:
    shard_id: int
    low: int
    high: int


def coverage_problems(table: str, ranges: Sequence[ShardRange]) -> list[str]:
    """Every way the table's ranges fail to tile [INT32_MIN, INT32_MAX]; empty when they tile it exactly."""
    if not ranges:
        return [f"{table}: no shards"]
    ordered = sorted(ranges, key=lambda r: (r.low, r.high))
    problems = [f"{table}: shard {r.shard_id} range [{r.low}, {r.high}] is empty" for r in ordered if r.low > r.high]
    if ordered[0].low != INT32_MIN:
        problems.append(f"{table}: gap [{INT32_MIN}, {ordered[0].low - 1}] before shard {ordered[0].shard_id}")
    for prev, nxt in zip(ordered, ordered[1:], strict=False):
        if nxt.low > prev.high + 1:
            problems.append(
                f"{table}: gap [{prev.high + 1}, {nxt.low - 1}] between shards {prev.shard_id} and {nxt.shard_id}"
            )
        elif nxt.low <= prev.high:
            problems.append(
                f"{table}: shards {prev.shard_id} and {nxt.shard_id} overlap on [{nxt.low}, {min(prev.high, nxt.high)}]"
            )
    if ordered[-1].high != INT32_MAX:
        problems.append(f"{table}: gap [{ordered[-1].high + 1}, {INT32_MAX}] after shard {ordered[-1].shard_id}")
    return problems


# One shard as colocation sees it: its range and the node group holding its placement(s).
Slot = tuple[int, int, tuple[int, ...]]


def colocation_problems(groups: Mapping[int, Mapping[str, Sequence[Slot]]]) -> list[str]:
    """Tables of one colocation group must have identical ranges and identical placements, shard by shard."""
    problems = []
    for colocation_id, tables in sorted(groups.items()):
        names = sorted(tables)
        first = names[0]
        reference = sorted(tables[first])
        for name in names[1:]:
            other = sorted(tables[name])
            if len(other) != len(reference):
                problems.append(
                    f"colocation {colocation_id}: {name} has {len(other)} shards, {first} has {len(reference)}"
                )
                continue
            for (lo_a, hi_a, at_a), (lo_b, hi_b, at_b) in zip(reference, other, strict=True):
                if (lo_a, hi_a) != (lo_b, hi_b):
                    problems.append(
                        f"colocation {colocation_id}: {name} range [{lo_b}, {hi_b}] vs {first} [{lo_a}, {hi_a}]"
                    )
                elif sorted(at_a) != sorted(at_b):
                    problems.append(
                        f"colocation {colocation_id}: range [{lo_a}, {hi_a}] of {name} on groups {sorted(at_b)}, "
                        f"of {first} on {sorted(at_a)}"
                    )
    return problems


def reference_problems(placements: Mapping[str, set[int]], node_groups: set[int]) -> list[str]:
    """A reference table needs a placement on every node group (coordinator included when it is a node)."""
    return [
        f"reference table {table} has no placement on node group(s) {sorted(node_groups - groups)}"
        for table, groups in sorted(placements.items())
        if node_groups - groups
    ]


def outside(hashes: Sequence[int], low: int, high: int) -> int:
    """How many rows' hashes fall outside the shard's range (rows living in the wrong shard)."""
    return sum(1 for h in hashes if not low <= h <= high)


def skew(counts: Sequence[int]) -> float:
    """Largest shard's rows over the mean (1.0 is perfectly even); NaN without rows."""
    total = sum(counts)
    if not counts or total == 0:
        return float("nan")
    return max(counts) / (total / len(counts))
