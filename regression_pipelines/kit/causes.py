"""The root cause of an exception: the innermost one in its chain, with the frame of ours that raised it.

Why: a failure wrapped twice (a psycopg error inside a RuntimeError inside Dagster's step error) tells the user
nothing at the outer layer; the innermost exception and where our code met it do.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

from regression_pipelines.measure import error_text

# Frames in these folders are "ours": the place a failure is reported at is the last of them on the stack.
OWN_PACKAGES = ("assets", "regression_pipelines", "resources", "tests")
PLUMBING = ("regression_pipelines/kit/supervisor.py", "regression_pipelines/kit/run.py")  # never "where"


@dataclass(frozen=True)
class RootCause:
    """What a person needs to act on a failure: the innermost exception, its message, where we met it."""

    exception: str  # qualified class name, e.g. psycopg.errors.AdminShutdown
    message: str  # its first line
    where: str  # "assets/etl_pipeline/scenario.py:352 in _wait_until_settled", or ""
    raised_as: str = ""  # the outermost exception's class when it differs from the root's

    def describe(self) -> str:
        text = f"{self.exception}: {self.message}" if self.message else self.exception
        if self.where:
            text += f" (at {self.where})"
        if self.raised_as:
            text += f"; raised as {self.raised_as}"
        return text

    def facts(self) -> dict[str, str]:
        return {"exception": self.exception, "message": self.message, "where": self.where}


def chain(exc: BaseException) -> list[BaseException]:
    """The exception and those it was raised from or during, outermost first; loops are cut."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not s for s in seen):
        seen.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif current.__context__ is not None and not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return seen


def qualified_name(exc: BaseException) -> str:
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module in ("builtins", "__main__") else f"{module}.{kind.__qualname__}"


def first_line(exc: BaseException) -> str:
    """The message's first line and the causes it chains (delta-rs puts the cause under a generic first line)."""
    return error_text(exc)[:500]


def root_cause(exc: BaseException) -> RootCause:
    """The innermost exception of the chain, its first line, and the last frame of our code it passed."""
    links = chain(exc)
    root = links[-1]
    return RootCause(
        exception=qualified_name(root),
        message=first_line(root),
        where=_our_frame(root) or _our_frame(exc),
        raised_as=qualified_name(exc) if root is not exc else "",
    )


def _our_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    for frame in reversed(frames):
        parts = Path(frame.filename).parts
        for index, part in enumerate(parts):
            if part in OWN_PACKAGES and ".venv" not in parts and "site-packages" not in parts:
                path = "/".join(parts[index:])
                if path in PLUMBING:
                    break
                return f"{path}:{frame.lineno} in {frame.name}"
    return ""
