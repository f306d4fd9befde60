"""What `regress matrix` prints and writes: the side-by-side grid, the JSON, the exit code. Pure formatting.

Exit code 1 when a later variant fails a check the first passes (or errors where the first ran): an upgrade
that breaks something the old version did right. A slower metric is reported, never an exit code by itself
(its interval says how sure; the A/A control says whether the host can tell at all).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from regression_pipelines.matrix.compare import Ratio
from regression_pipelines.matrix.run import MatrixResult, MetricComparison

EXIT_OK, EXIT_REGRESSED, EXIT_USAGE = 0, 1, 2
DETAIL_CHARS = 160


def exit_code(result: MatrixResult) -> int:
    return EXIT_REGRESSED if result.regressions() else EXIT_OK


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"±{value * 100:.1f}%"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["   " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"


def render(result: MatrixResult) -> str:
    labels = result.labels
    lines = [
        f"matrix {result.matrix_id}: {', '.join(result.areas)} x {' | '.join(labels)}",
        f"   {result.rounds} interleaved round(s), each variant once per round plus {labels[0]} again as the A/A "
        f"control; {result.seconds:.0f} s",
    ]
    for area in result.areas:
        lines += ["", f"== {area}"]
        statuses = {label: result.status(label, area) for label in labels}
        for label, status in statuses.items():
            if status != "measured":
                lines.append(f"   {label}: {_short(status)}")
        names = result.check_names(area)
        if names:
            cells = {label: result.checks(label, area) for label in labels}
            rows = [["check", *labels]]
            for name in names:
                rows.append([name, *(cells[label][name].word if name in cells[label] else "-" for label in labels)])
            lines += _table(rows)
            details = []
            for name in names:
                if all(name in cells[lb] and cells[lb][name].passed for lb in labels):
                    continue
                for label in labels:
                    cell = cells[label].get(name)
                    if cell is not None:
                        details.append(f"   {name} @ {label}: {cell.word}: {_short(cell.detail)}")
            if details:
                lines += ["", "   details of checks that differ or fail:", *details]
        comparisons = result.comparisons(area)
        if comparisons:
            lines += ["", f"   performance: median over rounds; later variants as ratio to {labels[0]} (95% CI)"]
            lines += _table(_metric_rows(comparisons, labels))
            bad = [c.metric for c in comparisons if not c.aa_ok]
            if bad:
                lines.append(
                    f"   A/A control shows a difference for {', '.join(bad)}: the host's noise exceeds the interval; "
                    "those ratios are not judged"
                )
    regressions = result.regressions()
    why = "; ".join(regressions) if regressions else "no later variant fails a check the first passes"
    lines += ["", f"verdict: {len(regressions)} check regression(s): {why}"]
    fixes = result.fixes()
    if fixes:
        lines.append(f"fixed: {len(fixes)} check(s) the first variant fails pass later: {'; '.join(fixes)}")
    return "\n".join(lines)


def _metric_rows(comparisons: list[MetricComparison], labels: list[str]) -> list[list[str]]:
    rows = [["metric", labels[0], *labels[1:], "A/A", "resolves"]]
    for c in comparisons:
        unit = f" {c.unit}" if c.unit else ""
        later = [f"{c.ratios[lb].describe()} {c.verdicts[lb]}" for lb in labels[1:]]
        rows.append([c.metric, f"{_fmt(c.medians[labels[0]])}{unit}", *later, c.aa.describe(), _pct(c.resolution)])
    return rows


def ratio_json(ratio: Ratio) -> dict[str, Any]:
    def num(value: float) -> float | None:
        return round(value, 5) if math.isfinite(value) else None

    return {"ratio": num(ratio.ratio), "low": num(ratio.low), "high": num(ratio.high), "rounds": ratio.rounds}


def to_json(result: MatrixResult, runs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Per variant the run summary `regress run --json` writes (`runs`), plus the grid and the comparisons."""
    checks: dict[str, Any] = {}
    for area in result.areas:
        checks[area] = {}
        for label in result.labels:
            for name, cell in result.checks(label, area).items():
                checks[area].setdefault(name, {})[label] = {
                    "passed": cell.passed,
                    "failed_rounds": cell.failed_rounds,
                    "rounds": cell.rounds,
                    "detail": cell.detail,
                }
    comparisons = [
        {
            "area": c.area,
            "metric": c.metric,
            "unit": c.unit,
            "direction": c.direction,
            "medians": {k: (v if math.isfinite(v) else None) for k, v in c.medians.items()},
            "ratios": {k: ratio_json(v) for k, v in c.ratios.items()},
            "verdicts": c.verdicts,
            "aa": ratio_json(c.aa),
            "aa_ok": c.aa_ok,
            "resolution": c.resolution if math.isfinite(c.resolution) else None,
        }
        for area in result.areas
        for c in result.comparisons(area)
    ]
    return {
        "matrix_id": result.matrix_id,
        "areas": result.areas,
        "variants": [
            {
                "label": v.label,
                "kind": v.kind,
                "package": v.package,
                "version": v.version,
                "overrides": {a: dict(o) for a, o in v.overrides.items()},
            }
            for v in result.variants
        ],  # fmt: skip
        "rounds": result.rounds,
        "seed": result.seed,
        "seconds": round(result.seconds, 1),
        "status": {area: {label: result.status(label, area) for label in result.labels} for area in result.areas},
        "runs": dict(runs or {}),
        "checks": checks,
        "comparisons": comparisons,
        "regressions": result.regressions(),
        "fixes": result.fixes(),
        "exit_code": exit_code(result),
    }


def dumps(result: MatrixResult, runs: Mapping[str, Any] | None = None) -> str:
    return json.dumps(to_json(result, runs), indent=2, sort_keys=True, default=str)
