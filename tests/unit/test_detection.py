"""Detection behaviour: spikes ignored, steps caught (and placed), direction respected, deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.detection.evaluate import replay
from benchmarks.detection.suite import make_series
from regression_pipelines.detection import Direction, MetricPolicy, evaluate_latest, find_change_points

LOWER = MetricPolicy(direction=Direction.LOWER_IS_BETTER)
HIGHER = MetricPolicy(direction=Direction.HIGHER_IS_BETTER)


def noisy(n: int, cv: float = 0.02, seed: int = 0, level: float = 100.0) -> np.ndarray:
    return level * (1 + cv * np.random.default_rng(seed).standard_normal(n))


def with_step(n: int, at: int, pct: float, cv: float = 0.02, seed: int = 0) -> np.ndarray:
    x = noisy(n, cv, seed)
    x[at:] *= 1 + pct / 100
    return x


def first_flag(x: np.ndarray, policy: MetricPolicy, start: int, status: str = "regression") -> int | None:
    for k in range(start, len(x)):
        if evaluate_latest(x[: k + 1], policy).status == status:
            return k
    return None


def test_single_spike_is_not_a_regression_but_is_marked() -> None:
    x = noisy(80)
    x[-1] = 160.0  # a 30-sigma spike on the newest run
    verdict = evaluate_latest(x, LOWER)
    assert verdict.status == "ok"
    assert verdict.outlier
    assert "re-run" in verdict.recommendation


@pytest.mark.parametrize("seed", range(5))
def test_spikes_in_history_give_no_alarm_and_no_change_point(seed: int) -> None:
    x = noisy(200, seed=seed)
    x[[30, 90, 150]] *= 1.3
    assert find_change_points(x, LOWER) == []
    assert first_flag(x, LOWER, 20) is None


def test_short_excursion_that_reverts_is_no_change_point() -> None:
    x = noisy(200)
    x[[90, 91, 92]] *= 1.3  # three bad runs, then back to normal
    assert evaluate_latest(x[:92], LOWER).status == "regression"  # online it is real until it reverts
    assert evaluate_latest(x[:96], LOWER).status == "ok"
    assert find_change_points(x, LOWER) == []


@pytest.mark.parametrize("seed", range(5))
def test_a_regression_that_lasted_six_runs_and_was_fixed_gives_both_change_points(seed: int) -> None:
    """An epidemic change in the middle of a long history: one split cannot see it (found in the lab's
    cpu_burn history, benchmarks/detection/NOTES.md round 4); the stretch-against-the-rest search does."""
    x = noisy(48, seed=seed)
    x[32:38] *= 1.1  # +10 % at CV 2 %: without the stretch search 4 of these 5 seeds find nothing
    regression, improvement = find_change_points(x, LOWER)
    assert (regression.index, regression.kind) == (32, "regression")
    assert (improvement.index, improvement.kind) == (38, "improvement")


@pytest.mark.parametrize("seed", range(5))
def test_ten_percent_step_at_cv2_is_caught_within_three_runs(seed: int) -> None:
    x = with_step(150, 100, 10.0, seed=seed)
    flagged = first_flag(x, LOWER, 95)
    assert flagged is not None and 100 <= flagged <= 102


def test_step_is_placed_on_its_first_bad_run() -> None:
    x = with_step(200, 120, 10.0)
    [cp] = find_change_points(x, LOWER)
    assert cp.index == 120
    assert cp.kind == "regression"
    assert cp.change_pct == pytest.approx(10.0, abs=1.5)
    assert cp.p_value < 1e-6
    assert evaluate_latest(x[:131], LOWER).first_bad_index == 120


def test_direction_decides_regression_or_improvement() -> None:
    x = with_step(130, 100, 10.0)
    assert evaluate_latest(x[:103], LOWER).status == "regression"
    assert evaluate_latest(x[:103], HIGHER).status == "improvement"  # later it is accepted as the baseline
    assert find_change_points(x, HIGHER)[0].kind == "improvement"
    y = with_step(130, 100, -10.0)
    assert evaluate_latest(y[:103], HIGHER).status == "regression"


def test_regression_keeps_alerting_until_accepted() -> None:
    x = with_step(200, 100, 10.0)
    policy = MetricPolicy(direction=Direction.LOWER_IS_BETTER, accept_after_runs=30)
    assert evaluate_latest(x[:125], policy).status == "regression"  # 25 runs after: still the old baseline
    assert evaluate_latest(x[:180], policy).status == "ok"  # 80 runs after: accepted as the new normal


def test_min_change_pct_hides_small_real_changes() -> None:
    x = with_step(150, 100, 3.0, cv=0.005)
    assert evaluate_latest(x[:110], LOWER).status == "regression"
    relaxed = MetricPolicy(direction=Direction.LOWER_IS_BETTER, min_change_pct=5.0)
    assert evaluate_latest(x[:110], relaxed).status == "ok"
    assert find_change_points(x, relaxed) == []


def test_severity_grows_with_magnitude() -> None:
    small = evaluate_latest(with_step(130, 100, 4.0, cv=0.005)[:110], LOWER)
    large = evaluate_latest(with_step(130, 100, 60.0, cv=0.005)[:110], LOWER)
    order = ["none", "low", "medium", "high", "critical"]
    assert small.status == large.status == "regression"
    assert order.index(large.severity) > order.index(small.severity)
    assert large.severity == "critical"


def test_static_bound_breach_wins_even_without_history() -> None:
    policy = MetricPolicy(direction=Direction.LOWER_IS_BETTER, upper_bound=30.0)
    verdict = evaluate_latest([12.0, 31.0], policy)
    assert verdict.status == "slo_breach" and verdict.is_alert
    assert evaluate_latest([12.0, 29.0], policy).status == "insufficient_data"


def test_deterministic() -> None:
    x = make_series(3, 11, 300, with_steps=True).values
    assert find_change_points(x, LOWER) == find_change_points(x.copy(), LOWER)
    assert evaluate_latest(x, LOWER) == evaluate_latest(list(x), LOWER)


def test_benchmark_replay_is_the_product_code() -> None:
    series = make_series(7, 500, 120, with_steps=True)
    policy = MetricPolicy(direction=series.direction)
    replayed = replay(series.values, policy)
    for k in (9, 40, 75, 119):
        verdict = evaluate_latest(series.values[: k + 1], policy)
        assert replayed[k] == (verdict.status, verdict.first_bad_index)


def test_long_history_only_recent_runs_matter() -> None:
    x = noisy(2000)
    assert evaluate_latest(x, LOWER).status == "ok"


@pytest.mark.parametrize("bad", [[], [1.0, float("nan"), 2.0], [[1.0, 2.0]]])
def test_bad_history_is_rejected(bad: list) -> None:
    with pytest.raises(ValueError):
        evaluate_latest(bad, LOWER)


def test_bad_policy_is_rejected() -> None:
    with pytest.raises(ValueError):
        MetricPolicy(direction="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MetricPolicy(min_change_pct=-1)
    with pytest.raises(ValueError):
        MetricPolicy(lower_bound=5, upper_bound=1)


def test_zero_baseline_reports_a_bounded_percentage() -> None:
    verdict = evaluate_latest([0.0] * 20 + [1.0] * 2, LOWER)  # e.g. an error count leaving zero
    assert verdict.status == "regression"
    assert verdict.change_pct == 100.0


def test_constant_history_is_ok() -> None:
    assert evaluate_latest([5.0] * 30, LOWER).status == "ok"
    assert find_change_points([5.0] * 30, LOWER) == []


@pytest.mark.parametrize("r", [0.0, 0.3, 0.7])
def test_window_widening_is_the_exact_ar1_variance_of_a_window_sum(r: float) -> None:
    from regression_pipelines.detection.online import _widen_for_window

    for w in (3, 8, 10):
        cov = r ** np.abs(np.subtract.outer(np.arange(w), np.arange(w)))  # AR(1) correlation matrix
        assert _widen_for_window(r, w) == pytest.approx(np.sqrt(cov.sum() / w))
        assert _widen_for_window(r, w) <= np.sqrt((1 + r) / (1 - r)) + 1e-12  # never wider than asymptotic
