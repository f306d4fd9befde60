"""Small measurement helpers shared by scenarios (percentiles that behave on empty samples)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, or NaN when nothing was measured (so a missing figure is never a fake 0)."""
    if len(values) == 0:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=float), q))


def nines(failure_rate: float, samples: int) -> float:
    """Availability-style nines of 1 - rate; with zero failures, the most the sample size can vouch for."""
    if samples <= 0:
        return math.nan
    return -math.log10(max(failure_rate, 1.0 / samples))
