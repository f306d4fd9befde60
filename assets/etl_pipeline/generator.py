"""Seeded source of jobs: several tenants with skewed volumes, issue-tracker-like payloads, some malformed.

Each job knows whether it is valid, so the oracle can tell a correct rejection from a wrong one.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

KNOWN_TENANTS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "tyrell")
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


def tenant_names(count: int) -> list[str]:
    return [KNOWN_TENANTS[i] if i < len(KNOWN_TENANTS) else f"tenant{i:02d}" for i in range(count)]


def tenant_weights(count: int) -> list[float]:
    """Zipf-like skew (1, 1/2, 1/3, ...): the first tenant sends about half the jobs of four."""
    return [1.0 / (rank + 1) for rank in range(count)]


def generate(jobs: int, tenants: int, malformed_rate: float, seed: int, poison_rate: float = 0.0) -> list[Job]:
    """`jobs` jobs in publish order; `poison_rate` adds bodies that are not even text (binary garbage)."""
    rng = random.Random(seed)
    names = tenant_names(tenants)
    weights = tenant_weights(tenants)
    counters = dict.fromkeys(names, 0)
    out = []
    for index in range(jobs):
        tenant = rng.choices(names, weights)[0]
        counters[tenant] += 1
        record = _record(rng, tenant, counters[tenant])
        roll = rng.random()
        if roll < poison_rate:
            body, valid = bytes(rng.getrandbits(8) for _ in range(64)) + b"\xff\xfe", False
        elif roll < poison_rate + malformed_rate:
            body, valid = _malformed(rng, record), False
        else:
            body, valid = json.dumps(record).encode(), True
        out.append(Job(f"j{seed}-{index:08d}", tenant, body, valid))
    return out


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


def _malformed(rng: random.Random, record: dict[str, object]) -> bytes:
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
        return json.dumps(bad).encode()[:-7]  # truncated JSON
    return json.dumps(bad).encode()
