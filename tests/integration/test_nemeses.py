"""Nemeses beyond one run: a fault left by a harness killed mid-fault is healed by the next run. That every
nemesis ends in a verdict (and its service recovers) is the chaos sample's test (test_chaos_matrix.py): each
nemesis once, on the cheapest real area it applies to. A toy area per service (tests/chaos_areas.py) also ran
every nemesis once here: the same faults a second time (2 min of the suite), dropped for the sample."""

from __future__ import annotations

from pathlib import Path

import pytest

from regression_pipelines.lab import lifecycle
from regression_pipelines.lab.settings import LabSettings
from tests.chaos import run_cell
from tests.chaos_areas import TOYS, lab_resources


@pytest.fixture(scope="module")
def chaos_lab() -> LabSettings:
    settings = LabSettings.from_env()
    lifecycle.up(settings, ["postgres", "redis", "rabbitmq"], out=lambda _line: None)
    return settings


KILLED_MID_FAULT = """
import os, sys
from regression_pipelines.kit import nemeses
from regression_pipelines.kit.nemeses.base import Endpoint, Target
from regression_pipelines.kit.supervisor import Supervisor
from regression_pipelines.lab.settings import LabSettings
s = LabSettings.from_env()
target = Target("killed", {"redis": Endpoint("redis", "127.0.0.1", s.redis_port)}, Supervisor("killed"), True)
nemesis = nemeses.by_name("redis_maxmemory_noeviction")
nemesis.check(target)
print(nemesis.start(target), flush=True)
os._exit(9)  # the harness dies mid-fault: nothing heals it in this process
"""


def test_a_fault_left_by_a_killed_harness_is_healed_by_the_next_run(chaos_lab: LabSettings, tmp_path: Path) -> None:
    import subprocess
    import sys

    from regression_pipelines.kit.nemeses import journal
    from regression_pipelines.kit.nemeses.lab import redis_admin

    done = subprocess.run([sys.executable, "-c", KILLED_MID_FAULT], capture_output=True, text=True, timeout=60)
    assert done.returncode == 9 and "policy noeviction" in done.stdout, done.stderr[-500:]
    client = redis_admin(chaos_lab)
    try:
        assert client.config_get("maxmemory")["maxmemory"] != "0"  # still limited: the fault outlived its run
        assert journal.orphans(chaos_lab)
        outcome = run_cell(TOYS["redis"], "redis_pause", lab_resources(chaos_lab), tmp_path)
        assert outcome.good, outcome.row()
        assert client.config_get("maxmemory")["maxmemory"] == "0" and not journal.orphans(chaos_lab)
    finally:
        client.config_set("maxmemory", "0")
        client.close()
