"""The two pure stages before loading: extract (bytes -> JSON object) and transform (validate, normalise).

Each returns the next stage's record or raises `InvalidJob` with a reason that ends up in `error_details`.
"""

from __future__ import annotations

import json
from typing import Any

from assets.etl_pipeline.generator import MAX_TITLE, STATUSES

MAX_BODY_BYTES = 4_096
REQUIRED = {"key": str, "title": str, "status": str, "priority": int, "story_points": int, "labels": list}


class InvalidJob(ValueError):
    """A job the pipeline refuses: it goes to the dead-letter queue and `failed_jobs` with this reason."""


def extract(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise InvalidJob(f"oversized: {len(body)} bytes > {MAX_BODY_BYTES}")
    try:
        record = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidJob(f"not text: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise InvalidJob(f"not JSON: {exc.msg} at char {exc.pos}") from None
    except RecursionError:  # issue 19: nesting past CPython's recursion limit crashed the worker, a crash loop
        raise InvalidJob("not JSON: nested deeper than the parser's recursion limit") from None
    except ValueError as exc:  # e.g. an integer past sys.get_int_max_str_digits()
        raise InvalidJob(f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise InvalidJob(f"not an object: {type(record).__name__}")
    return record


def transform(record: dict[str, Any], drop_field: str | None = None) -> dict[str, Any]:
    """Validated, normalised row values; `drop_field` is the injected bug (a field silently lost)."""
    for name, kind in REQUIRED.items():
        if name not in record:
            raise InvalidJob(f"missing field {name!r}")
        value = record[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidJob(f"field {name!r} must be {kind.__name__}, got {type(value).__name__}")
    if len(record["title"]) > MAX_TITLE:
        raise InvalidJob(f"field 'title' longer than {MAX_TITLE} chars ({len(record['title'])})")
    for name in ("key", "title"):
        if "\x00" in record[name]:  # PostgreSQL text holds no NUL: the whole batch's insert would fail
            raise InvalidJob(f"field {name!r} contains NUL")
    if any("\x00" in str(label) for label in record["labels"]):
        raise InvalidJob("field 'labels' contains NUL")
    if record["status"] not in STATUSES:
        raise InvalidJob(f"field 'status' {record['status']!r} not in {STATUSES}")
    if not 1 <= record["priority"] <= 5:
        raise InvalidJob(f"field 'priority' {record['priority']} outside 1..5")
    if not 0 <= record["story_points"] <= 100:
        raise InvalidJob(f"field 'story_points' {record['story_points']} outside 0..100")
    row = {
        "issue_key": record["key"].strip().upper(),
        "title": " ".join(record["title"].split()),
        "status": record["status"],
        "priority": record["priority"],
        "story_points": record["story_points"],
        "labels": sorted({str(label).lower() for label in record["labels"]}),
    }
    if drop_field is not None:
        row.pop(drop_field)
    return row
