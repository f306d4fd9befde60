"""Lab errors whose messages say what is wrong and which setting or package fixes it."""

from __future__ import annotations


class LabError(RuntimeError):
    """A lab service could not be started, checked or stopped."""


class PortConflictError(LabError):
    """A lab port is held by a process the lab did not start; nothing was started."""


class PortLayoutError(LabError, ValueError):
    """The lab's ports, as configured, clash with each other or with the default lab's; nothing was started."""


class MissingBinaryError(LabError):
    """A server binary is not installed; the message names the Debian package."""


class LabNotRunningError(LabError, FileNotFoundError):
    """There is no lab state: `regress lab up` has not run for this lab dir."""


class NotLabOwnedError(LabError):
    """A destructive action (restart, kill) was asked of a server the lab did not start; nothing was touched."""
