"""`regress detect --input FILE [--format json|table]`: change points and the newest run's verdict per series.

Exit codes: 0 no series' newest run is a regression, 1 at least one is, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from regression_pipelines.detection.changepoints import find_change_points
from regression_pipelines.detection.model import MetricPolicy
from regression_pipelines.detection.online import evaluate_latest
from regression_pipelines.detection.series_io import InputError, SeriesInput, read_series

EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT = 0, 1, 2


def analyse(series: SeriesInput) -> dict[str, Any]:
    """The JSON shape for one series (documented in the issue; keep keys stable)."""
    policy = MetricPolicy(direction=series.direction)
    cps = find_change_points(series.values, policy)
    verdict = evaluate_latest(series.values, policy)
    return {
        "series": series.name,
        "change_points": [
            {
                "index": cp.index,
                "run": series.runs[cp.index],
                "mean_before": cp.mean_before,
                "mean_after": cp.mean_after,
                "change_pct": cp.change_pct,
                "kind": cp.kind,
                "severity": cp.severity,
                "p_value": cp.p_value,
            }
            for cp in cps
        ],
        "latest": {"status": verdict.status, "severity": verdict.severity, "change_pct": verdict.change_pct},
    }


def render_table(results: list[dict[str, Any]]) -> str:
    lines = [f"{'series':<40} {'latest':<17} {'severity':<8} {'change%':>8}  change points (run: kind change%)"]
    for r in results:
        latest = r["latest"]
        cps = ", ".join(f"{c['run']}: {c['kind'][:4]} {c['change_pct']:+.1f}%" for c in r["change_points"]) or "-"
        lines.append(
            f"{r['series']:<40} {latest['status']:<17} {latest['severity']:<8} {latest['change_pct']:>+8.1f}  {cps}"
        )
    return "\n".join(lines)


def run_detect(args: argparse.Namespace) -> int:
    try:
        all_series = read_series(args.input)
    except InputError as exc:
        print(f"regress detect: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    results = [analyse(s) for s in all_series]
    if args.format == "table":
        print(render_table(results))
    else:
        print(json.dumps({"series": results}, indent=2))
    regressed = any(r["latest"]["status"] == "regression" for r in results)
    return EXIT_REGRESSION if regressed else EXIT_OK


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("detect", help="find regressions in series,run,value tables (CSV/Parquet)")
    parser.add_argument("--input", required=True, help="CSV or Parquet with columns series,run,value[,direction]")
    parser.add_argument("--format", choices=("json", "table"), default="json")
    parser.set_defaults(func=run_detect)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="regress")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["detect", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
