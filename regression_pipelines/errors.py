"""Errors that name what is wrong and how to fix it, with secrets masked."""

from __future__ import annotations

import re

_SECRET_IN_URL = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")
_SECRET_KV = re.compile(r"(?i)\b(password|passwd|pwd|token|secret)(\s*[=:]\s*)('[^']*'|\"[^\"]*\"|\S+)")


def mask_secrets(text: str, *secrets: str | None) -> str:
    """Hide passwords in DSNs/URLs, key=value pairs and any literal secret given."""
    masked = _SECRET_IN_URL.sub(r"\1***\3", text)
    masked = _SECRET_KV.sub(r"\1\2***", masked)
    for secret in secrets:
        if secret:
            masked = masked.replace(secret, "***")
    return masked


class ResourceConfigError(RuntimeError):
    """A resource could not be used because of its configuration (names resource, field and fix)."""

    def __init__(self, resource: str, field: str, problem: str, fix: str, *secrets: str | None) -> None:
        self.resource = resource
        self.field = field
        super().__init__(f"{resource}.{field}: {mask_secrets(problem, *secrets)}. Fix: {mask_secrets(fix, *secrets)}")


class UnsafeTargetError(RuntimeError):
    """A destructive scenario was asked to act without opt-in or on a target not allowed."""


class RunConfigError(RuntimeError):
    """A run's settings cannot be used as given (names the setting and the fix); nothing was touched."""
