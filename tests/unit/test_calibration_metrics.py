"""What a calibration reading records: judged instrument p50, info ratios, only an availability flag when absent."""

from __future__ import annotations

import math

from regression_pipelines.calibration import Calibration
from regression_pipelines.results import MetricKind


def test_an_available_reading_records_p50_judged_and_ratios_as_info() -> None:
    reading = Calibration("redis_get", concurrency=4, p50_ms=0.05, p99_ms=0.4, ops=10_000)
    figures = {m.name: m for m in reading.metrics({"cache_aside.cache_read_p50": 0.5, "idle.p50": math.nan})}
    assert figures["calibration.redis_get_p50_ms"].kind is MetricKind.PERFORMANCE
    assert figures["calibration.redis_get_p50_ms"].samples == 10_000
    assert figures["calibration.redis_get_p99_ms"].kind is MetricKind.INFO
    ratio = figures["calibration.cache_aside.cache_read_p50_ratio"]
    assert ratio.kind is MetricKind.INFO and math.isclose(ratio.value, 10.0)
    assert "calibration.idle.p50_ratio" not in figures  # nothing measured, no ratio invented
    assert figures["calibration.redis_get_available"].value == 1


def test_an_unavailable_reading_records_only_that_it_is_unavailable() -> None:
    reading = Calibration("pgbench_select", concurrency=1, reason="pgbench not found")
    assert not reading.available
    assert [(m.name, m.value) for m in reading.metrics({"x.p50": 1.0})] == [("calibration.pgbench_select_available", 0)]
    assert reading.describe() == "pgbench_select: unavailable (pgbench not found)"
