"""`regress serve [start] | stop [PROCESS...] | status [--json]`: thin argparse glue over serve.lifecycle."""

from __future__ import annotations

import argparse
import json
import sys

from regression_pipelines.lab.errors import LabError
from regression_pipelines.serve import lifecycle
from regression_pipelines.serve.topology import PROCESSES, ServeSettings


def cmd_start(args: argparse.Namespace) -> int:
    try:
        lifecycle.start(ServeSettings.from_env())
    except (LabError, ValueError) as exc:
        print(f"regress serve: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    try:
        lifecycle.stop(ServeSettings.from_env(), args.processes or None)
    except (LabError, ValueError) as exc:
        print(f"regress serve stop: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    rows = lifecycle.status_rows(ServeSettings.from_env())
    print(json.dumps(rows, indent=2) if args.json else lifecycle.format_table(rows))
    return 0 if all(r["healthy"] for r in rows) else 1


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `serve` to the `regress` parser; plain `regress serve` starts the topology."""
    serve = subparsers.add_parser(
        "serve", help="run Dagster's production topology here: code server, daemon, webserver on PostgreSQL"
    )
    serve.set_defaults(func=cmd_start)
    sub = serve.add_subparsers(dest="serve_command")
    sub.add_parser("start", help="start what is not running and wait until usable").set_defaults(func=cmd_start)
    stop = sub.add_parser("stop", help="stop what `regress serve` started (by PID)")
    stop.add_argument("processes", nargs="*", metavar="PROCESS", help=f"only these: {', '.join(PROCESSES)}")
    stop.set_defaults(func=cmd_stop)
    status = sub.add_parser("status", help="health of each process; exit 1 if one is unhealthy")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)
