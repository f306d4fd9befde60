"""The seeded synthetic suite: realistic benchmark noise with known, injected steps.

Every series is generated from its own generator seeded by (seed, index), so any single series can be
regenerated without the others and the suite is identical on every machine.

Noise: Gaussian or log-normal at CV 1/2/5/10 %; every series also has 1 % spikes of 5-10 sigma (either
sign) and one of: nothing else, bimodal runs (30 % of runs in a slower mode 2.5 component-sigma away),
AR(1) with rho = 0.3, or a slow drift of 1 sigma over the whole series. The overall noise sd stays CV x level.
Steps (step series only): 4 per series, ~60 runs apart, of +-2/5/10/20 % (10 % twice as likely, since it
is what the goals are about), multiplicative on the level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from regression_pipelines.results import Direction

CVS = (0.01, 0.02, 0.05, 0.10)
STEP_SIZES = (0.02, 0.05, 0.10, 0.20)
STEP_WEIGHTS = (0.2, 0.2, 0.4, 0.2)
FEATURES = ("plain", "bimodal", "ar1", "drift")
FAMILIES = ("gaussian", "lognormal")
SPIKE_RATE = 0.01
AR_RHO = 0.3
STEPS_PER_SERIES = 4


@dataclass(frozen=True)
class Step:
    index: int  # first run at the new level
    pct: float  # signed relative change of the level, in percent
    sigmas: float  # |pct| / CV: the step in noise units
    kind: str  # "regression" | "improvement" given the series direction


@dataclass
class Series:
    name: str
    values: NDArray[np.float64]
    direction: Direction
    cv: float
    family: str
    feature: str
    steps: list[Step] = field(default_factory=list)


def _innovations(rng: np.random.Generator, n: int, feature: str) -> NDArray[np.float64]:
    """Unit-variance, zero-mean noise with the feature's shape."""
    eta = rng.standard_normal(n)
    if feature == "ar1":
        e = np.empty(n)
        e[0] = eta[0]
        k = np.sqrt(1 - AR_RHO**2)
        for t in range(1, n):
            e[t] = AR_RHO * e[t - 1] + k * eta[t]
        return e
    if feature == "bimodal":
        p, sep = 0.3, 2.5  # separation in component sigmas; total variance = c^2 (1 + p(1-p) sep^2)
        c = 1.0 / np.sqrt(1 + p * (1 - p) * sep**2)
        slow = rng.random(n) < p
        return c * eta + c * sep * (slow - p)
    return eta


def make_series(seed: int, index: int, runs: int, with_steps: bool) -> Series:
    rng = np.random.default_rng([seed, index])
    cv = CVS[index % len(CVS)]
    feature = FEATURES[(index // len(CVS)) % len(FEATURES)]
    family = FAMILIES[(index // (len(CVS) * len(FEATURES))) % len(FAMILIES)]
    direction = Direction.LOWER_IS_BETTER if rng.random() < 0.5 else Direction.HIGHER_IS_BETTER
    base = float(10 ** rng.uniform(1, 3))
    level = np.full(runs, base)
    steps: list[Step] = []
    if with_steps:
        spacing = runs // (STEPS_PER_SERIES + 1)
        for k in range(1, STEPS_PER_SERIES + 1):
            at = k * spacing + int(rng.integers(-5, 6))
            size = float(rng.choice(STEP_SIZES, p=STEP_WEIGHTS)) * (1 if rng.random() < 0.5 else -1)
            level[at:] *= 1 + size
            worse = (size > 0) == (direction is Direction.LOWER_IS_BETTER)
            steps.append(Step(at, size * 100, abs(size) / cv, "regression" if worse else "improvement"))
    if feature == "drift":
        level = level * (1 + cv * np.sign(rng.random() - 0.5) * np.linspace(0, 1, runs))
    e = _innovations(rng, runs, feature)
    spikes = rng.random(runs) < SPIKE_RATE
    e = e + spikes * rng.uniform(5, 10, runs) * np.where(rng.random(runs) < 0.5, -1, 1)
    if family == "lognormal":
        s = np.sqrt(np.log(1 + cv**2))
        values = level * np.exp(s * e - s * s / 2)
    else:
        values = level * (1 + cv * e)
    kind = "steps" if with_steps else "flat"
    return Series(
        f"{kind}-{index:05d}-{family}-{feature}-cv{int(cv * 100)}", values, direction, cv, family, feature, steps
    )


def make_suite(seed: int, n_series: int, runs: int, flat_share: float = 0.4) -> list[Series]:
    """The first `flat_share` of the series are change-free (false alarms), the rest carry steps."""
    n_flat = int(round(n_series * flat_share))
    return [make_series(seed, i, runs, with_steps=i >= n_flat) for i in range(n_series)]


# Percentile series: each run's figure is the q-quantile of n draws from a heavy-tailed latency distribution,
# as a scenario computes it (np.percentile, linear interpolation), and carries n as its sample count.
PCT_QUANTILES = (0.5, 0.95, 0.99)
PCT_SAMPLES = (10, 30, 100, 300, 1000, 3000, 10000)  # nominal n per run; each run draws Poisson(n), >= 1
PCT_FAMILIES = ("lognormal", "pareto")
PCT_STEP_SIZES = (0.10, 0.20, 0.50, 4.0)  # regressions of the whole distribution's scale; 4.0 is a x5 jump
PCT_RUN_CV = 0.02  # run-to-run drift of the whole distribution (machine load), beyond sampling noise
PCT_CELLS = len(PCT_QUANTILES) * len(PCT_SAMPLES) * len(PCT_FAMILIES)
PCT_FLAT_REPLICAS = 4  # of every 10 replicas of a cell, this many are change-free


@dataclass
class PercentileSeries:
    name: str
    values: NDArray[np.float64]
    samples: NDArray[np.int64]
    quantile: float
    n_nominal: int
    family: str
    steps: list[Step] = field(default_factory=list)
    direction: Direction = Direction.LOWER_IS_BETTER


def _latency_draws(rng: np.random.Generator, family: str, n: int) -> NDArray[np.float64]:
    """Unit-scale latencies: log-normal (s = 0.6) or a Lomax/Pareto tail (shape 2.5) on top of a floor of 1."""
    if family == "lognormal":
        return rng.lognormal(0.0, 0.6, n)
    return 1.0 + rng.pareto(2.5, n)


def make_percentile_series(seed: int, index: int, runs: int) -> PercentileSeries:
    """Cell (quantile, n, family) from index % PCT_CELLS; replicas 0..3 of each ten are change-free."""
    rng = np.random.default_rng([seed, 1_000_000 + index])
    cell, replica = index % PCT_CELLS, index // PCT_CELLS
    quantile = PCT_QUANTILES[cell % len(PCT_QUANTILES)]
    n_nominal = PCT_SAMPLES[(cell // len(PCT_QUANTILES)) % len(PCT_SAMPLES)]
    family = PCT_FAMILIES[cell // (len(PCT_QUANTILES) * len(PCT_SAMPLES))]
    scale = np.full(runs, float(10 ** rng.uniform(0, 2)))
    steps: list[Step] = []
    if replica % 10 >= PCT_FLAT_REPLICAS:
        spacing = runs // (STEPS_PER_SERIES + 1)
        for k in range(1, STEPS_PER_SERIES + 1):
            at = k * spacing + int(rng.integers(-5, 6))
            size = float(rng.choice(PCT_STEP_SIZES))
            scale[at:] *= 1 + size
            steps.append(Step(at, size * 100, float("nan"), "regression"))
    scale = scale * np.exp(PCT_RUN_CV * rng.standard_normal(runs))
    samples = np.maximum(rng.poisson(n_nominal, runs), 1)
    values = np.array(
        [
            s * np.percentile(_latency_draws(rng, family, int(n)), 100 * quantile)
            for s, n in zip(scale, samples, strict=True)
        ]
    )
    kind = "steps" if steps else "flat"
    name = f"pct-{kind}-{index:05d}-{family}-p{int(100 * quantile)}-n{n_nominal}"
    return PercentileSeries(name, values, samples, quantile, n_nominal, family, steps)


def make_percentile_suite(seed: int, n_series: int, runs: int) -> list[PercentileSeries]:
    return [make_percentile_series(seed, i, runs) for i in range(n_series)]
