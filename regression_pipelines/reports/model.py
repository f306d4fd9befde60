"""The scorecard's shape: one card per area, and its JSON round trip (stored as the asset's metadata)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from regression_pipelines.results import Verdict

# An area's status on the scorecard is its newest verdict: the same words as `regress run` and the run tags.
AreaStatus = Verdict


@dataclass(frozen=True)
class RegressedMetric:
    """One performance metric the newest run regressed on: how much, how sure, since when."""

    metric: str
    unit: str
    verdict: str  # "regression" or "slo_breach"
    severity: str
    change_pct: float
    latest: float
    baseline: float | None
    first_bad_run: str  # run id ("" for an event reported outside a run)
    first_bad_storage_id: int | None  # its materialization
    first_bad_at: float | None  # unix time of the first bad run
    summary: str


@dataclass(frozen=True)
class AreaCard:
    area: str
    status: AreaStatus
    health: int | None  # 0..100, None when nothing was measured (skipped, never run)
    run_id: str = ""  # the newest materialization's run
    at: float | None = None
    regressions: tuple[RegressedMetric, ...] = ()
    failed_invariants: dict[str, str] = field(default_factory=dict)  # name -> detail
    skip_reason: str = ""
    error: str = ""
    error_run_id: str = ""
    runs_in_window: int = 0
    earlier_failure_share: float = 0.0  # share of the window's earlier runs that failed an invariant
    cause: str = ""  # when the newest run crashed: its phase and root cause (the run_completed invariant)


@dataclass(frozen=True)
class Scorecard:
    generated_at: float
    since: float  # unix time where the window starts
    cards: tuple[AreaCard, ...]

    def card(self, area: str) -> AreaCard:
        for card in self.cards:
            if card.area == area:
                return card
        raise KeyError(f"no area {area!r} in the scorecard; areas: {[c.area for c in self.cards]}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> Scorecard:
        raw = json.loads(data) if isinstance(data, str) else data
        cards = tuple(
            AreaCard(
                **{
                    **card,
                    "status": AreaStatus(card["status"]),
                    "regressions": tuple(RegressedMetric(**r) for r in card["regressions"]),
                }
            )
            for card in raw["cards"]
        )
        return cls(generated_at=raw["generated_at"], since=raw["since"], cards=cards)
