"""Generated workloads: seeded operation and value generators, a coverage account, and a shrinker.

Every area's workload draws its operation shapes and values from a seeded `random.Random` (the seed is in the
run's metadata, so a run replays exactly), with values from adversarial domains (`values`), records what it
reached in a `Coverage` account, and shrinks a failing run to the fewest operations that still fail (`shrink`,
Zeller's ddmin, replaying on fresh state).

Why not Hypothesis here: a run is one bounded execution against live services whose seed must reproduce it, and
whose shrinking must replay candidates on fresh schemas/tables/queues within a budget; Hypothesis's search and
shrinking want to own many fast example executions inside its test runner, and its strategies cannot be drawn
reproducibly outside it. Hypothesis stays the right tool for the property tests of the pure pieces.
"""

from regression_pipelines.kit.generate.coverage import (
    ACCEPTED,
    ERROR,
    REFUSED,
    REFUSED_BY_DESIGN,
    Coverage,
    Shape,
)
from regression_pipelines.kit.generate.shrink import Minimized, ddmin
from regression_pipelines.kit.generate.values import (
    BYTES,
    INT32,
    INT64,
    KEY_NAMES,
    NUMERIC,
    TEXT,
    TIMESTAMP,
    Domain,
    ValueClass,
    around,
    filler,
    key_picker,
    pick_keys,
    sized,
    skewed_key,
)

__all__ = [
    "ACCEPTED",
    "BYTES",
    "ERROR",
    "INT32",
    "INT64",
    "KEY_NAMES",
    "NUMERIC",
    "REFUSED",
    "REFUSED_BY_DESIGN",
    "TEXT",
    "TIMESTAMP",
    "Coverage",
    "Domain",
    "Minimized",
    "Shape",
    "ValueClass",
    "around",
    "ddmin",
    "filler",
    "key_picker",
    "pick_keys",
    "sized",
    "skewed_key",
]
