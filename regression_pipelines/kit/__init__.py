"""The area kit: what an area folder declares (pure Python) and the helpers its run-config uses.

An area is one folder `assets/<area>/` whose `__init__.py` exposes `AREA = Area(...)`; `discovery` finds it and
`factory` (the only Dagster module here) turns it into an asset with its checks. Importing this package does
not import Dagster, so scenarios and their configs stay plain Python.
"""

from regression_pipelines.kit.config import AreaConfig, describe_validation_error, one_of
from regression_pipelines.kit.declaration import (
    AREA_GROUP,
    NO_OPERATION_ERRORS,
    STAGE_TAG,
    Area,
    AreaSkipped,
    RunContext,
    Stage,
)
from regression_pipelines.kit.run import run_area
from regression_pipelines.kit.supervisor import NO_LEFTOVERS, RUN_COMPLETED, Supervisor

__all__ = [
    "AREA_GROUP",
    "NO_OPERATION_ERRORS",
    "Area",
    "AreaConfig",
    "AreaSkipped",
    "NO_LEFTOVERS",
    "RUN_COMPLETED",
    "Supervisor",
    "run_area",
    "STAGE_TAG",
    "RunContext",
    "Stage",
    "describe_validation_error",
    "one_of",
]
