"""The ETL workload's shapes and adversarial values, and the coverage account of one run.

A shape is one kind of published job (a valid job, a body at a size limit, JSON nested past the parser's
recursion limit, a job id two tenants share, ...); the account says which shapes the run published and what the
pipeline did with each: loaded (accepted), written to failed_jobs (refused: by design for invalid shapes,
unexpectedly for valid ones), or neither (an error: lost). Values are drawn from the kit's domains
(kit.generate.values) narrowed to a job's fields; `expected_valid` is the pipeline's input contract written
down on its own (not the transform's code), so a transform that accepts or refuses the wrong thing is caught.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from regression_pipelines.kit.generate import INT64, TEXT, TIMESTAMP, Coverage, Domain, Shape, ValueClass

if TYPE_CHECKING:
    from assets.etl_pipeline.generator import Job

WORKLOAD_VERSION = 2  # 2: adversarial values, edge shapes, ids shared across tenants, republished jobs
MAX_BODY_BYTES = 4_096  # the pipeline's body limit (transform.MAX_BODY_BYTES; a unit test ties them)
MAX_TITLE = 200
FRAME_BODY = 131_072 - 8  # pika/RabbitMQ default frame_max minus the frame header: larger bodies span frames
STATUSES = ("open", "in_progress", "review", "done")
REQUIRED = {"key": str, "title": str, "status": str, "priority": int, "story_points": int, "labels": list}
INVALID = "invalid"  # the refusal code: the pipeline wrote the job to failed_jobs
NOT_CONFIRMED = "not_confirmed"  # the broker nacked the publish

VALID = Shape("valid_job", "publish")
DUPLICATE_ID = Shape("duplicate_id_across_tenants", "publish")
REPUBLISHED = Shape("republished", "redelivery", frozenset({INVALID}))  # an invalid job published again
ADVERSARIAL_VALID = Shape("adversarial_values_valid", "publish")
ADVERSARIAL_INVALID = Shape("adversarial_values_invalid", "publish", frozenset({INVALID}))
POISON = Shape("poison_binary", "publish", frozenset({INVALID}))
MALFORMED = tuple(
    Shape(f"malformed_{kind}", "publish", frozenset({INVALID}))
    for kind in ("missing_field", "wrong_type", "oversized", "not_json", "out_of_range")
)
EMPTY_BODY = Shape("body_empty", "size_limit", frozenset({INVALID}))
ONE_BYTE = Shape("body_one_byte", "size_limit", frozenset({INVALID}))
AT_LIMIT = Shape("body_at_limit", "size_limit")  # exactly MAX_BODY_BYTES: valid
PAST_LIMIT = Shape("body_past_limit", "size_limit", frozenset({INVALID}))
DEEP_NESTING = Shape("json_nested_past_recursion_limit", "parser", frozenset({INVALID}))
TITLE_AT_LIMIT = Shape("title_at_limit", "size_limit")
TITLE_PAST_LIMIT = Shape("title_past_limit", "size_limit", frozenset({INVALID}))
NUL_IN_TEXT = Shape("nul_in_text", "parser", frozenset({INVALID}))  # PostgreSQL text and jsonb hold no NUL
FRAME_BELOW = Shape("body_frame_minus_1", "frame", frozenset({INVALID}))
FRAME_AT = Shape("body_frame_exact", "frame", frozenset({INVALID}))
FRAME_ABOVE = Shape("body_frame_plus_1", "frame", frozenset({INVALID}))
EDGE_SHAPES = (EMPTY_BODY, ONE_BYTE, AT_LIMIT, PAST_LIMIT, DEEP_NESTING, TITLE_AT_LIMIT, TITLE_PAST_LIMIT, NUL_IN_TEXT)
FRAME_SHAPES = (FRAME_BELOW, FRAME_AT, FRAME_ABOVE)
SHAPES = (VALID, DUPLICATE_ID, REPUBLISHED, ADVERSARIAL_VALID, ADVERSARIAL_INVALID, POISON, *MALFORMED,
          *EDGE_SHAPES, *FRAME_SHAPES)  # fmt: skip
BY_NAME = {s.name: s for s in SHAPES}

# Field domains: the kit's, narrowed or extended to what a job carries.
TITLE = Domain(
    "title",
    (
        *TEXT.without("long", "nul").classes,
        ValueClass("at_limit", lambda r: _unicode_text(r, MAX_TITLE)),
        ValueClass("past_limit", lambda r: _unicode_text(r, MAX_TITLE + 1)),
    ),
)
KEY = TEXT.without("long")  # NUL included: refused (PostgreSQL text holds none)
STATUS = Domain(
    "status",
    (
        ValueClass("known", lambda r: r.choice(STATUSES)),
        ValueClass("case", lambda r: r.choice(STATUSES).upper()),
        ValueClass("padded", lambda r: f" {r.choice(STATUSES)} "),
        ValueClass("null_like", lambda r: r.choice(("NULL", "None", "null", ""))),
    ),
)
_NUMBER_EDGES = (
    ValueClass("bound_low", lambda r: r.choice((0, 1))),
    ValueClass("bound_high", lambda r: r.choice((5, 6, 100, 101))),
    ValueClass("float_integral", lambda r: r.choice((1.0, 3.0, -0.0))),
    ValueClass("non_finite", lambda r: r.choice((math.nan, math.inf, -math.inf))),
    ValueClass("beyond_int64", lambda r: r.choice((2**64, -(2**64) - 1, 10**40))),
    ValueClass("bool", lambda r: r.choice((True, False))),
    ValueClass("numeric_text", lambda r: r.choice(("3", "1e3", "NaN"))),
)
PRIORITY = Domain("priority", (*INT64.classes, *_NUMBER_EDGES))
POINTS = Domain("story_points", (*INT64.classes, *_NUMBER_EDGES))
LABEL = TEXT.without("long")
DUE = TIMESTAMP  # carried in the payload; the pipeline stores no payload timestamp (see the README)
DOMAINS = (TITLE, KEY, STATUS, PRIORITY, POINTS, LABEL, DUE)


def _unicode_text(rng: random.Random, length: int) -> str:
    """`length` code points mixing ASCII and multi-byte ones (a byte-counting limit would miscount them)."""
    alphabet = "abcxyz Ωß日本é"
    return "".join(rng.choice(alphabet) for _ in range(length))


def _draw(domain: Domain, rng: random.Random, used: list[tuple[str, str]]) -> Any:
    name, value = domain.drawn(rng)
    used.append((domain.name, name))
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _has_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):  # labels: the transform stores str(label); only a string label can carry one
        return any(isinstance(v, str) and "\x00" in v for v in value)
    return False


def expected_valid(record: object, body: bytes) -> bool:
    """The pipeline's input contract: a JSON object of at most MAX_BODY_BYTES with every required field of its
    type, title at most MAX_TITLE code points, a known status, priority 1..5, story points 0..100, and no NUL
    in any stored text (key, title, labels)."""
    if len(body) > MAX_BODY_BYTES or not isinstance(record, dict):
        return False
    for name, kind in REQUIRED.items():
        value = record.get(name)
        if name not in record or (not _is_int(value) if kind is int else not isinstance(value, kind)):
            return False
    return (
        len(record["title"]) <= MAX_TITLE
        and record["status"] in STATUSES
        and 1 <= record["priority"] <= 5
        and 0 <= record["story_points"] <= 100
        and not any(_has_nul(record[f]) for f in ("key", "title", "labels"))
    )


def _dumps(rng: random.Random, record: dict[str, Any]) -> bytes:
    """JSON as a producer would send it: ASCII-escaped or raw UTF-8 (both are valid JSON)."""
    return json.dumps(record, ensure_ascii=rng.random() < 0.5).encode()


def adversarial(rng: random.Random, job_id: str, tenant: str, number: int) -> Job:
    """A record whose fields are drawn from the adversarial domains; valid or not as the contract says."""
    from assets.etl_pipeline.generator import Job

    used: list[tuple[str, str]] = []
    record: dict[str, Any] = {
        "key": _draw(KEY, rng, used),
        "title": _draw(TITLE, rng, used),
        "status": rng.choice(STATUSES),
        "priority": rng.randint(1, 5),
        "story_points": rng.randint(0, 100),
        "labels": [_draw(LABEL, rng, used) for _ in range(rng.randint(0, 3))],
        "due": _draw(DUE, rng, used).isoformat(),
        "reporter": f"user{number}@{tenant}",
    }
    for name, domain in (("status", STATUS), ("priority", PRIORITY), ("story_points", POINTS)):
        if rng.random() < 0.25:  # one field at a time off its valid range, mostly: the rest stays loadable
            record[name] = _draw(domain, rng, used)
    body = _dumps(rng, record)
    valid = expected_valid(json.loads(body), body)
    shape = ADVERSARIAL_VALID if valid else ADVERSARIAL_INVALID
    return Job(job_id, tenant, body, valid, shape.name, tuple(used))


def _base(rng: random.Random, tenant: str, number: int) -> dict[str, Any]:
    return {
        "key": f"K-{number}",
        "title": f"issue {number} of {tenant}",
        "status": rng.choice(STATUSES),
        "priority": rng.randint(1, 5),
        "story_points": rng.randint(0, 100),
        "labels": [],
    }


def _padded(record: dict[str, Any], size: int) -> bytes:
    """`record` as JSON of exactly `size` bytes (an ignored `pad` field takes up the rest)."""
    empty = json.dumps({**record, "pad": ""}).encode()
    if size < len(empty):
        raise ValueError(f"cannot pad a record of {len(empty)} bytes to {size}")
    return json.dumps({**record, "pad": "p" * (size - len(empty))}).encode()


def build(shape: Shape, rng: random.Random, job_id: str, tenant: str, number: int) -> Job:
    """One job of an edge shape (the size limits, the parser's recursion limit, NUL, frame sizes)."""
    from assets.etl_pipeline.generator import Job

    record = _base(rng, tenant, number)
    if shape is EMPTY_BODY:
        body = b""
    elif shape is ONE_BYTE:
        body = rng.choice((b"{", b"1", b" ", b"\x00"))
    elif shape is AT_LIMIT:
        body = _padded(record, MAX_BODY_BYTES)
    elif shape is PAST_LIMIT:
        body = _padded(record, MAX_BODY_BYTES + 1)
    elif shape is DEEP_NESTING:  # well under the size limit, past CPython's recursion limit (1000)
        depth = rng.choice((1_100, 1_500, 2_000))
        body = json.dumps({**record, "labels": "LABELS"}).encode().replace(b'"LABELS"', b"[" * depth + b"]" * depth)
    elif shape is TITLE_AT_LIMIT:
        body = _dumps(rng, {**record, "title": _unicode_text(rng, MAX_TITLE)})
    elif shape is TITLE_PAST_LIMIT:
        body = _dumps(rng, {**record, "title": _unicode_text(rng, MAX_TITLE + 1)})
    elif shape is NUL_IN_TEXT:
        field = rng.choice(("title", "key"))
        body = _dumps(rng, {**record, field: f"a\x00{record[field]}"})
    elif shape in FRAME_SHAPES:
        size = FRAME_BODY + {FRAME_BELOW.name: -1, FRAME_AT.name: 0, FRAME_ABOVE.name: 1}[shape.name]
        body = _padded(record, size)
    else:
        raise ValueError(f"no builder for shape {shape.name!r}")
    try:
        parsed: object = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    valid = expected_valid(parsed, body)
    if valid != (INVALID not in shape.by_design):
        raise AssertionError(f"shape {shape.name}: built a job whose validity ({valid}) contradicts the shape")
    return Job(job_id, tenant, body, valid, shape.name)


# -- the coverage account -----------------------------------------------------------------------------------------
def account(
    jobs: Iterable[Job],
    produced: Mapping[tuple[str, str], object],
    loaded: Iterable[tuple[str, str]],
    failed: Iterable[tuple[str, str]],
) -> Coverage:
    """Per published job: accepted (loaded), refused (in failed_jobs: by design for an invalid shape), refused
    by the broker (no confirm), or an error (neither loaded nor failed). A job published again counts once more
    as `republished`. Keys are (tenant, job id)."""
    coverage = Coverage()
    coverage.declare(SHAPES, {d.name: d.class_names for d in DOMAINS})
    loaded_keys, failed_keys = set(loaded), set(failed)
    seen: set[tuple[str, str]] = set()
    for job in jobs:
        shape = BY_NAME.get(job.shape) or Shape(job.shape, "publish")
        if job.key in seen:
            shape = REPUBLISHED
        seen.add(job.key)
        for domain, value_class in job.values:
            coverage.value(domain, value_class)
        if job.key not in produced:
            coverage.op(shape, NOT_CONFIRMED)
        elif job.key in loaded_keys:
            coverage.op(shape, None if job.valid else "loaded_invalid")
        elif job.key in failed_keys:
            coverage.op(shape, "failed_valid" if job.valid else INVALID)
        else:
            coverage.op(shape, error=True)
    return coverage
