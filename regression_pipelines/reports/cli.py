"""`regress report`: the scorecard, HTML report and exports from what the Dagster instance holds."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="scorecard, HTML report and Parquet/JSON exports")
    parser.add_argument("--since", default="7d", help="window: 90m, 24h, 7d, 2w or all (default 7d)")
    parser.add_argument(
        "--out", metavar="DIR", default="", help="folder for the report (default $DAGSTER_HOME/reports)"
    )
    parser.add_argument("--open", action="store_true", help="open the report in a browser")
    parser.add_argument(
        "--rebuild-warehouse", action="store_true", help="drop the DuckDB warehouse and copy everything again"
    )
    parser.set_defaults(func=report_command)


def report_command(args: argparse.Namespace) -> int:
    from regression_pipelines.reports.window import parse_since

    try:
        parse_since(args.since)
    except ValueError as exc:
        print(f"regress report: --{exc}", file=sys.stderr)
        return EXIT_USAGE
    from regression_pipelines.instance_home import ensure_dagster_home

    ensure_dagster_home()
    import dagster as dg

    from regression_pipelines.definitions import defs
    from regression_pipelines.reports.launch import (
        failure_message,
        materialize_reports,
        report_outputs,
        reporting_run_config,
    )
    from regression_pipelines.reports.scorecard import latest_scorecard

    out_dir = str(Path(args.out).resolve()) if args.out else ""
    with dg.DagsterInstance.get() as instance:
        result = materialize_reports(defs, instance, reporting_run_config(args.since, out_dir, args.rebuild_warehouse))
        outputs = report_outputs(result)
        scorecard = latest_scorecard(instance)
    if not result.success or outputs is None:
        print(f"regress report: {failure_message(result)}", file=sys.stderr)
        return EXIT_FAILED
    if scorecard is not None:
        for card in scorecard.cards:
            health = "n/a" if card.health is None else card.health
            print(f"{card.area:<24} {card.status.value:<10} health {health}")
    print(f"exports: {outputs.exports}")
    print(f"report: {outputs.html}")
    if args.open and not webbrowser.open(Path(outputs.html).as_uri()):
        print("regress report: no browser to open here; open the file above", file=sys.stderr)
    return EXIT_OK
