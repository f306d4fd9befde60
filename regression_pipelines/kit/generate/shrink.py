"""The smallest operation sequence that still shows a failure: Zeller's ddmin, bounded by a test budget.

Pure and shared by every area: `shows_mismatch(candidate)` replays a candidate (on fresh state: new tables, a
new Delta table, new queues) and says whether the failure is still there (None: out of time). The target
operation is always kept, only its predecessors are reduced. The whole sequence is replayed first: a failure
that does not come back on fresh state was not caused by the operations (e.g. a shard edited behind the
coordinator's back, a nemesis), and is reported as such.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Minimized(Generic[T]):
    steps: list[T]
    tests: int  # replays spent
    reproduced: bool  # the whole sequence showed the mismatch again on fresh tables
    complete: bool  # False when the budget ran out before the result was 1-minimal


def ddmin(
    prefix: Sequence[T], target: T, shows_mismatch: Callable[[list[T]], bool | None], budget: int
) -> Minimized[T]:
    """Shrink `prefix` so that `prefix' + [target]` still shows the mismatch; 1-minimal unless out of budget."""
    items = list(prefix)
    tests = 0

    def check(candidate: list[T]) -> bool | None:
        nonlocal tests
        if tests >= budget:
            return None
        tests += 1
        return shows_mismatch([*candidate, target])

    whole = check(items)
    if not whole:
        return Minimized([*items, target], tests, reproduced=False, complete=whole is not None)
    if not items:
        return Minimized([target], tests, True, True)
    alone = check([])
    if alone is None:
        return Minimized([*items, target], tests, True, False)
    if alone:
        return Minimized([target], tests, True, True)
    n = 2
    while len(items) >= 2:
        chunk = -(-len(items) // n)
        subsets = [items[i : i + chunk] for i in range(0, len(items), chunk)]
        reduced = False
        for i, subset in enumerate(subsets):
            complement = [x for j, other in enumerate(subsets) if j != i for x in other]
            tries = [(subset, 2)] + ([(complement, max(n - 1, 2))] if len(subsets) > 2 else [])
            for candidate, next_n in tries:
                verdict = check(candidate)
                if verdict is None:
                    return Minimized([*items, target], tests, True, False)
                if verdict:
                    items, n, reduced = candidate, next_n, True
                    break
            if reduced:
                break
        if not reduced:
            if n >= len(items):
                break
            n = min(2 * n, len(items))
    return Minimized([*items, target], tests, True, True)
