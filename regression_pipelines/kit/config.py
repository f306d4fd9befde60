"""One run-config model per area, written once: Dagster's launchpad schema and the scenario's settings.

Plain pydantic (no Dagster): the factory derives the Dagster `Config` from it, the scenario receives the
validated instance, and `regress run --set` validates against it before launching anything. Choices are
strings checked by `one_of` (Dagster's config schema has no Literal type, and its Enum values are member
names, which reads badly on the command line).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic
from pydantic import AfterValidator


class AreaConfig(pydantic.BaseModel):
    """Base of every area's run config: immutable, and unknown settings are an error, not ignored."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


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
