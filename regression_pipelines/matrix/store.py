"""Where a matrix lands besides Dagster: tables in the DuckDB warehouse and a page next to the HTML report.

Tables (written by `regress matrix` itself, one insert per matrix; the scorecard owns the other tables and
copies the variants' runs into them like any run, so `runs.run_id = matrix_runs.dagster_run_id` joins them):
- `matrix_runs`: one row per variant (its position, kind, Dagster run id);
- `matrix_checks`: per area x check x variant, passed in every round or in how many it failed, the detail;
- `matrix_metrics`: per area x performance metric x variant, the median, the ratio to the first variant with
  its interval and verdict, and the A/A control's interval and the resolution it gives;
- `matrix_samples`: every round's value (the raw data behind the ratios), A/A copies marked.

The page (`<reports>/matrix/<id>.html`, and `index.html` listing every matrix in the warehouse) shows the
version x check grid and the per-metric ratios. Plain HTML: it opens without network like the report.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from regression_pipelines.matrix.grid import exit_code
from regression_pipelines.matrix.run import MatrixResult

DDL = (
    """CREATE TABLE IF NOT EXISTS matrix_runs (matrix_id VARCHAR, recorded_at TIMESTAMPTZ, variant VARCHAR,
    position INTEGER, kind VARCHAR, package VARCHAR, version VARCHAR, dagster_run_id VARCHAR, rounds INTEGER,
    areas VARCHAR, regressions INTEGER)""",
    """CREATE TABLE IF NOT EXISTS matrix_checks (matrix_id VARCHAR, area VARCHAR, check_name VARCHAR,
    variant VARCHAR, passed BOOLEAN, failed_rounds INTEGER, rounds INTEGER, detail VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS matrix_metrics (matrix_id VARCHAR, area VARCHAR, metric VARCHAR, unit VARCHAR,
    direction VARCHAR, variant VARCHAR, median DOUBLE, ratio DOUBLE, ratio_low DOUBLE, ratio_high DOUBLE,
    verdict VARCHAR, aa_ratio DOUBLE, aa_low DOUBLE, aa_high DOUBLE, resolution DOUBLE)""",
    """CREATE TABLE IF NOT EXISTS matrix_samples (matrix_id VARCHAR, round INTEGER, variant VARCHAR,
    control BOOLEAN, area VARCHAR, metric VARCHAR, value DOUBLE)""",
)
TABLES = ("matrix_runs", "matrix_checks", "matrix_metrics", "matrix_samples")


def _num(value: float) -> float | None:
    return value if math.isfinite(value) else None


def write_warehouse(conn: duckdb.DuckDBPyConnection, matrix: MatrixResult, run_ids: dict[str, str]) -> int:
    """Insert the matrix (replacing rows of the same id); the number of rows written."""
    for ddl in DDL:
        conn.execute(ddl)
    for table in TABLES:
        conn.execute(f"DELETE FROM {table} WHERE matrix_id = ?", [matrix.matrix_id])
    when = datetime.fromtimestamp(matrix.started_at or 0, UTC)
    mid, rows = matrix.matrix_id, 0
    regressions = len(matrix.regressions())
    for position, variant in enumerate(matrix.variants):
        conn.execute(
            "INSERT INTO matrix_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [mid, when, variant.label, position, variant.kind, variant.package, variant.version,
             run_ids.get(variant.label, ""), matrix.rounds, ",".join(matrix.areas), regressions],
        )  # fmt: skip
        rows += 1
    for area in matrix.areas:
        for label in matrix.labels:
            for name, cell in matrix.checks(label, area).items():
                conn.execute(
                    "INSERT INTO matrix_checks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [mid, area, name, label, cell.passed, cell.failed_rounds, cell.rounds, cell.detail],
                )
                rows += 1
        for c in matrix.comparisons(area):
            for label in matrix.labels:
                ratio = c.ratios.get(label)
                conn.execute(
                    "INSERT INTO matrix_metrics VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [mid, area, c.metric, c.unit, c.direction, label, _num(c.medians[label]),
                     _num(ratio.ratio) if ratio else None, _num(ratio.low) if ratio else None,
                     _num(ratio.high) if ratio else None, c.verdicts.get(label, "baseline"),
                     _num(c.aa.ratio), _num(c.aa.low), _num(c.aa.high), _num(c.resolution)],
                )  # fmt: skip
                rows += 1
    for run in matrix.runs:
        if run.outcome.result is None:
            continue
        for metric in run.outcome.result.metrics:
            conn.execute(
                "INSERT INTO matrix_samples VALUES (?, ?, ?, ?, ?, ?, ?)",
                [mid, run.slot.round, run.slot.variant.label, run.slot.control, run.area, metric.name,
                 _num(metric.value)],
            )  # fmt: skip
            rows += 1
    return rows


# --- the page ----------------------------------------------------------------------------------------------

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f4f4f4}
.pass{background:#e6f4ea}.fail{background:#fce8e6}.worse{color:#b00020;font-weight:600}.better{color:#137333}
.detail{font-size:.85em;color:#555;max-width:40em}"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def render_page(matrix: MatrixResult, run_ids: dict[str, str], dagster_url: str = "") -> str:
    labels = matrix.labels
    when = datetime.fromtimestamp(matrix.started_at or 0, UTC).strftime("%Y-%m-%d %H:%M UTC")
    regressions = matrix.regressions()
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>matrix {_e(matrix.matrix_id)}</title>"
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Upgrade matrix {_e(matrix.matrix_id)}</h1>",
        f"<p>{_e(when)}: {_e(', '.join(matrix.areas))} &times; {_e(' | '.join(labels))}; {matrix.rounds} interleaved "
        f"round(s) with an A/A control on {_e(labels[0])}. Exit code {exit_code(matrix)}: "
        f"{_e('; '.join(regressions) if regressions else 'no later variant fails a check the first passes')}.</p>",
        "<h2>Dagster runs</h2><ul>",
    ]
    for label in labels:
        run_id = run_ids.get(label, "")
        link = (
            f"<a href='{_e(dagster_url.rstrip('/'))}/runs/{_e(run_id)}'>{_e(run_id)}</a>" if dagster_url else _e(run_id)
        )
        parts.append(f"<li>{_e(label)}: run {link}</li>")
    parts.append("</ul>")
    for area in matrix.areas:
        parts.append(f"<h2>{_e(area)}</h2>")
        statuses = [
            f"{label}: {matrix.status(label, area)}" for label in labels if matrix.status(label, area) != "measured"
        ]
        if statuses:
            parts.append("<p>" + "<br>".join(_e(s) for s in statuses) + "</p>")
        cells = {label: matrix.checks(label, area) for label in labels}
        parts.append("<table><tr><th>check</th>" + "".join(f"<th>{_e(lb)}</th>" for lb in labels) + "</tr>")
        for name in matrix.check_names(area):
            row = f"<tr><td>{_e(name)}</td>"
            for label in labels:
                cell = cells[label].get(name)
                if cell is None:
                    row += "<td>-</td>"
                    continue
                css = "pass" if cell.passed else "fail"
                row += f"<td class='{css}'><b>{_e(cell.word)}</b><div class='detail'>{_e(cell.detail)}</div></td>"
            parts.append(row + "</tr>")
        parts.append("</table>")
        comparisons = matrix.comparisons(area)
        if comparisons:
            parts.append(
                f"<table><tr><th>metric</th><th>{_e(labels[0])} (median)</th>"
                + "".join(f"<th>{_e(lb)} / {_e(labels[0])}</th>" for lb in labels[1:])
                + "<th>A/A</th><th>resolves</th></tr>"
            )
            for c in comparisons:
                row = f"<tr><td>{_e(c.metric)}</td><td>{_e(_fmt(c.medians[labels[0]]))} {_e(c.unit)}</td>"
                for label in labels[1:]:
                    verdict = c.verdicts[label]
                    row += f"<td class='{_e(verdict)}'>{_e(c.ratios[label].describe())} {_e(verdict)}</td>"
                resolves = "n/a" if not math.isfinite(c.resolution) else f"±{c.resolution * 100:.1f}%"
                aa = c.aa.describe() + ("" if c.aa_ok else " (differs: not trusted)")
                parts.append(row + f"<td>{_e(aa)}</td><td>{_e(resolves)}</td></tr>")
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _fmt(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.4g}"


def write_page(folder: Path, matrix: MatrixResult, run_ids: dict[str, str], dagster_url: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{matrix.matrix_id}.html"
    path.write_text(render_page(matrix, run_ids, dagster_url), encoding="utf-8")
    return path


def write_index(folder: Path, conn: duckdb.DuckDBPyConnection) -> Path:
    """`index.html`: every matrix in the warehouse, newest first, linking its page."""
    rows = conn.execute(
        "SELECT matrix_id, min(recorded_at), string_agg(variant, ' | ' ORDER BY position), any_value(areas), "
        "any_value(regressions) FROM matrix_runs GROUP BY matrix_id ORDER BY 2 DESC"
    ).fetchall()
    items = "".join(
        f"<tr><td><a href='{_e(mid)}.html'>{_e(mid)}</a></td><td>{_e(str(when)[:16])}</td><td>{_e(areas)}</td>"
        f"<td>{_e(variants)}</td><td>{_e(regressions)}</td></tr>"
        for mid, when, variants, areas, regressions in rows
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>upgrade matrices</title><style>{STYLE}</style>"
        "</head><body><h1>Upgrade matrices</h1><table><tr><th>matrix</th><th>started</th><th>areas</th>"
        f"<th>variants</th><th>check regressions</th></tr>{items}</table></body></html>"
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
