"""What an area folder declares, and what its run function receives. Plain Python: no Dagster here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regression_pipelines.kit.config import AreaConfig
from regression_pipelines.measure import NO_OPERATION_ERRORS  # every area measures its errors; the kit checks it
from regression_pipelines.results import ScenarioResult

AREA_GROUP = "areas"


class AreaSkipped(Exception):  # noqa: N818 - it is an outcome, not an error
    """Raised by an area's run when its system is not there to test (e.g. no Citus reachable).

    The area is then recorded as skipped with this reason (never as passed), and the run goes on.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RunContext:
    """What a run function gets besides its config: resources by key, the run id and a place for artifacts."""

    run_id: str
    resources: Mapping[str, Any]
    output_dir: Path
    log: Any = field(default_factory=lambda: logging.getLogger("regression_pipelines.area"))

    def resource(self, key: str) -> Any:
        try:
            return self.resources[key]
        except KeyError:
            raise KeyError(
                f"resource {key!r} is not declared by this area; declared: {sorted(self.resources)}"
            ) from None


RunFunction = Callable[[Any, RunContext], ScenarioResult]


@dataclass(frozen=True)
class Area:
    """One test area: the factory turns this into an asset, its invariant checks and its performance check.

    `run(config, ctx)` drives the workload (usually: build clients from `ctx.resource(...)`, call
    `scenario.run`) and returns the one result shape. `invariants` are the checks it promises to evaluate on
    every run (the kit adds `no_operation_errors`). `policies` override the performance judgement per metric,
    e.g. `{"failover.outage_s": {"upper_bound": 30.0}}`.
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

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"area name {self.name!r} must be a Python identifier (it is also the folder name)")
        if len(self.kinds) > 3:
            raise ValueError(f"{self.name}: at most 3 kinds (Dagster shows up to 3), got {list(self.kinds)}")
        if len(set(self.checks)) != len(self.checks):
            raise ValueError(f"{self.name}: invariant names must be unique, got {list(self.invariants)}")
        if not issubclass(self.config, AreaConfig):
            raise TypeError(f"{self.name}: config must subclass regression_pipelines.kit.AreaConfig")

    @property
    def checks(self) -> tuple[str, ...]:
        """Every invariant check of the area, the kit's own included."""
        return (*self.invariants, NO_OPERATION_ERRORS)
