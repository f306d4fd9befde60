"""One cache_coherence run with calibration, printed as one JSON object of its metrics (used by side_by_side).

PYTHONPATH=<a tree> .venv/bin/python benchmarks/fidelity/one_run.py '<CacheConfig overrides as JSON>'
Runs whichever `assets.cache_coherence` the import path finds first, so an exported older commit can be measured
side by side with the working tree.
"""

from __future__ import annotations

import json
import sys

from assets.cache_coherence import scenario
from assets.cache_coherence.config import CacheConfig
from regression_pipelines import calibration
from regression_pipelines.lab.settings import LabSettings
from resources.postgres import PostgresResource
from resources.redis import RedisResource


def main() -> None:
    if hasattr(scenario, "Services"):  # the supervised area (a tree with the kit): run it as the asset does
        from benchmarks.cache_coherence.lab_run import run_once

        result = run_once(json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))
        print(json.dumps({"metrics": {m.name: m.value for m in result.metrics},
                          "passed": {inv.name: inv.passed for inv in result.invariants}}))  # fmt: skip
        return
    lab = LabSettings.from_env()
    pg = PostgresResource(
        port=lab.postgres_port, user=lab.postgres_user, password=lab.postgres_password, dbname=lab.postgres_db
    )
    cache = RedisResource(port=lab.redis_port)
    config = CacheConfig(**json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))

    def calibrate(key: str, script: str, clients: int) -> list[calibration.Calibration]:
        return [
            calibration.redis_get(cache.host, cache.port, key, clients),
            calibration.pgbench(pg.host, pg.port, pg.user, pg.dbname, script, clients, password=pg.password),
        ]

    client = cache.client(pool_size=config.readers + config.writers + 4)
    result = scenario.run(config, pg.connect, client, calibrate)  # type: ignore[call-arg]  # an older tree
    print(
        json.dumps(
            {
                "metrics": {m.name: m.value for m in result.metrics},
                "passed": {inv.name: inv.passed for inv in result.invariants},
            }
        )
    )


if __name__ == "__main__":
    main()
