"""Regression detection: pure functions over a metric's history (no Dagster, no I/O).

`evaluate_latest` judges the newest run online; `find_change_points` segments a full history and names
the first bad run of every step. Both take a `MetricPolicy` (direction, minimum relevant change, SLOs,
the quantile a percentile metric is); `evaluate_latest` also takes per-run sample counts (`samples.py`).
"""

from regression_pipelines.detection.changepoints import find_change_points
from regression_pipelines.detection.model import ChangePoint, MetricPolicy, Severity, Status, Verdict
from regression_pipelines.detection.online import evaluate_latest
from regression_pipelines.results import Direction

__all__ = [
    "ChangePoint",
    "Direction",
    "MetricPolicy",
    "Severity",
    "Status",
    "Verdict",
    "evaluate_latest",
    "find_change_points",
]
