"""Seeded source of jobs that searches the input space instead of walking one path.

Several tenants with skewed volumes (names with unicode, quotes, spaces and NULL-like text among them),
issue-tracker-like payloads whose fields are drawn from the kit's adversarial value domains, bodies at the size
limits (empty, 1 byte, exactly the pipeline's body limit and one past it, around the AMQP frame size in the deep
profile), JSON nested past the parser's recursion limit, job ids that two tenants both use, and jobs the
producer publishes twice. Each job knows whether it is valid (decided here, from how it was built, never by
running the pipeline's own transform), its shape and the value classes it used, so the oracle tells a correct
rejection from a wrong one and the coverage account says what the run reached. Same seed, same settings: the
same jobs, byte for byte.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from assets.etl_pipeline import shapes

# Tenant ids: plain names first, then the edges (unicode, quotes, spaces, NULL-like text), interleaved so the
# quick profile's four tenants already include a unicode and a quoted id.
TENANT_POOL = (
    "acme",
    "Ünïcødé-租户",
    "globex",
    'o\'brien "&" co',
    "initech",
    " spaced tenant ",
    "NULL",
    "umbrella",
    "None",
    "🙂👩‍💻",
    "hooli",
    "e\u0301clair",
    "stark",
    "Жук\u200b",
    "wayne",
    "%_\\",
)
KNOWN_TENANTS = TENANT_POOL  # the former name
STATUSES = ("open", "in_progress", "review", "done")
LABELS = ("bug", "feature", "ops", "ui", "db", "security", "perf", "docs")
MAX_TITLE = 200
MALFORMED_KINDS = ("missing_field", "wrong_type", "oversized", "not_json", "out_of_range")


@dataclass(frozen=True)
class Job:
    job_id: str
    tenant: str
    body: bytes
    valid: bool
    shape: str = shapes.VALID.name
    values: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # (domain, class) of each drawn value

    @property
    def key(self) -> tuple[str, str]:
        """A job's identity: a job id is the tenant's own, so two tenants may use the same one."""
        return (self.tenant, self.job_id)


def tenant_names(count: int) -> list[str]:
    return [TENANT_POOL[i] if i < len(TENANT_POOL) else f"tenant{i:02d}" for i in range(count)]


def tenant_weights(count: int) -> list[float]:
    """Zipf-like skew (1, 1/2, 1/3, ...): the first tenant sends about half the jobs of four."""
    return [1.0 / (rank + 1) for rank in range(count)]


def generate(
    jobs: int,
    tenants: int,
    malformed_rate: float,
    seed: int,
    poison_rate: float = 0.0,
    adversarial_rate: float = 0.0,
    duplicate_id_rate: float = 0.0,
    republish_rate: float = 0.0,
    frame_bodies: bool = False,
    only: Sequence[int] | None = None,
) -> list[Job]:
    """`jobs` jobs in publish order (`only`: just these indexes of them, a shrunk case).

    `poison_rate`: bodies that are not even text; `malformed_rate`: classic invalid payloads; `adversarial_rate`:
    jobs drawn from the adversarial shapes (sizes, nesting, edge values); `duplicate_id_rate`: valid jobs reusing
    another tenant's job id; `republish_rate`: a job published again later (the producer's at-least-once);
    `frame_bodies`: bodies around the AMQP frame size (deep profile). The size-limit shapes are placed at fixed
    early indexes when adversarial_rate > 0, so every run with adversarial values reaches each of them."""
    rng = random.Random(seed)
    names = tenant_names(tenants)
    weights = tenant_weights(tenants)
    counters = dict.fromkeys(names, 0)
    used: dict[str, list[str]] = {name: [] for name in names}  # job ids each tenant used so far
    forced = list(shapes.EDGE_SHAPES) + (list(shapes.FRAME_SHAPES) if frame_bodies else []) if adversarial_rate else []
    out: list[Job] = []
    for index in range(jobs):
        job_rng = random.Random(f"{seed}:{index}")  # each job from its own stream: a subset replays the same jobs
        tenant = rng.choices(names, weights)[0]
        counters[tenant] += 1
        job_id = f"j{seed}-{index:08d}"
        roll = rng.random()
        slot = index // 7 if index % 7 == 3 else -1  # the edges at indexes 3, 10, 17, ...
        if 0 <= slot < len(forced):
            job = shapes.build(forced[slot], job_rng, job_id, tenant, counters[tenant])
        elif out and roll < republish_rate:
            job = out[int(job_rng.random() * len(out))]  # the same message again: same id, tenant and body
        elif roll < republish_rate + duplicate_id_rate and _others(used, tenant):
            other_ids = _others(used, tenant)
            job_id = other_ids[int(job_rng.random() * len(other_ids))]
            record = _record(job_rng, tenant, counters[tenant])
            job = Job(job_id, tenant, json.dumps(record).encode(), True, shapes.DUPLICATE_ID.name)
        elif roll < republish_rate + duplicate_id_rate + poison_rate:
            job = Job(job_id, tenant, job_rng.randbytes(64) + b"\xff\xfe", False, shapes.POISON.name)
        elif roll < republish_rate + duplicate_id_rate + poison_rate + malformed_rate:
            kind, body = _malformed(job_rng, _record(job_rng, tenant, counters[tenant]))
            job = Job(job_id, tenant, body, False, f"malformed_{kind}")
        elif roll < republish_rate + duplicate_id_rate + poison_rate + malformed_rate + adversarial_rate:
            job = shapes.adversarial(job_rng, job_id, tenant, counters[tenant])
        else:
            job = Job(job_id, tenant, json.dumps(_record(job_rng, tenant, counters[tenant])).encode(), True)
        used[job.tenant].append(job.job_id)
        out.append(job)
    if only is not None:
        keep = set(only)
        return [job for index, job in enumerate(out) if index in keep]
    return out


def _others(used: dict[str, list[str]], tenant: str) -> list[str]:
    """Job ids other tenants used that this tenant has not (reusing its own would be a republish)."""
    mine = set(used.get(tenant, ()))
    return sorted({j for t, ids in used.items() if t != tenant for j in ids[-64:]} - mine)


def _record(rng: random.Random, tenant: str, number: int) -> dict[str, object]:
    return {
        "key": f"{tenant[:4].upper()}-{number}",
        "title": f"issue {number} of {tenant}",
        "status": rng.choice(STATUSES),
        "priority": rng.randint(1, 5),
        "story_points": rng.choice((0, 1, 2, 3, 5, 8, 13, 21)),
        "labels": rng.sample(LABELS, rng.randint(0, 3)),
        "reporter": f"user{rng.randint(1, 50)}@{tenant}.example",
    }


def _malformed(rng: random.Random, record: dict[str, object]) -> tuple[str, bytes]:
    kind = rng.choice(MALFORMED_KINDS)
    bad = dict(record)
    if kind == "missing_field":
        del bad[rng.choice(("title", "status", "priority"))]
    elif kind == "wrong_type":
        bad["priority"] = "urgent"
    elif kind == "oversized":
        bad["title"] = "x" * (MAX_TITLE * 50)
    elif kind == "out_of_range":
        bad["story_points"] = -rng.randint(1, 100)
    else:
        return kind, json.dumps(bad).encode()[:-7]  # truncated JSON
    return kind, json.dumps(bad).encode()


def for_config(config: Any, poison_rate: float = 0.0) -> list[Job]:
    """The run's jobs from its settings (EtlConfig, the profile filled in): same seed, same jobs."""
    return generate(
        int(config.jobs),
        int(config.tenants),
        config.malformed_rate,
        int(config.seed),
        poison_rate,
        adversarial_rate=float(config.adversarial_rate or 0.0),
        duplicate_id_rate=float(config.duplicate_id_rate or 0.0),
        republish_rate=float(config.republish_rate or 0.0),
        frame_bodies=bool(config.frame_bodies),
        only=config.only_jobs,
    )
