"""Judges of one run, pure Python: the per-tenant conservation oracle (Jepsen total-queue style) and the
reconciliation of dead letters with `failed_jobs`.

produced = jobs whose publish the broker confirmed; each must end up loaded or failed, exactly once. A job is
keyed by (tenant, job id) (a job id is the tenant's own; two tenants may use the same one); plain ids work too.
lost = produced but neither loaded nor failed; unexpected = found but never attempted; duplicated = extra
rows for one job id; recovered = found although its publish was not confirmed (outcome unknown).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field

from regression_pipelines.results import Invariant

CONSERVATION = "conservation_per_tenant"
ISOLATION = "tenant_isolation"
DRAINED = "queues_drained"
DATA_QUALITY = "data_quality_gx"
INVARIANTS = (CONSERVATION, ISOLATION, DRAINED, DATA_QUALITY)
SOURCE_BATCH, LOADED_JOBS = "source_batch", "loaded_jobs"  # the area's stages: the input file, the loaded table
# Why the broker itself dead-lettered a message (x-death reason), in words for the failed check.
BROKER_DROPS = {"maxlen": "x-max-length overflow (drop-head)", "expired": "message TTL expired"}


def show_key(key: object) -> str:
    """A job key in words: `job id` (tenant) for a (tenant, job id) pair."""
    if isinstance(key, tuple) and len(key) == 2:
        return f"{key[1]} ({key[0]!r})"
    return str(key)


@dataclass
class TenantTally:
    produced: int = 0
    loaded: int = 0
    failed: int = 0
    lost: int = 0
    unexpected: int = 0
    duplicated: int = 0
    recovered: int = 0


@dataclass
class Conservation:
    tenants: dict[str, TenantTally] = field(default_factory=dict)
    lost_ids: list[Hashable] = field(default_factory=list)
    dropped_by_broker: Counter[str] = field(default_factory=Counter)
    misfiled: int = 0  # a valid job in failed_jobs, or an invalid one loaded
    recovered_rows: int = 0  # recovered jobs that were loaded (the rest of `recovered` failed)

    def total(self, name: str) -> int:
        return sum(getattr(t, name) for t in self.tenants.values())

    def rows_expected(self) -> int:
        """One row per loaded job, a recovered one included: at-least-once publishing may deliver a job whose
        confirm the connection lost, and that row is legitimate."""
        return self.total("loaded") + self.recovered_rows


def conserve(
    produced: Mapping[Hashable, tuple[str, bool]],
    attempted: Iterable[Hashable],
    loaded_ids: Iterable[Hashable],
    failed_ids: Iterable[Hashable],
    dead_letters: Iterable[tuple[str, str, str]],
) -> Conservation:
    """`produced`: confirmed job id -> (tenant, valid); `loaded_ids` one entry per row (duplicates kept)."""
    attempted_set = set(attempted)
    rows = Counter(loaded_ids)
    failed = set(failed_ids)
    out = Conservation()
    for job_id, (tenant, _valid) in produced.items():
        tally = out.tenants.setdefault(tenant, TenantTally())
        tally.produced += 1
        if job_id in rows:
            tally.loaded += 1
        elif job_id in failed:
            tally.failed += 1
        else:
            tally.lost += 1
            out.lost_ids.append(job_id)
    for job_id, count in rows.items():
        tenant = produced.get(job_id, ("?", True))[0]
        tally = out.tenants.setdefault(tenant, TenantTally())
        tally.duplicated += count - 1
        if job_id in failed and job_id in produced:
            tally.duplicated += 1  # loaded and failed: counted twice
    for job_id in set(rows) | failed:
        if job_id not in attempted_set:
            out.tenants.setdefault("?", TenantTally()).unexpected += 1
        elif job_id not in produced:
            out.tenants.setdefault("?", TenantTally()).recovered += 1
            out.recovered_rows += job_id in rows
    for job_id in rows:
        if job_id in produced and not produced[job_id][1]:
            out.misfiled += 1
    for job_id in failed:
        if job_id in produced and produced[job_id][1]:
            out.misfiled += 1
    lost = set(out.lost_ids)
    for job_id, tenant, reason in dead_letters:
        if (tenant, job_id) in lost or job_id in lost:
            out.dropped_by_broker[reason] += 1
    return out


def conservation_invariant(c: Conservation, unpublished: int = 0, batch: int = 0) -> Invariant:
    """`unpublished`: jobs of the batch (`batch` jobs) never sent or never confirmed when the run's time ran out:
    a run that published nothing must not pass for conserving nothing."""
    lost, unexpected, duplicated = c.total("lost"), c.total("unexpected"), c.total("duplicated")
    produced, loaded, failed = c.total("produced"), c.total("loaded"), c.total("failed")
    passed = lost == 0 and unexpected == 0 and duplicated == 0 and c.misfiled == 0 and unpublished == 0
    per_tenant = "; ".join(
        f"{name}: {t.produced} = {t.loaded} + {t.failed}" + (f" (lost {t.lost})" if t.lost else "")
        for name, t in sorted(c.tenants.items())
        if name != "?"
    )
    if passed:
        detail = f"produced = loaded + failed for every tenant ({per_tenant}); 0 lost, 0 duplicated"
    else:
        parts = []
        if unpublished:
            parts.append(f"{unpublished} of {batch} jobs never published with a confirm before max_seconds ran out")
        if lost:
            examples = ", ".join(show_key(k) for k in sorted(c.lost_ids, key=str)[:3])
            parts.append(f"{lost} lost (confirmed, never loaded nor failed; e.g. {examples})")
            for reason, count in sorted(c.dropped_by_broker.items()):
                words = BROKER_DROPS.get(reason, f"dead-lettered ({reason}) without a failed_jobs row")
                parts.append(f"{count} of them dropped by the broker: {words}")
            if (silent := lost - sum(c.dropped_by_broker.values())) > 0:
                parts.append(f"{silent} not dead-lettered by the broker")  # why: what the run observed, added later
        if duplicated:
            parts.append(f"{duplicated} duplicated rows (a redelivery loaded twice)")
        if unexpected:
            parts.append(f"{unexpected} unexpected (never attempted)")
        if c.misfiled:
            parts.append(f"{c.misfiled} misfiled (valid job failed, or invalid job loaded)")
        detail = "; ".join(parts) + (f" — per tenant: {per_tenant}" if per_tenant else "")
    facts = {
        "produced": produced,
        "loaded": loaded,
        "failed": failed,
        "lost": lost,
        "unexpected": unexpected,
        "duplicated": duplicated,
        "recovered": c.total("recovered"),
        "misfiled": c.misfiled,
        "unpublished": unpublished,
        **{f"dropped_by_broker.{r}": n for r, n in sorted(c.dropped_by_broker.items())},
    }
    return Invariant(CONSERVATION, passed, detail, facts)


def drained_invariant(
    depths: Mapping[str, int],
    rejected_ids: Iterable[str],
    failed_ids: Iterable[str],
) -> Invariant:
    """Work queues empty once every worker is gone (so nothing was left unacked either), and every job the
    pipeline rejected to the dead-letter queue has its failed_jobs row (and vice versa). A missing dead letter
    is a real loss; its cause is what the run observed on the broker (added by the scenario), never a guess."""
    left = {q: n for q, n in depths.items() if n}
    rejected, failed = set(rejected_ids), set(failed_ids)
    no_row, no_letter = rejected - failed, failed - rejected
    passed = not left and not no_row and not no_letter
    parts = []
    if left:
        parts.append(f"messages left in {left}")
    if no_row:
        parts.append(f"{len(no_row)} rejected to the DLQ without a failed_jobs row")
    if no_letter:
        parts.append(f"{len(no_letter)} failed_jobs rows without a dead letter")
    detail = (
        f"work queues empty after the workers stopped; {len(rejected)} dead letters = failed_jobs rows"
        if passed
        else "; ".join(parts)
    )
    return Invariant(DRAINED, passed, detail, {"left_in_queues": sum(left.values()), "dead_letters": len(rejected)})
