"""`--since 7d`: the time window a scorecard or report covers."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")


def parse_since(text: str) -> timedelta | None:
    """'90m', '24h', '7d', '2w' -> a duration; 'all' -> None (the whole history)."""
    if text.strip().lower() == "all":
        return None
    match = _PATTERN.match(text.lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"since: {text!r} is not a duration; use e.g. 90m, 24h, 7d, 2w or 'all'")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def window_start(since: str, now: datetime) -> datetime:
    """The start of the window ending `now` (the epoch for 'all')."""
    span = parse_since(since)
    return datetime.fromtimestamp(0, now.tzinfo) if span is None else now - span
