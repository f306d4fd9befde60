"""What an area folder declares, and what its run function receives. Plain Python: no Dagster here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regression_pipelines.kit.config import AreaConfig
from regression_pipelines.kit.supervisor import NO_LEFTOVERS, RUN_COMPLETED, AreaSkipped, Supervisor
from regression_pipelines.measure import NO_OPERATION_ERRORS  # every area measures its errors; the kit checks it
from regression_pipelines.results import ScenarioResult

__all__ = ["AREA_GROUP", "STAGE_TAG", "Area", "AreaSkipped", "RunContext", "Stage", "Supervisor"]

AREA_GROUP = "areas"
STAGE_TAG = "regress/stage_of"  # on a stage's asset: the area it belongs to (the area is what gets judged)


@dataclass(frozen=True)
class RunContext:
    """What a run function gets besides its config: resources by key, the run id and a place for artifacts."""

    run_id: str
    resources: Mapping[str, Any]
    output_dir: Path
    log: Any = field(default_factory=lambda: logging.getLogger("regression_pipelines.area"))
    # Set by `run_area`: the run's phases, partial figures, what it created (removed afterwards) and nemesis.
    supervisor: Supervisor | None = None

    @property
    def sup(self) -> Supervisor:
        """The run's supervisor; areas are run through `run_area`, which provides one."""
        if self.supervisor is None:
            raise RuntimeError("this RunContext has no supervisor: run the area with kit.run_area(area, config, ctx)")
        return self.supervisor

    def resource(self, key: str) -> Any:
        try:
            return self.resources[key]
        except KeyError:
            raise KeyError(
                f"resource {key!r} is not declared by this area; declared: {sorted(self.resources)}"
            ) from None


RunFunction = Callable[[Any, RunContext], ScenarioResult]


@dataclass(frozen=True)
class Stage:
    """A step of an area's one workload shown as an asset of its own, so the asset graph tells where a failure
    entered: an upstream stage feeds the area (e.g. the generated input), a downstream one comes out of it (e.g.
    the loaded table). `checks` moves some of the area's invariant checks onto this stage's asset; the run
    function still evaluates every invariant and gives the stage its figures in `ScenarioResult.stages`.
    """

    name: str
    description: str
    upstream: bool = False
    kinds: tuple[str, ...] = ()
    checks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Area:
    """One test area: the factory turns this into an asset, its invariant checks and its performance check.

    `run(config, ctx)` drives the workload (usually: build clients from `ctx.resource(...)`, call
    `scenario.run`) and returns the one result shape. `invariants` are the checks it promises to evaluate on
    every run (the kit adds `no_operation_errors`). `policies` override the performance judgement per metric,
    e.g. `{"failover.outage_s": {"upper_bound": 30.0}}`. `stages` (optional) show steps of the workload as
    assets of their own around the area's (see `Stage`); the area stays what is judged and reported.
    """

    name: str
    description: str
    config: type[AreaConfig]
    run: RunFunction
    invariants: tuple[str, ...]
    resources: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    destructive: bool = False
    policies: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    stages: tuple[Stage, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"area name {self.name!r} must be a Python identifier (it is also the folder name)")
        if len(self.kinds) > 3:
            raise ValueError(f"{self.name}: at most 3 kinds (Dagster shows up to 3), got {list(self.kinds)}")
        if len(set(self.checks)) != len(self.checks):
            raise ValueError(f"{self.name}: invariant names must be unique, got {list(self.invariants)}")
        if not issubclass(self.config, AreaConfig):
            raise TypeError(f"{self.name}: config must subclass regression_pipelines.kit.AreaConfig")
        self._check_stages()

    def _check_stages(self) -> None:
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: stage names must be unique, got {names}")
        moved = [check for stage in self.stages for check in stage.checks]
        for stage in self.stages:
            if not stage.name.isidentifier() or stage.name == self.name:
                raise ValueError(
                    f"{self.name}: stage {stage.name!r} must be a Python identifier other than the area's name"
                )
            if len(stage.kinds) > 3:
                raise ValueError(f"{self.name}.{stage.name}: at most 3 kinds, got {list(stage.kinds)}")
            unknown = sorted(set(stage.checks) - set(self.checks))
            if unknown:
                raise ValueError(
                    f"{self.name}.{stage.name}: checks {unknown} are not invariants of the area "
                    f"(declared: {list(self.checks)})"
                )
        if len(set(moved)) != len(moved):
            raise ValueError(f"{self.name}: a check belongs to one asset only, got stage checks {moved}")

    @property
    def checks(self) -> tuple[str, ...]:
        """Every invariant check of the area, the kit's own included."""
        return (*self.invariants, NO_OPERATION_ERRORS, RUN_COMPLETED, NO_LEFTOVERS)

    def stage_asset(self, stage: str) -> str:
        """The asset name of one of the area's stages: `<area>_<stage>`."""
        return f"{self.name}_{stage}"

    @property
    def asset_names(self) -> tuple[str, ...]:
        """The area's assets in lineage order: upstream stages, the area itself, downstream stages."""
        upstream = [self.stage_asset(s.name) for s in self.stages if s.upstream]
        downstream = [self.stage_asset(s.name) for s in self.stages if not s.upstream]
        return (*upstream, self.name, *downstream)

    def check_asset(self, check: str) -> str:
        """The asset a check is attached to: the stage that claims it, else the area."""
        for stage in self.stages:
            if check in stage.checks:
                return self.stage_asset(stage.name)
        return self.name
