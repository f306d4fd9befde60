"""What the report shows, built from warehouse tables and the scorecard: per area a summary, an invariant
strip and one trend chart per metric. Pure (no Dagster): the metric policies come in as a function."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from regression_pipelines.detection import MetricPolicy
from regression_pipelines.reports.charts import invariant_strip, trend_figure
from regression_pipelines.reports.model import AreaCard, Scorecard
from regression_pipelines.reports.series import JUDGED_FROM_RUNS, MetricHistory, build_view

PolicyOf = Callable[[str, str, str], MetricPolicy]  # (area, metric, direction) -> policy


@dataclass(frozen=True)
class Chart:
    id: str
    figure: dict[str, Any]
    points: int  # points drawn (after downsampling)


@dataclass
class AreaSection:
    card: AreaCard
    description: str
    strip: Chart | None = None
    charts: list[Chart] = field(default_factory=list)
    unmeasured: list[str] = field(default_factory=list)  # metrics with no value in the window
    first_runs: int | None = None  # runs so far, when too few for trends (what the charts will show is said)


@dataclass
class ReportContent:
    scorecard: Scorecard
    since_label: str
    window_start: datetime
    dagster_url: str
    sections: list[AreaSection]
    runs: list[tuple[str, str]] = field(default_factory=list)  # (run id, area): what customdata indexes

    @property
    def charts(self) -> list[Chart]:
        return [c for s in self.sections for c in ([s.strip] if s.strip else []) + s.charts]


def chart_id(area: str, metric: str) -> str:
    return "chart-" + "".join(ch if ch.isalnum() else "-" for ch in f"{area}-{metric}")


class _RunIndex:
    def __init__(self, area: str, runs: list[tuple[str, str]], index: dict[tuple[str, str], int]) -> None:
        self.area, self.runs, self.index = area, runs, index

    def __call__(self, run_id: str) -> int:
        key = (run_id, self.area)
        if key not in self.index:
            self.index[key] = len(self.runs)
            self.runs.append(key)
        return self.index[key]


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _histories(metrics: pa.Table) -> dict[tuple[str, str], MetricHistory]:
    """One history per (area, metric), oldest first; unit/kind/direction from the newest run."""
    cols = metrics.sort_by([("storage_id", "ascending")]).to_pydict()
    grouped: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(cols["area"], cols["metric"], strict=True)):
        grouped.setdefault(key, []).append(i)
    histories = {}
    for (area, metric), rows in grouped.items():
        last = rows[-1]
        histories[(area, metric)] = MetricHistory(
            area=area,
            metric=metric,
            unit=cols["unit"][last] or "",
            kind=cols["kind"][last],
            direction=cols["direction"][last],
            at_ms=[_ms(cols["recorded_at"][i]) for i in rows],
            values=[cols["value"][i] for i in rows],
            run_ids=[cols["run_id"][i] for i in rows],
            storage_ids=[cols["storage_id"][i] for i in rows],
            baseline_keys=[cols["baseline_key"][i] for i in rows],
        )
    return histories


def _strip(area: str, runs: pa.Table, invariants: pa.Table, run_index: _RunIndex) -> Chart | None:
    """Pass/fail of every invariant for every run of the area in the window."""
    r = runs.filter(pc.equal(runs["area"], area)).sort_by("storage_id").to_pydict()
    inv = invariants.filter(pc.equal(invariants["area"], area)).sort_by("check_id").to_pydict()
    if not r["storage_id"] or not inv["invariant"]:
        return None
    column = {sid: j for j, sid in enumerate(r["storage_id"])}
    by_run = {run_id: j for j, run_id in enumerate(r["run_id"]) if run_id}
    names = sorted(set(inv["invariant"]))
    cells: list[list[bool | None]] = [[None] * len(column) for _ in names]
    for name, passed, target, run_id in zip(
        inv["invariant"], inv["passed"], inv["materialization_id"], inv["run_id"], strict=True
    ):
        j = column.get(target) if target is not None else by_run.get(run_id)
        if j is not None:
            cells[names.index(name)][j] = passed
    skipped = [status == "skipped" for status in r["status"]]
    figure = invariant_strip(names, [_ms(t) for t in r["recorded_at"]], r["run_id"], cells, skipped, run_index)
    return Chart(chart_id(area, "invariants"), figure, len(names) * len(column))


def _runs_so_far(runs: pa.Table, area: str) -> int:
    """Measured runs of the area in the window (skips measured nothing)."""
    mine = runs.filter(pc.and_(pc.equal(runs["area"], area), pc.equal(runs["status"], "measured")))
    return mine.num_rows


def build_content(
    scorecard: Scorecard,
    tables: Mapping[str, pa.Table],
    metrics_history: pa.Table,
    policy_of: PolicyOf,
    descriptions: Mapping[str, str],
    window_start: datetime,
    since_label: str,
    dagster_url: str,
) -> ReportContent:
    """`tables`: the window's runs and invariants; `metrics_history`: every metric row (change points and
    baselines need the history before the window too)."""
    runs: list[tuple[str, str]] = []
    index: dict[tuple[str, str], int] = {}
    histories = _histories(metrics_history)
    start_ms = _ms(window_start)
    sections = []
    for card in scorecard.cards:
        run_index = _RunIndex(card.area, runs, index)
        section = AreaSection(card=card, description=descriptions.get(card.area, ""))
        section.strip = _strip(card.area, tables["runs"], tables["invariants"], run_index)
        regressed = {r.metric: r for r in card.regressions}
        mine = [h for (area, _), h in histories.items() if area == card.area]
        for history in sorted(mine, key=lambda h: (h.metric not in regressed, h.kind != "performance", h.metric)):
            area, metric = history.area, history.metric
            bad = regressed.get(metric)
            view = build_view(
                history,
                policy_of(area, metric, history.direction),
                start_ms,
                bad.first_bad_storage_id if bad else None,
            )
            if view is None:
                section.unmeasured.append(metric)
                continue
            figure = trend_figure(view, run_index, bad)
            section.charts.append(Chart(chart_id(area, metric), figure, view.points_shown))
        runs_so_far = _runs_so_far(tables["runs"], card.area)
        if 0 < runs_so_far < JUDGED_FROM_RUNS:
            section.first_runs = runs_so_far
        sections.append(section)
    return ReportContent(scorecard, since_label, window_start, dagster_url.rstrip("/"), sections, runs)
