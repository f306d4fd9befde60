"""`regress run`: launch area assets through Dagster, print figures, exit non-zero on a failed invariant.

Exit codes: 0 the verdict is passed (or only skipped areas); 1 the verdict is failed or error (an invariant
failed, an area could not run) or Dagster's run status is not SUCCESS, or with --fail-on-regression a metric
regressed; 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from regression_pipelines.running.summary import RunSummary

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help="run area assets through Dagster and summarise them")
    parser.add_argument("--areas", help="comma-separated area assets (default: every area)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="AREA.KEY=VALUE", help="override a setting"
    )
    parser.add_argument(
        "--json", nargs="?", const="-", metavar="FILE", help="write the summary as JSON to FILE (or stdout)"
    )
    parser.add_argument(
        "--fail-on-regression", action="store_true", help="exit 1 when a metric regressed against its baseline"
    )
    parser.add_argument("--verbose", action="store_true", help="show Dagster's event log while running")
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from regression_pipelines.instance_home import ensure_dagster_home

    home = ensure_dagster_home()
    import dagster as dg

    from regression_pipelines.definitions import AREAS, defs
    from regression_pipelines.running.execute import attach_verdicts, current_report, run_areas, summarise
    from regression_pipelines.running.overrides import (
        OverrideError,
        parse_areas,
        parse_overrides,
        to_run_config,
        validate_overrides,
    )
    from regression_pipelines.running.summary import dumps, render_table

    fields = {area.name: list(area.config.model_fields) for area in AREAS}
    destructive = [area.name for area in AREAS if area.destructive]
    try:
        areas = parse_areas(args.areas, list(fields), destructive)
        overrides = parse_overrides(args.overrides, fields)
        validate_overrides(overrides, {area.name: area.config for area in AREAS})
        run_config = to_run_config(overrides)
    except OverrideError as exc:
        print(f"regress run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    log_level = "DEBUG" if args.verbose else "WARNING"
    with dg.DagsterInstance.get() as instance:
        result, outcomes = run_areas(defs, instance, areas, run_config, log_level, destructive)
        attach_verdicts(defs, instance, outcomes)
        summary = summarise(instance, result, outcomes, str(home))
        report = current_report(defs, instance, result, log_level)
    summary.report_path = report.html if report else ""
    out_dir = home / "runs"
    out_dir.mkdir(exist_ok=True)
    summary.json_path = str(out_dir / f"{summary.run_id}.json")
    Path(summary.json_path).write_text(dumps(summary))
    if args.json == "-":
        print(dumps(summary))
    else:
        if args.json:
            Path(args.json).write_text(dumps(summary))
        print(render_table(summary))
        skipped = [a for a in destructive if a not in areas]
        if skipped:
            print(f"\nnot run (destructive, name them with --areas and opt in): {', '.join(skipped)}")
        print(f"\nresults: {summary.json_path}")
        print(f"dagster: run {summary.run_id} is in DAGSTER_HOME={home}; browse it with `make dev`")
        print(f"report: {summary.report_path or 'not written (see the run in Dagster)'}")
    return exit_code(summary, args.fail_on_regression)


def exit_code(summary: RunSummary, fail_on_regression: bool) -> int:
    from regression_pipelines.results import Verdict

    if summary.run_status != "SUCCESS" or summary.verdict in (Verdict.FAILED, Verdict.ERROR):
        return EXIT_FAILED
    if fail_on_regression and summary.verdict is Verdict.REGRESSED:
        return EXIT_FAILED
    return EXIT_OK
