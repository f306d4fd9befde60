"""A seeded regression history for the scorecard and report tests: four toy areas built with the real kit,
materialized together round after round in one Dagster instance.

- `steady_area`: a clean performance metric, plus a VOLUME metric that steps up (recorded, never judged); two
  rounds ran with a fault and other settings (FAULTED_ROUNDS), which must be shown apart, never judged;
- `broken_area`: its invariant `no_lost_writes` fails in the newest round only;
- `slow_area`: `read_p50_ms` steps from ~10 ms to ~13 ms at round REGRESSION_ROUND (the seeded regression);
- `skipped_area`: measured until the newest round, which is skipped with a reason.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from regression_pipelines.kit import Area, AreaConfig, AreaSkipped, RunContext
from regression_pipelines.kit.factory import area_asset
from regression_pipelines.measure import NO_OPERATION_ERRORS
from regression_pipelines.reports.assets import reporting_assets
from regression_pipelines.results import Direction, Invariant, Metric, MetricKind, ScenarioResult
from resources.warehouse import WarehouseResource

ROUNDS = 14
REGRESSION_ROUND = 11  # first bad round of slow_area (0-based)
SKIP_REASON = "no Citus coordinator reachable on 127.0.0.1:9700"
FAULTED_ROUNDS = (4, 5)  # steady_area ran with a fault injected and other sizes (a long legend entry)
FAULTED_SETTINGS = {"fault": "delay_invalidation", "delay_invalidation_ms": 50, "readers": 8, "writers": 4}


class SeedConfig(AreaConfig):
    pass


@dataclass
class Seeder:
    rounds: int = ROUNDS
    round: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    run_ids: list[str] = field(default_factory=list)

    def _noisy(self, level: float) -> float:
        return level * (1 + self.rng.gauss(0, 0.01))

    def _ok(self, *invariants: Invariant) -> list[Invariant]:
        return [*invariants, Invariant(NO_OPERATION_ERRORS, True, "0 errors in 100 operations")]

    def steady(self, config: SeedConfig, ctx: RunContext) -> ScenarioResult:
        ops = 1000.0 if self.round < 7 else 2000.0  # a volume step: never a regression
        faulted = self.round in FAULTED_ROUNDS  # runs with other settings: plotted apart, never judged with the rest
        return ScenarioResult(
            "steady_area",
            [
                Metric("write_p50_ms", self._noisy(9.0 if faulted else 5.0), "ms", samples=500),
                Metric("operations", ops, "ops", Direction.HIGHER_IS_BETTER, kind=MetricKind.VOLUME),
            ],
            self._ok(Invariant("consistent", True, "all reads matched")),
            comparable_on=FAULTED_SETTINGS if faulted else {},
        )

    def broken(self, config: SeedConfig, ctx: RunContext) -> ScenarioResult:
        lost = 3 if self.round == self.rounds - 1 else 0
        return ScenarioResult(
            "broken_area",
            [Metric("commit_ms", self._noisy(2.0), "ms", samples=200)],
            self._ok(Invariant("no_lost_writes", lost == 0, f"{lost} acknowledged writes lost")),
        )

    def slow(self, config: SeedConfig, ctx: RunContext) -> ScenarioResult:
        level = 13.0 if self.round >= REGRESSION_ROUND else 10.0
        return ScenarioResult(
            "slow_area",
            [Metric("read_p50_ms", self._noisy(level), "ms", samples=1000)],
            self._ok(Invariant("fresh_reads", True, "0 stale reads")),
        )

    def skipped(self, config: SeedConfig, ctx: RunContext) -> ScenarioResult:
        if self.round == self.rounds - 1:
            raise AreaSkipped(SKIP_REASON)
        return ScenarioResult(
            "skipped_area",
            [Metric("shard_query_ms", self._noisy(30.0), "ms", samples=100)],
            self._ok(Invariant("shards_balanced", True, "32 shards on 2 workers")),
        )

    def areas(self) -> list[Area]:
        def area(name: str, run: Any, invariant: str) -> Area:
            return Area(name=name, description=f"seeded {name}", config=SeedConfig, run=run, invariants=(invariant,))

        return [
            area("broken_area", self.broken, "no_lost_writes"),
            area("skipped_area", self.skipped, "shards_balanced"),
            area("slow_area", self.slow, "fresh_reads"),
            area("steady_area", self.steady, "consistent"),
        ]

    def seed(self, instance: dg.DagsterInstance) -> list[Area]:
        """Materialize every area once per round; the run ids are kept, oldest first."""
        areas = self.areas()
        assets = [area_asset(a) for a in areas]
        for number in range(self.rounds):
            self.round = number
            result = dg.materialize(assets, instance=instance, raise_on_error=True)
            self.run_ids.append(result.run_id)
        return areas


@dataclass(frozen=True)
class SeededHistory:
    instance: dg.DagsterInstance
    areas: list[Area]
    seeder: Seeder


def materialize_reports(
    areas: list[Area], instance: dg.DagsterInstance, home: Path, since: str = "7d", **scorecard: Any
) -> dg.ExecuteInProcessResult:
    """The scorecard, report and exports of these areas, into `home/reports`, on the given instance."""
    report = {"since": since, "out_dir": str(home / "reports"), "dagster_url": "http://dagster.example:3000"}
    return dg.materialize(
        reporting_assets(areas),
        instance=instance,
        resources={"warehouse": WarehouseResource(path=str(home / "warehouse.duckdb"))},
        run_config={
            "ops": {
                "regression_scorecard": {"config": {"since": since, **scorecard}},
                "regression_report": {"config": report},
                "regression_exports": {"config": report},
            }
        },
    )
