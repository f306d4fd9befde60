"""`regress lab ctl SERVICE -- ARGS`: the service's own admin tool, aimed at the lab's instance with the
environment it needs (rabbitmqctl with the lab node's name, cookie HOME, env file and epmd port, as the
rabbitmq user; psql with the lab role's password in PGPASSWORD; patronictl with a member's config; ...).

Why: the machine's own wrappers aim at the machine's default instance (`/usr/sbin/rabbitmqctl` switches HOME to
/var/lib/rabbitmq and misses the lab node's cookie), so a person debugging the lab needs the lab's settings.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from regression_pipelines.lab.binaries import SETPRIV
from regression_pipelines.lab.errors import LabError
from regression_pipelines.lab.service import AdminTool
from regression_pipelines.lab.services import all_services, get
from regression_pipelines.lab.settings import LabSettings


def command(s: LabSettings, service: str, args: Sequence[str]) -> tuple[list[str], dict[str, str], AdminTool]:
    """(argv, environment, tool) that `ctl` runs; raises LabError naming the services that have a tool."""
    svc = get(service)
    tool = svc.admin_tool(s)
    if tool is None:
        having = ", ".join(other.name for other in all_services() if other.admin_tool(s) is not None)
        raise LabError(f"{service} has no admin tool the lab can aim at it here; services that do: {having}")
    if not tool.binary.installed():
        raise LabError(f"{tool.binary.path} is not installed: apt-get install -y {tool.binary.package.split()[0]}")
    argv = [*tool.argv, *(args or tool.default_args)]
    if tool.user:
        argv = [str(SETPRIV.path), f"--reuid={tool.user}", f"--regid={tool.user}", "--init-groups", *argv]
    return argv, {**os.environ, **dict(tool.env)}, tool


def run_admin_tool(s: LabSettings, service: str, args: Sequence[str]) -> int:
    """Run it attached to this terminal (stdin, stdout, stderr); its exit code is ours."""
    argv, env, _ = command(s, service, args)
    return subprocess.run(argv, env=env, check=False).returncode
