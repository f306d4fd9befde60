"""`regress lab up | down [SERVICE...] [--purge] | status [--json] | ctl SERVICE -- ARGS`: thin argparse glue
over lab.lifecycle and each service's admin tool."""

from __future__ import annotations

import argparse
import json
import sys

from regression_pipelines.lab import lifecycle
from regression_pipelines.lab.errors import LabError
from regression_pipelines.lab.settings import LabSettings


def cmd_up(args: argparse.Namespace) -> int:
    try:
        lifecycle.up(LabSettings.from_env(), names=args.services or None)
    except (LabError, ValueError) as exc:  # ValueError: a malformed REGRESS_LAB_* setting
        print(f"regress lab up: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    try:
        return lifecycle.down(LabSettings.from_env(), purge=args.purge, names=args.services or None)
    except (LabError, ValueError) as exc:
        print(f"regress lab down: {exc}", file=sys.stderr)
        return 1


def cmd_status(args: argparse.Namespace) -> int:
    rows = lifecycle.status_rows(LabSettings.from_env())
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(lifecycle.format_table(rows))
    return 0 if lifecycle.healthy(rows) else 1


def cmd_ctl(args: argparse.Namespace) -> int:
    from regression_pipelines.lab.ctl import run_admin_tool

    extra = list(args.args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    try:
        return run_admin_tool(LabSettings.from_env(), args.service, extra)
    except (LabError, ValueError) as exc:
        print(f"regress lab ctl: {exc}", file=sys.stderr)
        return 2


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `lab` with up/down/status to the `regress` parser."""
    lab = subparsers.add_parser("lab", help="start, stop and check the local service lab")
    sub = lab.add_subparsers(dest="lab_command", required=True)
    up = sub.add_parser("up", help="start the lab's services (and what they need) and wait until usable")
    up.add_argument("services", nargs="*", metavar="SERVICE", help="only these, e.g. rabbitmq (default: all)")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="stop what the lab started (named services and their dependents only)")
    down.add_argument("services", nargs="*", metavar="SERVICE", help="only these, e.g. patroni (default: all)")
    down.add_argument("--purge", action="store_true", help="also delete the lab dir's data (whole lab only)")
    down.set_defaults(func=cmd_down)
    status = sub.add_parser("status", help="health of each lab service; exit 1 if one is unhealthy")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)
    ctl = sub.add_parser(
        "ctl",
        help="run a service's own admin tool against the lab's instance (psql, redis-cli, rabbitmqctl, "
        "patronictl, etcdctl, amtool, epmd)",
        description="e.g. `regress lab ctl rabbitmq -- list_queues`, `regress lab ctl postgres -- -c 'SELECT 1'`, "
        "`regress lab ctl patroni -- list`; without ARGS a harmless status command",
    )
    ctl.add_argument("service", metavar="SERVICE")
    ctl.add_argument("args", nargs=argparse.REMAINDER, metavar="-- ARGS")
    ctl.set_defaults(func=cmd_ctl)


def main(argv: list[str] | None = None) -> int:
    """Run the lab commands without the rest of `regress` (handy while other sub-commands land)."""
    parser = argparse.ArgumentParser(prog="regress")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
