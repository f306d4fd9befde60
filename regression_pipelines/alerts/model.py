"""The alert every sink understands, shaped after Alertmanager's v2 alert (labels identify, annotations tell)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

# Labels that describe an alert but do not identify it: a regression going from "medium" to "high" is the
# same problem getting worse, not a second problem.
NON_IDENTIFYING_LABELS = frozenset({"severity"})


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(raw: str) -> datetime:
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Alert:
    """One firing or resolved alert. `ends_at` set means resolved at that time."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: datetime = field(default_factory=utcnow)
    ends_at: datetime | None = None
    generator_url: str = ""

    def __post_init__(self) -> None:
        if not self.labels.get("alertname"):
            raise ValueError(f"alert labels need an 'alertname', got {dict(self.labels)}")
        object.__setattr__(self, "labels", {k: str(v) for k, v in sorted(self.labels.items())})
        object.__setattr__(self, "annotations", {k: str(v) for k, v in sorted(self.annotations.items())})

    @property
    def resolved(self) -> bool:
        return self.ends_at is not None

    @property
    def status(self) -> str:
        return "resolved" if self.resolved else "firing"

    @property
    def identity(self) -> str:
        """Stable id of the problem (labels minus severity), used to resolve what was fired."""
        ident = {k: v for k, v in self.labels.items() if k not in NON_IDENTIFYING_LABELS}
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]

    def resolve(self, at: datetime | None = None) -> Alert:
        return replace(self, ends_at=at or utcnow())

    def title(self) -> str:
        parts = [self.labels.get(k) for k in ("area", "metric", "invariant", "job") if self.labels.get(k)]
        where = "/".join(p for p in parts if p)
        return f"{self.labels['alertname']} {where}".strip()

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": iso(self.starts_at),
            "endsAt": iso(self.ends_at) if self.ends_at else None,
            "generatorURL": self.generator_url,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        ends = data.get("endsAt")
        return cls(
            labels=data["labels"],
            annotations=data.get("annotations", {}),
            starts_at=parse_iso(data["startsAt"]),
            ends_at=parse_iso(ends) if ends else None,
            generator_url=data.get("generatorURL", ""),
        )
