"""Turn `--set area.key=value` options into Dagster run config, with errors that name the bad part."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pydantic
import yaml

from regression_pipelines.kit import AreaConfig, describe_validation_error


class OverrideError(ValueError):
    """A --set option that cannot be applied; the message says which and what is allowed."""


def parse_overrides(items: Sequence[str], known_fields: Mapping[str, Sequence[str]]) -> dict[str, dict[str, Any]]:
    """`["cache_coherence.fault=no_ttl"]` -> `{"cache_coherence": {"fault": "no_ttl"}}` (YAML-typed values)."""
    config: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, raw_value = item.partition("=")
        area, dot, key = target.partition(".")
        if not sep or not dot or not area or not key:
            raise OverrideError(f"--set {item!r}: expected AREA.KEY=VALUE, e.g. cache_coherence.fault=no_ttl")
        if area not in known_fields:
            raise OverrideError(f"--set {item!r}: unknown area {area!r}; areas: {', '.join(sorted(known_fields))}")
        if key not in known_fields[area]:
            raise OverrideError(
                f"--set {item!r}: {area} has no setting {key!r}; settings: {', '.join(sorted(known_fields[area]))}"
            )
        try:
            value = yaml.safe_load(raw_value) if raw_value != "" else ""
        except yaml.YAMLError:
            value = raw_value
        config.setdefault(area, {})[key] = value
    return config


def validate_overrides(per_area: Mapping[str, Mapping[str, Any]], models: Mapping[str, type[AreaConfig]]) -> None:
    """Check the values against each area's config model now, so a bad value is a one-line error, not a run."""
    for area, values in per_area.items():
        try:
            models[area].model_validate(dict(values))
        except pydantic.ValidationError as exc:
            raise OverrideError(f"--set {area}: {describe_validation_error(exc)}") from None


def to_run_config(per_area: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    return {"ops": {area: {"config": dict(values)} for area, values in per_area.items()}}


def parse_areas(raw: str | None, available: Sequence[str], destructive: Sequence[str] = ()) -> list[str]:
    """Named areas, or by default every area that kills, pauses or switches over nothing."""
    if not raw:
        return [a for a in available if a not in destructive]
    areas = [a.strip() for a in raw.split(",") if a.strip()]
    unknown = [a for a in areas if a not in available]
    if unknown:
        raise OverrideError(f"--areas: unknown {', '.join(unknown)}; available: {', '.join(available)}")
    return areas
