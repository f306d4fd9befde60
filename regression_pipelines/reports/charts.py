"""Plotly figures as plain JSON (plotly.js's own schema): a metric's trend and an area's invariant strip.

Plain dicts rather than `plotly.graph_objects`: 50 charts of 400 points build in milliseconds and the page
carries nothing but data. Every point's `customdata` is an index into the page's run list, which is how a
click opens that run in the Dagster UI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from regression_pipelines.reports.model import RegressedMetric
from regression_pipelines.reports.series import BAND_Z, JUDGED_FROM_RUNS, MIN_BAND_RUNS, SeriesView

RunIndex = Callable[[str], int]
RED, GREEN, BLUE, GREY = "#c62828", "#2e7d32", "#1f5fbf", "#9e9e9e"
HOVER = "%{y:.4~g} {unit}<br>%{x|%Y-%m-%d %H:%M:%S} UTC<br>run %{text}<extra>%{fullData.name}</extra>"


def _num(value: float) -> float:
    """Six significant digits: what a chart can show, and a third of the bytes of a full float."""
    return float(f"{value:.6g}")


MIN_SPAN_MS = 1_000
PAD_MS = 30 * 60_000


# One line per tick label at every zoom (plotly's default puts the date on a second line under the first tick):
# the legend sits under the axis at a fraction of the plot's height, so a two-line label left it a few pixels,
# and charts of runs a second or two apart drew a tick label over the legend. Labels stay level (plotly turns
# long sub-second ones on their side, taller again), at most 8 of them so they have room. The date stays in the
# hover and in the coarser formats.
TICK_FORMATS = [
    {"dtickrange": [None, 999], "value": "%H:%M:%S.%L"},
    {"dtickrange": [1_000, 59_999], "value": "%H:%M:%S"},
    {"dtickrange": [60_000, 86_399_999], "value": "%b %d %H:%M"},
    {"dtickrange": [86_400_000, None], "value": "%Y-%m-%d"},
]
DATE_TICKS = {"type": "date", "tickformatstops": TICK_FORMATS, "nticks": 8, "tickangle": 0}


def _xaxis(at_ms: Sequence[int]) -> dict[str, Any]:
    """A date axis; a lone run (or runs within a second) gets an hour around it, not sub-second ticks."""
    axis: dict[str, Any] = dict(DATE_TICKS)
    if at_ms and max(at_ms) - min(at_ms) < MIN_SPAN_MS:
        axis["range"] = [min(at_ms) - PAD_MS, max(at_ms) + PAD_MS]
    return axis


def _strip_axis(at_ms: Sequence[int]) -> dict[str, Any]:
    """No fixed range (it would hide a lone column: heatmap cells size from the data); one run, one tick."""
    if len(set(at_ms)) == 1:
        return {"type": "date", "tickvals": [at_ms[0]], "tickformat": "%Y-%m-%d %H:%M:%S"}
    return dict(DATE_TICKS)


def _short(run_id: str) -> str:
    return run_id[:8] if run_id else "(no run)"


def _points(
    name: str,
    at: Sequence[int],
    values: Sequence[float],
    run_ids: Sequence[str],
    unit: str,
    run_index: RunIndex,
    **style: Any,
) -> dict[str, Any]:
    return {
        "type": "scatter",
        "name": name,
        "x": list(at),
        "y": [_num(v) for v in values],
        "customdata": [run_index(r) for r in run_ids],
        "text": [_short(r) for r in run_ids],
        "hovertemplate": HOVER.replace("{unit}", unit),
        **style,
    }


def trend_figure(view: SeriesView, run_index: RunIndex, regressed: RegressedMetric | None = None) -> dict[str, Any]:
    """Runs over time with the baseline band, SLO bounds, change points and the first bad run marked."""
    unit = view.history.unit
    data: list[dict[str, Any]] = []
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    if view.bands:
        xs: list[int | None] = []
        ys: list[float | None] = []
        for band in view.bands:
            xs += [band.start_ms, band.end_ms, band.end_ms, band.start_ms, band.start_ms, None]
            ys += [_num(band.low), _num(band.low), _num(band.high), _num(band.high), _num(band.low), None]
        data.append(
            {
                "type": "scatter",
                "name": f"baseline band (±{BAND_Z:g}σ)",
                "x": xs,
                "y": ys,
                "fill": "toself",
                "mode": "lines",
                "line": {"width": 0},
                "fillcolor": "rgba(46,125,50,0.13)",
                "hoverinfo": "skip",
            }
        )
    for trace in view.others:
        data.append(
            _points(
                trace.label,
                trace.at_ms,
                trace.values,
                trace.run_ids,
                unit,
                run_index,
                mode="markers",
                marker={"color": GREY, "size": 5, "opacity": 0.6},
            )
        )
    main = view.main
    data.append(
        _points(
            main.label,
            main.at_ms,
            main.values,
            main.run_ids,
            unit,
            run_index,
            mode="lines+markers",
            line={"color": BLUE, "width": 1.5},
            marker={"size": 4, "color": BLUE},
        )
    )
    if view.changes:
        colors = [RED if c.kind == "regression" else GREEN for c in view.changes]
        data.append(
            _points(
                "change points",
                [c.at_ms for c in view.changes],
                [c.value for c in view.changes],
                [c.run_id for c in view.changes],
                unit,
                run_index,
                mode="markers",
                marker={"symbol": "diamond", "size": 10, "color": colors},
            )
        )
        for change in view.changes:
            color = RED if change.kind == "regression" else GREEN
            shapes.append(_vertical(change.at_ms, color))
            annotations.append(
                {
                    "x": change.at_ms,
                    "y": 1,
                    "yref": "paper",
                    "yanchor": "bottom",
                    "showarrow": False,
                    "text": f"{change.change_pct:+.1f}% {change.severity}",
                    "font": {"size": 10, "color": color},
                }
            )
    if view.first_bad is not None:
        bad = view.first_bad
        data.append(
            _points(
                "first bad run",
                [bad.at_ms],
                [bad.value],
                [bad.run_id],
                unit,
                run_index,
                mode="markers",
                marker={"symbol": "x", "size": 14, "color": RED, "line": {"width": 2}},
            )
        )
        annotations.append(
            {
                "x": bad.at_ms,
                "y": _num(bad.value),
                "text": f"first bad run {_short(bad.run_id)}",
                "showarrow": True,
                "arrowhead": 2,
                "arrowcolor": RED,
                "ax": -40,
                "ay": -36,
                "font": {"color": RED, "size": 11},
            }
        )
    for bound, word in ((view.upper_bound, "≤"), (view.lower_bound, "≥")):
        if bound is not None:
            shapes.append(
                {
                    "type": "line",
                    "xref": "paper",
                    "x0": 0,
                    "x1": 1,
                    "y0": bound,
                    "y1": bound,
                    "line": {"color": RED, "dash": "dash", "width": 1.5},
                }
            )
            annotations.append(
                {
                    "xref": "paper",
                    "x": 1,
                    "xanchor": "right",
                    "y": bound,
                    "yanchor": "bottom",
                    "showarrow": False,
                    "text": f"SLO {word} {bound:g} {unit}",
                    "font": {"color": RED, "size": 10},
                }
            )
    if len(main.at_ms) < JUDGED_FROM_RUNS and view.judged:
        annotations.append(_first_runs_note(len(main.at_ms)))
    return {
        "data": data,
        "layout": {
            # The title sits in the top margin and the legend below the plot: a long legend (several settings)
            # wraps downwards and pushes the bottom margin (plotly's automargin), never over the title.
            "title": {"text": _title(view, regressed), "x": 0, "xanchor": "left", "xref": "paper", "y": 0.98,
                      "yanchor": "top", "yref": "container", "font": {"size": 14}},
            "height": 320 + 18 * len(view.others),
            "margin": {"l": 64, "r": 16, "t": 44, "b": 40},
            "xaxis": _xaxis([*main.at_ms, *(t for trace in view.others for t in trace.at_ms)]),
            "yaxis": {"title": {"text": unit}, "zeroline": False},
            "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": -0.2, "yanchor": "top",
                       "font": {"size": 10}},
            "hovermode": "closest",
            "shapes": shapes,
            "annotations": annotations,
        },
    }  # fmt: skip


def _first_runs_note(runs: int) -> dict[str, Any]:
    """What the chart will show once there is history: said on the chart while there is not."""
    band = f"a baseline band from {MIN_BAND_RUNS} runs" if runs < MIN_BAND_RUNS else "the baseline band"
    return {
        "xref": "paper",
        "yref": "paper",
        "x": 0.5,
        "y": 0.02,
        "yanchor": "bottom",
        "showarrow": False,
        "text": f"{runs} run(s) with these settings so far: each run adds a point; {band},<br>"
        f"regressions judged from {JUDGED_FROM_RUNS} runs, change points marked as they appear",
        "font": {"size": 11, "color": GREY},
        "bgcolor": "rgba(255,255,255,0.8)",
    }


def _vertical(at_ms: int, color: str) -> dict[str, Any]:
    return {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": at_ms,
        "x1": at_ms,
        "y0": 0,
        "y1": 1,
        "line": {"color": color, "dash": "dot", "width": 1.5},
    }


def _title(view: SeriesView, regressed: RegressedMetric | None) -> str:
    h = view.history
    title = f"<b>{h.metric}</b>"
    if not view.judged:
        return title + f" <span style='color:{GREY}'>({h.kind}: recorded, never judged)</span>"
    if regressed is not None:
        word = "SLO breach" if regressed.verdict == "slo_breach" else "regressed"
        title += f" <span style='color:{RED}'>{word} {regressed.change_pct:+.1f}% ({regressed.severity})</span>"
    return title


def invariant_strip(
    invariants: Sequence[str],
    at_ms: Sequence[int],
    run_ids: Sequence[str],
    passed: Sequence[Sequence[bool | None]],
    skipped: Sequence[bool],
    run_index: RunIndex,
) -> dict[str, Any]:
    """One row per invariant, one cell per run: green passed, red failed, grey skipped run, blank not evaluated."""

    def cell(p: bool | None, skip: bool) -> tuple[float | None, str]:
        if skip:
            return 0.5, "area skipped"
        return (None, "not evaluated") if p is None else (1.0 if p else 0.0, "PASS" if p else "FAIL")

    cells = [[cell(p, skip) for p, skip in zip(row, skipped, strict=True)] for row in passed]
    z = [[value for value, _ in row] for row in cells]
    words = [[word for _, word in row] for row in cells]
    index = [run_index(r) for r in run_ids]
    return {
        "data": [
            {
                "type": "heatmap",
                "name": "invariants",
                "x": list(at_ms),
                "y": list(invariants),
                "z": z,
                "zmin": 0,
                "zmax": 1,
                "colorscale": [[0, RED], [0.34, RED], [0.34, GREY], [0.66, GREY], [0.66, GREEN], [1, GREEN]],
                "showscale": False,
                "xgap": 1,
                "ygap": 2,
                "text": words,
                "customdata": [index for _ in invariants],
                "hovertemplate": "%{y}: %{text}<br>%{x|%Y-%m-%d %H:%M:%S} UTC<extra></extra>",
            }
        ],
        "layout": {
            "title": {"text": "<b>invariants</b> per run", "x": 0, "xanchor": "left", "font": {"size": 14}},
            "height": 90 + 26 * len(invariants),
            "margin": {"l": 230, "r": 16, "t": 36, "b": 36},
            "xaxis": _strip_axis(at_ms),
            "yaxis": {"automargin": True},
        },
    }
