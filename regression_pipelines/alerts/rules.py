"""Which alert a verdict, an invariant or a failed run becomes: names, labels and the figures people read.

Identifying labels (alertname, area, metric | invariant | job) are built in one place, so what fires and
what later resolves it always match.
"""

from __future__ import annotations

from regression_pipelines.alerts.model import Alert
from regression_pipelines.errors import mask_secrets
from regression_pipelines.evaluation import AssetEvaluation, MetricVerdict
from regression_pipelines.results import Invariant

PERFORMANCE_REGRESSION = "PerformanceRegression"
INVARIANT_FAILED = "InvariantFailed"
RUN_FAILED = "RegressionRunFailed"
INVARIANT_SEVERITY = "critical"  # a broken promise (stale reads, lost writes) outranks any slowdown


def metric_labels(area: str, metric: str) -> dict[str, str]:
    return {"alertname": PERFORMANCE_REGRESSION, "area": area, "metric": metric}


def invariant_labels(area: str, invariant: str) -> dict[str, str]:
    return {"alertname": INVARIANT_FAILED, "area": area, "invariant": invariant}


def run_labels(job: str) -> dict[str, str]:
    return {"alertname": RUN_FAILED, "job": job}


def regression_alert(evaluation: AssetEvaluation, mv: MetricVerdict, run_url: str) -> Alert:
    area = evaluation.asset_key.to_user_string()
    v = mv.verdict
    annotations = {
        "summary": f"{area}: {mv.describe()}",
        "description": v.recommendation,
        "latest": f"{v.latest:g}",
        "baseline": f"{v.baseline:g}" if v.baseline is not None else "n/a",
        "baseline_n": str(v.baseline_n),
        "change_pct": f"{v.change_pct:+.2f}",
        "unit": mv.metric.unit,
        "direction": mv.metric.direction.value,
        "status": v.status,
        "first_bad_run": mv.first_bad.label if mv.first_bad else "unknown",
        "run": evaluation.materialization.label,
        "run_url": run_url,
    }
    if v.p_value is not None:
        annotations["p_value"] = f"{v.p_value:.2g}"
    if mv.host is not None:  # server/host slower, or the client path: what the instruments and the host did
        annotations["host_context"] = mv.host.label
        annotations["host_context_detail"] = mv.host.describe()
    labels = {**metric_labels(area, mv.metric.name), "severity": v.severity}
    return Alert(labels=labels, annotations=annotations, generator_url=run_url)


def invariant_alert(evaluation: AssetEvaluation, invariant: Invariant, run_url: str) -> Alert:
    area = evaluation.asset_key.to_user_string()
    labels = {**invariant_labels(area, invariant.name), "severity": INVARIANT_SEVERITY}
    annotations = {
        "summary": f"{area}: invariant {invariant.name} failed",
        "description": mask_secrets(invariant.detail),
        "run": evaluation.materialization.label,
        "run_url": run_url,
    }
    return Alert(labels=labels, annotations=annotations, generator_url=run_url)


def run_failure_alert(job: str, run_id: str, message: str, run_url: str) -> Alert:
    labels = {**run_labels(job), "severity": "high"}
    annotations = {
        "summary": f"run {run_id} of {job} failed",
        "description": mask_secrets(message)[:2000],
        "run": run_id,
        "run_url": run_url,
    }
    return Alert(labels=labels, annotations=annotations, generator_url=run_url)
