"""The report as one self-contained HTML file: plotly.js inlined once, the data as one JSON block, no network.

Everything that came from a run (skip reasons, invariant details, metric names) is escaped; the JSON block
has every `<` escaped, so no value can close its script tag.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote

from regression_pipelines.reports import health
from regression_pipelines.reports.content import AreaSection, ReportContent, chart_id
from regression_pipelines.reports.model import AreaCard, AreaStatus, RegressedMetric
from regression_pipelines.reports.series import BAND_Z, JUDGED_FROM_RUNS, MIN_BAND_RUNS

STATUS_COLORS = {
    AreaStatus.PASSED: "#2e7d32",
    AreaStatus.FAILED: "#c62828",
    AreaStatus.REGRESSED: "#e65100",
    AreaStatus.SKIPPED: "#757575",
    AreaStatus.ERROR: "#8e0000",
    AreaStatus.NOT_RUN: "#757575",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;max-width:1280px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:13px;margin-bottom:14px}
table.summary{border-collapse:collapse;width:100%;font-size:13px}
.summary th,.summary td{border:1px solid #ddd;padding:6px 8px;vertical-align:top;text-align:left}
.summary th{background:#f5f5f5}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px}
.health{font-weight:700;font-size:15px}
.muted{color:#777} .chart{min-height:120px;min-width:0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:6px 14px}
.why{font-size:12px;color:#555;margin:4px 0 0}
.first-runs{font-size:13px;color:#444;background:#f3f6fb;border-left:3px solid #1f5fbf;padding:6px 10px}
li.failed{color:#c62828}
ul.items{margin:0;padding-left:16px} a{color:#1f5fbf}
footer{margin-top:32px;font-size:12px;color:#555;border-top:1px solid #ddd;padding-top:8px}
"""

# Charts are drawn when they come near the screen (and all of them before printing), so a 50-chart report
# shows its first screen as soon as plotly.js is parsed. body[data-charts] = how many there are,
# body[data-rendered] = how many are drawn so far.
_JS = """
(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var byId = {}, rendered = 0;
  data.charts.forEach(function (chart) { byId[chart.id] = chart; });
  document.body.setAttribute('data-charts', String(data.charts.length));
  document.body.setAttribute('data-rendered', '0');
  function runUrl(i) {
    var run = data.runs[i];
    return run[0] ? data.dagster_url + '/runs/' + encodeURIComponent(run[0])
                  : data.dagster_url + '/assets/' + encodeURIComponent(run[1]);
  }
  function draw(el) {
    var chart = byId[el.id];
    if (!chart) { return Promise.resolve(); }
    delete byId[el.id];
    return Plotly.newPlot(el, chart.data, chart.layout, {displaylogo: false, responsive: true}).then(function () {
      el.on('plotly_click', function (ev) {
        var p = ev.points && ev.points[0];
        if (p && typeof p.customdata === 'number') { window.open(runUrl(p.customdata), '_blank'); }
      });
      rendered += 1;
      document.body.setAttribute('data-rendered', String(rendered));
    });
  }
  var elements = data.charts.map(function (chart) { return document.getElementById(chart.id); });
  if (!('IntersectionObserver' in window)) { elements.forEach(draw); return; }
  var observer = new IntersectionObserver(function (entries) {
    entries.forEach(function (entry) {
      if (entry.isIntersecting) { observer.unobserve(entry.target); draw(entry.target); }
    });
  }, {rootMargin: '600px 0px'});
  elements.forEach(function (el) { observer.observe(el); });
  window.addEventListener('beforeprint', function () { elements.forEach(draw); });
})();
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _time(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC") if ts is not None else "never"


def _run_link(base: str, run_id: str, area: str, text: str | None = None) -> str:
    if not run_id:
        return f'<a href="{_e(base)}/assets/{quote(area)}">{_e(text or "(reported outside a run)")}</a>'
    return f'<a href="{_e(base)}/runs/{quote(run_id)}">{_e(text or run_id[:8])}</a>'


def _regression(base: str, area: str, r: RegressedMetric) -> str:
    unit = f" {r.unit}" if r.unit else ""
    baseline = f"{r.baseline:.4g}" if r.baseline is not None else "its bound"
    since = ""
    if r.first_bad_at is not None:
        since = f"; since run {_run_link(base, r.first_bad_run, area)} ({_e(_time(r.first_bad_at))})"
    word = "SLO breach" if r.verdict == "slo_breach" else f"{r.change_pct:+.1f}%"
    return (
        f'<li><a href="#{chart_id(area, r.metric)}">{_e(r.metric)}</a> <b>{_e(word)}</b> ({_e(r.severity)}): '
        f"{r.latest:.4g}{_e(unit)} vs {_e(baseline)}{_e(unit)}{since}</li>"
    )


def _items(html_items: str) -> str:
    return f"<ul class=items>{html_items}</ul>" if html_items else "<span class=muted>none</span>"


def _summary_row(base: str, card: AreaCard) -> str:
    color = STATUS_COLORS[card.status]
    status = f'<span class="badge" style="background:{color}">{_e(card.status.value)}</span>'
    health_text = "n/a" if card.health is None else str(card.health)
    newest = (
        _run_link(base, card.run_id, card.area) + f"<br><span class=muted>{_e(_time(card.at))}</span>"
        if card.at
        else "never"
    )
    regressions = _failed_count(card) + "".join(_regression(base, card.area, r) for r in card.regressions)
    notes = []
    if card.cause:
        notes.append(f"<li>crashed: {_e(card.cause)}</li>")
    if card.skip_reason:
        notes.append(f"<li>skipped: {_e(card.skip_reason)}</li>")
    if card.error:
        notes.append(f"<li>error in run {_run_link(base, card.error_run_id, card.area)}: {_e(card.error)}</li>")
    notes += [
        f"<li><b>{_e(name)}</b>: {_e(detail)}</li>"
        for name, detail in card.failed_invariants.items()
        if not (card.cause and detail == card.cause)
    ]
    flaky = (
        f"{card.earlier_failure_share:.0%} of earlier runs failed an invariant" if card.earlier_failure_share else ""
    )
    return (
        f'<tr data-area="{_e(card.area)}" data-status="{_e(card.status.value)}">'
        f'<td><a href="#area-{_e(card.area)}">{_e(card.area)}</a></td><td class="status">{status}</td>'
        f'<td class="health">{health_text}</td><td>{newest}</td>'
        f'<td class="regressions">{_items(regressions)}</td><td class="notes">{_items("".join(notes))}</td>'
        f"<td>{card.runs_in_window}<br><span class=muted>{_e(flaky)}</span></td></tr>"
    )


def _failed_count(card: AreaCard) -> str:
    """The failed invariants head the 'what regressed' list: a broken promise outranks a slowdown."""
    failed = list(card.failed_invariants)
    if not failed:
        return ""
    return f'<li class="failed"><b>{len(failed)} invariant(s) failed</b>: {_e(", ".join(failed))}</li>'


def _section(section: AreaSection) -> str:
    card = section.card
    parts = [
        f'<h2 id="area-{_e(card.area)}">{_e(card.area)} <span class="badge" '
        f'style="background:{STATUS_COLORS[card.status]}">{_e(card.status.value)}</span></h2>'
    ]
    if section.description:
        parts.append(f'<p class="why">{_e(section.description)}</p>')
    if card.status is AreaStatus.SKIPPED:
        parts.append(f"<p><b>Skipped</b> in its newest run: {_e(card.skip_reason)}</p>")
    if section.first_runs is not None:
        parts.append(
            f'<p class="first-runs">{section.first_runs} run(s) recorded so far. Each run adds a point to every '
            f"chart below; with {MIN_BAND_RUNS} runs of the same settings a baseline band appears, from "
            f"{JUDGED_FROM_RUNS} runs each performance metric is judged (regressions and the first bad run are "
            "marked), and the strip shows each invariant's pass/fail per run.</p>"
        )
    if section.strip:
        parts.append(f'<div class="chart" id="{section.strip.id}"></div>')
    if section.charts:
        parts.append('<div class="charts">')
        parts += [f'<div class="chart" id="{chart.id}"></div>' for chart in section.charts]
        parts.append("</div>")
    if section.unmeasured:
        parts.append(f'<p class="muted">No value in this window: {_e(", ".join(section.unmeasured))}</p>')
    if not section.strip and not section.charts:
        parts.append('<p class="muted">Nothing recorded in this window.</p>')
    return "\n".join(parts)


def _footer() -> str:
    costs = ", ".join(f"{k} {v}" for k, v in health.SEVERITY_COST.items() if v)
    return (
        "<footer><p><b>Charts.</b> Blue: the runs with the newest run's settings (only those are compared); grey: "
        f"runs with other settings. Green band: each stable segment's mean ±{BAND_Z:g} robust σ (two runs in a row "
        "beyond it is the detector's fast rule). Dotted lines and diamonds: change points found in the whole "
        "history (red: worse, green: better). ✕: the first bad run of the current regression. Dashed red: SLO "
        "bounds. Volume and info metrics are plotted but never judged. Click a point to open its run in Dagster."
        f"</p><p><b>Health</b> (0-100) = 100 − {health.FAILED_INVARIANT_COST} per invariant failed in the newest "
        f"run − per regressed performance metric by severity ({costs}) − {health.FLAKINESS_COST} × the share of "
        "the window's earlier runs that failed an invariant; 0 when the newest attempt errored; none when skipped. "
        "100: clean now and in the window; 60-89: slower or flaky; below 60: an invariant fails now.</p></footer>"
    )


def render(content: ReportContent, plotly_js: str, links: Sequence[tuple[str, str]] = ()) -> str:
    """The page; `links` (text, relative href) join the header line, e.g. the upgrade matrices' pages."""
    card = content.scorecard
    extra = "".join(f' · <a href="{_e(href)}">{_e(text)}</a>' for text, href in links)
    tally: dict[str, int] = {}
    for c in card.cards:
        tally[c.status.value] = tally.get(c.status.value, 0) + 1
    counts = ", ".join(f"{n} {status}" for status, n in sorted(tally.items()))
    payload = {
        "dagster_url": content.dagster_url,
        "runs": [list(r) for r in content.runs],
        "charts": [{"id": c.id, "data": c.figure["data"], "layout": c.figure["layout"]} for c in content.charts],
    }
    data = json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")
    rows = "\n".join(_summary_row(content.dagster_url, c) for c in card.cards)
    sections = "\n".join(_section(s) for s in content.sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Regression report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>Regression report</h1>
<div class="meta">Generated {_e(_time(card.generated_at))} · window: {_e(content.since_label)} (since
{_e(_time(content.window_start.timestamp()))}) · {len(card.cards)} area(s): {_e(counts)} ·
<a href="{_e(content.dagster_url)}">Dagster</a>{extra}</div>
<table class="summary" id="summary"><thead><tr><th>Area</th><th>Verdict</th><th>Health</th><th>Newest run</th>
<th>What failed or regressed (change, since when)</th><th>Why (failed invariants, skip, crash)</th>
<th>Runs in window</th></tr></thead>
<tbody>
{rows}
</tbody></table>
{sections}
{_footer()}
<script type="text/javascript">{plotly_js}</script>
<script type="application/json" id="report-data">{data}</script>
<script type="text/javascript">{_JS}</script>
</body></html>
"""
