"""The sample-size rule: a percentile from too few samples is neither judged nor baseline evidence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from regression_pipelines.detection import Direction, MetricPolicy, evaluate_latest
from regression_pipelines.detection.samples import min_samples

P99 = MetricPolicy(direction=Direction.LOWER_IS_BETTER, quantile=0.99)


def p99_history(runs: int, n: int, seed: int = 0) -> np.ndarray:
    """Each run's p99 of n log-normal draws, as a scenario computes it."""
    rng = np.random.default_rng(seed)
    return np.array([np.percentile(rng.lognormal(0.0, 0.6, n), 99) for _ in range(runs)])


@pytest.mark.parametrize(
    ("quantile", "needed"), [(0.99, 299), (0.95, 59), (0.5, 5), (0.01, 299), (0.999, 2995), (1.0, math.inf)]
)
def test_floor_is_where_the_sample_reaches_the_quantile(quantile: float, needed: float) -> None:
    """n >= log(0.05) / log(q): below it all n draws miss the true q-quantile more than 5 % of the time."""
    assert min_samples(quantile) == needed
    tail = max(quantile, 1 - quantile)
    if math.isfinite(needed):
        assert tail ** (needed - 1) > 0.05 >= tail**needed


def test_x5_jump_of_a_p99_from_10_samples_is_not_a_regression_but_from_5000_it_is() -> None:
    values = p99_history(60, 5000)
    values[-3:] *= 5  # the newest runs jump x5, nothing else changes
    few = evaluate_latest(values, P99, samples=[10] * len(values))
    assert few.status == "insufficient_data" and not few.is_alert
    assert few.reason == "p99 of 10 samples; a p99 needs >= 299"
    many = evaluate_latest(values, P99, samples=[5000] * len(values))
    assert many.status == "regression" and many.first_bad_index == 57
    assert evaluate_latest(values, P99).status == "regression"  # without counts: judged as before


def test_a_maximum_is_never_judged_from_samples() -> None:
    values = p99_history(40, 5000)
    values[-3:] *= 5
    verdict = evaluate_latest(values, MetricPolicy(quantile=1.0), samples=[100_000] * len(values))
    assert verdict.status == "insufficient_data" and "max of 100000 samples" in verdict.reason


def test_under_sampled_runs_leave_the_baseline_and_the_first_bad_run_is_placed_in_the_full_history() -> None:
    rng = np.random.default_rng(1)
    values = 100 * (1 + 0.02 * rng.standard_normal(80))
    samples = np.full(80, 5000)
    samples[::2] = 10  # every other run is under-sampled and wild (x1 to x5)
    values[::2] *= rng.uniform(1, 5, 40)
    values[-4:] = [115.0, 10.0, 116.0, 117.0]  # a 15 % step on the well-sampled runs
    samples[-4:] = [5000, 10, 5000, 5000]
    verdict = evaluate_latest(values, P99, samples=list(samples))
    assert verdict.status == "regression"
    assert verdict.first_bad_index == 76 and "since run #76" in verdict.recommendation
    assert evaluate_latest(values, P99).status != "regression"  # the wild runs hide the step when kept


def test_runs_without_a_count_are_kept_as_evidence() -> None:
    """History stored before metrics carried counts keeps its baseline."""
    values = p99_history(40, 5000)
    values[-3:] *= 1.5
    counts: list[int | None] = [None] * 37 + [5000] * 3
    assert evaluate_latest(values, P99, samples=counts).status == "regression"
    assert evaluate_latest(values, P99, samples=[None] * 40).status == "regression"


def test_counts_must_match_the_history() -> None:
    with pytest.raises(ValueError, match="one count"):
        evaluate_latest([1.0, 2.0, 3.0], P99, samples=[10, 10])
    with pytest.raises(ValueError, match=">= 0"):
        evaluate_latest([1.0, 2.0], P99, samples=[10, -1])


def test_static_bound_still_applies_to_an_under_sampled_run() -> None:
    """An SLO is the user's explicit promise about the figure itself: it is checked whatever the count."""
    policy = MetricPolicy(quantile=0.99, upper_bound=20.0)
    assert evaluate_latest([5.0, 6.0, 25.0], policy, samples=[10, 10, 10]).status == "slo_breach"


def test_quantile_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="quantile"):
        MetricPolicy(quantile=99.0)
