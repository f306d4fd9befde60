"""Point-query latency through HAProxy's read-write port and on the leader itself, next to pgbench's.

The harness sample is one connection running a prepared `SELECT 1` back to back through libpq, timed around
the round trip only; the calibration is pgbench running the same statement against the same ports at the same
concurrency (1), right before. Their ratio says what the harness adds; rw versus leader says what HAProxy adds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from regression_pipelines import calibration
from regression_pipelines.calibration import Calibration
from regression_pipelines.measure import percentile
from regression_pipelines.results import Metric
from regression_pipelines.timed_calls import PreparedQuery
from resources.patroni.client import ClusterTarget

STATEMENT = "SELECT 1"


@dataclass
class RouteLatency:
    """One route's harness sample (ms per statement) and the instrument's reading of the same route."""

    route: str  # "rw" (HAProxy read-write port) or "leader" (the leader's own port)
    port: int
    samples_ms: list[float] = field(default_factory=list)
    calibration: Calibration | None = None
    error: str = ""

    def metrics(self) -> list[Metric]:
        if not self.samples_ms:
            return [] if self.calibration is None else self.calibration.metrics()
        p50 = percentile(self.samples_ms, 50)
        figures = [
            Metric(f"health.{self.route}_select_p50_ms", p50, "ms", samples=len(self.samples_ms)),
            Metric(
                f"health.{self.route}_select_p99_ms",
                percentile(self.samples_ms, 99),
                "ms",
                samples=len(self.samples_ms),
            ),
        ]
        if self.calibration is not None:
            figures += self.calibration.metrics({f"health.{self.route}_select_p50": p50})
        return figures


def sample(target: ClusterTarget, port: int, statements: int) -> list[float]:
    """`statements` round trips of `SELECT 1` on one connection, prepared like pgbench -M prepared and run
    through libpq directly (regression_pipelines.timed_calls), so the figure is the route's, not psycopg's."""
    with target.connect(port) as conn:
        query = PreparedQuery(conn, STATEMENT)
        return [query.run()[1] / 1e6 for _ in range(statements)]


def measure(
    target: ClusterTarget, leader_port: int, statements: int, calibrate: bool, seconds: float
) -> list[RouteLatency]:
    """Calibrate then sample each route; a route that fails keeps its error (counted by the caller)."""
    routes = [RouteLatency("rw", target.rw_port), RouteLatency("leader", leader_port)]
    for route in routes:
        if calibrate:
            route.calibration = calibration.pgbench(
                target.host,
                route.port,
                target.user,
                target.dbname,
                STATEMENT + ";\n",
                concurrency=1,
                seconds=seconds,
                password=target.password,
                instrument=f"pgbench_{route.route}_select",
            )
        try:
            route.samples_ms = sample(target, route.port, statements)
        except psycopg.Error as exc:
            route.error = target.mask(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return routes
