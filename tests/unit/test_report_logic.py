"""Pure parts of the reporting layer: health formula, status, window, series preparation, downsampling, page."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from regression_pipelines.detection import MetricPolicy
from regression_pipelines.reports.charts import trend_figure
from regression_pipelines.reports.content import AreaSection, Chart, ReportContent
from regression_pipelines.reports.health import area_status, health_score
from regression_pipelines.reports.model import AreaCard, AreaStatus, Scorecard
from regression_pipelines.reports.page import render
from regression_pipelines.reports.series import MAX_POINTS, MetricHistory, build_view, keep_indices, settings_difference
from regression_pipelines.reports.window import parse_since

# --- health and status -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failed", "severities", "flaky", "expected"),
    [
        (0, [], 0.0, 100),
        (1, [], 0.0, 60),
        (0, ["low"], 0.0, 95),
        (0, ["medium", "high"], 0.0, 70),
        (0, [], 0.5, 90),
        (3, ["critical"], 1.0, 0),  # clamped
    ],
)
def test_health_formula(failed: int, severities: list[str], flaky: float, expected: int) -> None:
    status = AreaStatus.FAILED if failed else AreaStatus.PASSED
    assert health_score(status, failed, severities, flaky) == expected


def test_no_score_for_what_measured_nothing_and_zero_for_an_error() -> None:
    assert health_score(AreaStatus.SKIPPED, 0, [], 0.0) is None
    assert health_score(AreaStatus.NOT_RUN, 0, [], 0.0) is None
    assert health_score(AreaStatus.ERROR, 0, [], 0.0) == 0
    with pytest.raises(ValueError, match="unknown severities"):
        health_score(AreaStatus.PASSED, 0, ["huge"], 0.0)


def test_status_priority() -> None:
    common = {"materialized": True, "errored": False, "skipped": False, "failed": 0, "regressed": 0}
    assert area_status(**common) is AreaStatus.PASSED
    assert area_status(**{**common, "regressed": 1}) is AreaStatus.REGRESSED
    assert area_status(**{**common, "regressed": 1, "failed": 1}) is AreaStatus.FAILED
    assert area_status(**{**common, "skipped": True}) is AreaStatus.SKIPPED  # never passed
    assert area_status(**{**common, "errored": True}) is AreaStatus.ERROR
    assert area_status(**{**common, "materialized": False}) is AreaStatus.NOT_RUN


def test_since_windows() -> None:
    assert parse_since("7d") == timedelta(days=7) and parse_since("90m") == timedelta(minutes=90)
    assert parse_since("all") is None
    for bad in ("7", "3x", "-1d", "0h", ""):
        with pytest.raises(ValueError, match="since: .* use e.g. 90m"):
            parse_since(bad)


# --- series ----------------------------------------------------------------------------------------------------


def _history(values: list[float | None], kind: str = "performance", keys: list[str] | None = None) -> MetricHistory:
    n = len(values)
    return MetricHistory(
        area="a",
        metric="p50_ms",
        unit="ms",
        kind=kind,
        direction="lower_is_better",
        at_ms=[1_000_000 + 60_000 * i for i in range(n)],
        values=values,
        run_ids=[f"run-{i}" for i in range(n)],
        storage_ids=list(range(100, 100 + n)),
        baseline_keys=keys or ["{}"] * n,
    )


def _step(n: int, at: int, rng: np.random.Generator) -> list[float]:
    return [float(v) for v in np.where(np.arange(n) < at, 10.0, 13.0) * (1 + rng.normal(0, 0.01, n))]


def test_downsampling_keeps_recent_runs_and_every_change_point() -> None:
    rng = np.random.default_rng(3)
    values = _step(1000, 123, rng)
    view = build_view(_history(values), MetricPolicy(min_change_pct=5), 0, first_bad=100 + 123)
    assert view is not None
    assert [c.run_id for c in view.changes] == ["run-123"]  # found on the full history
    assert len(view.main.at_ms) <= MAX_POINTS + 3
    assert {"run-122", "run-123", "run-999"} <= set(view.main.run_ids)
    assert view.first_bad is not None and view.first_bad.run_id == "run-123"
    assert len(view.bands) == 2 and view.bands[0].low < 10 < view.bands[0].high < view.bands[1].low


def test_keep_indices_is_the_identity_for_short_series_and_keeps_what_it_must() -> None:
    assert list(keep_indices(np.ones(10))) == list(range(10))
    kept = keep_indices(np.arange(5000, dtype=float), must_keep=[7])
    assert 7 in kept and 4999 in kept and len(kept) <= MAX_POINTS + 1


def test_volume_metrics_are_drawn_but_never_judged() -> None:
    rng = np.random.default_rng(4)
    view = build_view(_history(_step(60, 30, rng), kind="volume"), MetricPolicy(), 0, first_bad=130)
    assert view is not None and not view.judged
    assert view.changes == [] and view.bands == [] and view.first_bad is None
    figure = trend_figure(view, lambda run: 0)
    assert "never judged" in figure["layout"]["title"]["text"]


def test_runs_with_other_settings_are_shown_apart_and_not_judged_with_the_rest() -> None:
    values = [10.0] * 20 + [50.0] * 5 + [10.0] * 10
    keys = ["{}"] * 20 + ['{"fault": "no_ttl"}'] * 5 + ["{}"] * 10
    view = build_view(_history(values, keys=keys), MetricPolicy(min_change_pct=5), 0)
    assert view is not None
    assert view.changes == []  # the faulted runs never joined the clean series
    assert [t.label for t in view.others] == ["other settings: fault=no_ttl"]  # what differs, not the JSON
    assert len(view.main.at_ms) == 30 and view.others[0].values == [50.0] * 5


def test_a_legend_names_what_differs_from_the_newest_settings() -> None:
    newest = '{"fault": "none", "readers": 4}'
    assert settings_difference('{"fault": "no_ttl", "readers": 4}', newest) == "fault=no_ttl"
    assert settings_difference('{"fault": "none", "readers": 8, "max_ops": 0.5}', newest) == "max_ops=0.5, readers=8"
    assert settings_difference("{}", newest) == "no fault, no readers"


def test_a_chart_with_few_runs_says_what_it_will_show_and_keeps_legend_off_the_title() -> None:
    view = build_view(_history([10.0]), MetricPolicy(), 0)
    assert view is not None
    layout = trend_figure(view, lambda run: 0)["layout"]
    (note,) = [a for a in layout["annotations"] if "so far" in a["text"]]
    assert "1 run(s) with these settings so far" in note["text"] and "judged from 10 runs" in note["text"]
    assert layout["legend"]["yanchor"] == "top" and layout["legend"]["y"] < 0  # under the plot, not at the title
    many = build_view(_history([10.0] * 12), MetricPolicy(), 0)
    assert many is not None and not trend_figure(many, lambda run: 0)["layout"]["annotations"]


def test_nothing_measured_gives_no_chart() -> None:
    assert build_view(_history([None, None]), MetricPolicy(), 0) is None
    assert build_view(_history([1.0, 2.0]), MetricPolicy(), 10**13) is None  # all before the window


# --- the page ----------------------------------------------------------------------------------------------------


def test_page_escapes_what_runs_wrote_and_keeps_its_json_inside_its_tag() -> None:
    evil = "</script><script>alert(1)</script>"
    card = AreaCard(area="a", status=AreaStatus.SKIPPED, health=None, skip_reason=evil, at=0.0, run_id="r1")
    scorecard = Scorecard(generated_at=0.0, since=0.0, cards=(card,))
    figure = {"data": [{"type": "scatter", "name": evil, "x": [1], "y": [1]}], "layout": {}}
    content = ReportContent(
        scorecard,
        "7d",
        datetime.fromtimestamp(0, UTC),
        "http://ui",
        [AreaSection(card, evil, None, [Chart("c1", figure, 1)])],
    )
    page = render(content, plotly_js="/* plotly */")
    assert "<script>alert(1)" not in page
    payload = page.split('<script type="application/json" id="report-data">', 1)[1].split("</script>", 1)[0]
    assert json.loads(payload)["charts"][0]["data"][0]["name"] == evil
