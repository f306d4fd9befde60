"""One run-config model per area, written once: Dagster's launchpad schema and the scenario's settings.

Plain pydantic (no Dagster): the factory derives the Dagster `Config` from it, the scenario receives the
validated instance, and `regress run --set` validates against it before launching anything. Choices are
strings checked by `one_of` (Dagster's config schema has no Literal type, and its Enum values are member
names, which reads badly on the command line).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import pydantic
from pydantic import AfterValidator, Field


def _known_nemesis(value: str) -> str:
    from regression_pipelines.kit import nemeses  # the library is found at validation time, not at import

    if value != nemeses.NONE and value not in nemeses.names():
        raise ValueError(f"{value!r} is unknown; use one of none, {', '.join(nemeses.names())}")
    return value


class AreaConfig(pydantic.BaseModel):
    """Base of every area's run config: immutable, and unknown settings are an error, not ignored.

    Every area also takes a nemesis from the kit's library (a fault injected from outside the area's code at a
    seeded point of its workload) and the one destructive opt-in.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    nemesis: Annotated[str, AfterValidator(_known_nemesis)] = Field(
        default="none", description="A fault from the kit's nemesis library injected during the workload, or none"
    )
    nemesis_at_s: float | None = Field(
        default=None, ge=0, le=600, description="Seconds into the workload the nemesis starts (default: seeded)"
    )
    nemesis_for_s: float = Field(default=2.0, gt=0, le=600, description="How long the nemesis acts before healing")
    nemesis_seed: int = Field(default=0, description="Seed of the nemesis's start point when nemesis_at_s is unset")
    nemesis_command: str = Field(
        default="",
        description="For services outside the lab: command per action, e.g. 'ssh {host} sudo fault {action} "
        "{service}' ({action} is start/stop)",
    )
    allow_destructive: bool = Field(
        default=False, description="Must be true for anything that kills, pauses, restarts or limits a service"
    )
    allow_list: list[str] = Field(default_factory=list, description="Non-lab hosts you own and allow faults on")


def one_of(*choices: str) -> AfterValidator:
    """`Annotated[str, one_of("a", "b")]`: a string setting whose error names the allowed values."""

    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is unknown; use one of {', '.join(choices)}")
        return value

    return AfterValidator(check)


def describe_validation_error(exc: pydantic.ValidationError) -> str:
    """`keys: must be >= 1; fault: 'x' is unknown; use one of ...`: one line naming every bad field."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{field}: {_message(error)}" if field else _message(error))  # model-level: names its field
    return "; ".join(parts)


def _message(error: Any) -> str:
    kind, ctx = error.get("type", ""), error.get("ctx") or {}
    words: dict[str, Callable[[], str]] = {
        "greater_than_equal": lambda: f"{error.get('input')!r} is below the minimum {ctx.get('ge')}",
        "greater_than": lambda: f"{error.get('input')!r} must be above {ctx.get('gt')}",
        "less_than_equal": lambda: f"{error.get('input')!r} is above the maximum {ctx.get('le')}",
        "less_than": lambda: f"{error.get('input')!r} must be below {ctx.get('lt')}",
        "extra_forbidden": lambda: "is not a setting of this area",
    }
    if kind in words:
        return words[kind]()
    message = str(error.get("msg", "invalid"))
    return message.removeprefix("Value error, ")
