"""The report as a person sees it: opened in a real headless Chromium, every chart drawn with data, no
JavaScript error, no network, no text drawn over other text, and the seeded regression visible in the summary
and marked on its chart. Screenshots are kept under out/report/ (the whole page, the regressed chart, the chart
with runs of other settings)."""

from __future__ import annotations

from typing import Any

import pytest

from regression_pipelines.lab.settings import REPO_ROOT
from regression_pipelines.reports.content import chart_id
from tests.e2e.browser import chromium, scroll_through
from tests.report_history import REGRESSION_ROUND, SeededHistory, materialize_reports

OUT = REPO_ROOT / "out" / "report"
REGRESSED = chart_id("slow_area", "read_p50_ms")
SETTINGS = chart_id("steady_area", "write_p50_ms")  # clean runs plus two runs with a fault and other sizes
# Bounding boxes of every text a chart draws outside its data: title, legend entries, annotations, axis labels.
TEXT_BOXES_JS = """(id) => {
  const el = document.getElementById(id);
  const box = (node, what) => { const r = node.getBoundingClientRect();
    return {what, text: node.textContent, l: r.left, t: r.top, r: r.right, b: r.bottom}; };
  const boxes = [];
  el.querySelectorAll('.gtitle').forEach(n => boxes.push(box(n, 'title')));
  el.querySelectorAll('.legend .traces').forEach(n => boxes.push(box(n, 'legend')));
  el.querySelectorAll('.annotation').forEach(n => boxes.push(box(n, 'annotation')));
  el.querySelectorAll('.xtick text, .g-ytitle text').forEach(n => boxes.push(box(n, 'axis')));
  return boxes.filter(b => b.r > b.l && b.b > b.t);
}"""
CHARTS_JS = """() => Array.from(document.querySelectorAll('div.chart')).map(el => ({
  id: el.id,
  svg: !!el.querySelector('.main-svg'),
  points: (el.data || []).reduce((n, t) => n + (t.z ? t.z.flat().filter(v => v !== null).length
                                                  : (t.y || []).filter(v => v !== null).length), 0),
}))"""


@pytest.fixture(scope="module")
def opened(seeded_history: SeededHistory, tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("report_browser")
    assert materialize_reports(seeded_history.areas, seeded_history.instance, home).success
    html = home / "reports" / "regression_report.html"
    OUT.mkdir(parents=True, exist_ok=True)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
        errors: list[str] = []
        requests: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("request", lambda req: requests.append(req.url) if not req.url.startswith(("file:", "data:")) else None)
        page.goto(html.as_uri())
        page.wait_for_function("+document.body.dataset.rendered > 0", timeout=60_000)
        scroll_through(page)  # charts are drawn as they come near the screen
        page.screenshot(path=str(OUT / "report.png"), full_page=True)
        page.locator(f"#{REGRESSED}").screenshot(path=str(OUT / "regressed_chart.png"))
        page.locator(f"#{SETTINGS}").screenshot(path=str(OUT / "settings_chart.png"))
        page.locator("#summary").screenshot(path=str(OUT / "summary.png"))
        yield page, errors, requests, html


def test_every_chart_rendered_with_data_and_no_error_or_network(opened: Any) -> None:
    page, errors, requests, html = opened
    charts = page.evaluate(CHARTS_JS)
    assert len(charts) == int(page.get_attribute("body", "data-rendered")) >= 8  # every one, once scrolled to
    assert [c["id"] for c in charts if not c["svg"] or c["points"] == 0] == []
    assert errors == [] and requests == []
    assert 'src="http' not in html.read_text()  # plotly.js is inlined, nothing is fetched


def test_the_seeded_regression_is_in_the_summary(opened: Any, seeded_history: SeededHistory) -> None:
    page = opened[0]
    first_bad = seeded_history.seeder.run_ids[REGRESSION_ROUND]
    row = page.locator('tr[data-area="slow_area"]')
    assert row.get_attribute("data-status") == "regressed"
    text = row.locator("td.regressions").inner_text()
    assert "read_p50_ms" in text and "+3" in text and first_bad[:8] in text
    link = row.locator(f'td.regressions a[href$="/runs/{first_bad}"]')
    assert link.get_attribute("href") == f"http://dagster.example:3000/runs/{first_bad}"
    statuses = page.eval_on_selector_all("tr[data-area]", "rows => rows.map(r => [r.dataset.area, r.dataset.status])")
    assert dict(statuses) == {
        "broken_area": "failed",
        "skipped_area": "skipped",
        "slow_area": "regressed",
        "steady_area": "passed",
    }


def test_the_seeded_regression_is_marked_on_its_chart(opened: Any, seeded_history: SeededHistory) -> None:
    page = opened[0]
    first_bad = seeded_history.seeder.run_ids[REGRESSION_ROUND]
    marked = page.evaluate(
        """(id) => {
          const el = document.getElementById(id);
          const runs = JSON.parse(document.getElementById('report-data').textContent).runs;
          const bad = el.data.find(t => t.name === 'first bad run');
          return {run: bad && runs[bad.customdata[0]][0], label: el.querySelector('.annotation-text')?.textContent,
                  title: el.layout.title.text};
        }""",
        REGRESSED,
    )
    assert marked["run"] == first_bad
    assert "first bad run" in marked["label"] and "regressed" in marked["title"]
    text = page.locator(f"#{REGRESSED}").inner_text()
    assert f"first bad run {first_bad[:8]}" in text


def _overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["l"] < b["r"] and b["l"] < a["r"] and a["t"] < b["b"] and b["t"] < a["b"]


def test_no_chart_draws_text_over_other_text(opened: Any) -> None:
    """Legends (long 'other settings' entries included) never sit on a title, an annotation or an axis label."""
    page = opened[0]
    clashes = []
    for chart in page.evaluate(CHARTS_JS):
        boxes = page.evaluate(TEXT_BOXES_JS, chart["id"])
        for i, a in enumerate(boxes):
            for b in boxes[i + 1 :]:
                if a["what"] != b["what"] and "axis" not in (a["what"], b["what"]) and _overlaps(a, b):
                    clashes.append((chart["id"], a["what"], a["text"][:40], b["what"], b["text"][:40]))
                if {a["what"], b["what"]} == {"legend", "axis"} and _overlaps(a, b):
                    clashes.append((chart["id"], a["what"], a["text"][:40], b["what"], b["text"][:40]))
    assert clashes == []


def test_runs_with_other_settings_are_a_trace_of_their_own_named_by_what_differs(opened: Any) -> None:
    page = opened[0]
    names = page.evaluate("(id) => document.getElementById(id).data.map(t => t.name)", SETTINGS)
    assert "other settings: delay_invalidation_ms=50, fault=delay_invalidation, readers=8, writers=4" in names
    assert "runs with the newest settings" in names


def test_what_regressed_counts_failed_invariants(opened: Any) -> None:
    text = opened[0].locator('tr[data-area="broken_area"] td.regressions').inner_text()
    assert "1 invariant(s) failed: no_lost_writes" in text
