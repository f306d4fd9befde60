"""The median / min / max table every benchmark's medians script prints (NaN and missing figures left out)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence


def print_medians(samples: Mapping[str, Sequence[float]], names: Sequence[str], width: int = 12) -> None:
    """One row per name in `names` that has at least one finite value in `samples`."""
    label = max((len(name) for name in names), default=6)
    print(f"{'metric':<{label}} {'median':>{width}} {'min':>{width}} {'max':>{width}}")
    for name in names:
        values = [v for v in samples.get(name, []) if not math.isnan(v)]
        if values:
            print(
                f"{name:<{label}} {statistics.median(values):>{width}.4g} {min(values):>{width}.4g} "
                f"{max(values):>{width}.4g}"
            )
