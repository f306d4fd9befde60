"""Process plumbing for the lab: spawn as a service user, tell alive from zombie, stop by PID.

Why /proc: a stopped child can look alive to `kill -0` until it is reaped, and a recycled PID can belong
to someone else. We record each PID with its kernel start time and only ever signal that exact process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of PID, or None if there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parens: fields after the last ')' are fixed.
    rest = raw[raw.rfind(")") + 2 :].split()
    return rest[0], int(rest[19])


def start_time(pid: int) -> int | None:
    st = proc_stat(pid)
    return st[1] if st else None


def _threads_still_exiting(pid: int) -> bool:
    """A killed multi-threaded server's main thread turns zombie before its other threads have exited, and
    its sockets and files stay open until the last one has: /proc/PID/task still lists them meanwhile."""
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False


def is_alive(pid: int | None, started: int | None = None) -> bool:
    """True if PID runs (not zombie/dead, no thread left exiting) and, when `started` is given, is the same
    process we launched."""
    if not pid or pid <= 0:
        return False
    st = proc_stat(pid)
    if st is None or (st[0] in ("Z", "X", "x") and not _threads_still_exiting(pid)):
        return False
    return started is None or st[1] == started


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    user: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a daemon in its own session with default signal handling; returns its real PID.

    `setpriv` and `env` both exec, so the PID is the server's own (runuser would stay in between).
    """
    prefix: list[str] = []
    if user:
        prefix = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
    full = [*prefix, "env", "--default-signal", *argv]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            full,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=str(cwd) if cwd else None,
            start_new_session=True,
            close_fds=True,
        )
    return proc.pid


def _reap(pid: int) -> None:
    """Reap PID if it is our child (tests run `up` in-process), so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def stop(pid: int, started: int | None = None, *, sig: int = signal.SIGTERM, timeout: float = 15.0) -> bool:
    """Signal PID (only if it is still the process we started), wait, then SIGKILL. True if it is gone."""
    if not is_alive(pid, started):
        _reap(pid)
        return True
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if not is_alive(pid, started):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        _reap(pid)
        if not is_alive(pid, started):
            return True
        time.sleep(0.05)
    return False


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes of TCP listeners on `port` (any address, IPv4 or IPv6), from /proc/net/tcp{,6}."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(cols[9])
    return inodes


def listener_pid(port: int) -> int | None:
    """The PID of a process listening on TCP `port`, or None (nobody, or not visible to this user)."""
    inodes = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in inodes:
                    return int(proc.name)
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return None


def describe_listener(port: int) -> str:
    """'pid 1234: postgres -D /var/lib/...' for whoever listens on `port`; '' when nobody (or unknown)."""
    pid = listener_pid(port)
    if pid is None:
        return "pid unknown" if _listening_inodes(port) else ""
    args = " ".join(" ".join(cmdline(pid)).split())[:120]  # one line, whatever the command line holds
    return f"pid {pid}: {args}" if args else f"pid {pid}"


def read_pidfile_pid(path: Path) -> int | None:
    """First line of a pid file (e.g. postmaster.pid) as an int, or None."""
    try:
        first = path.read_text().splitlines()[0].strip()
        return int(first)
    except (FileNotFoundError, IndexError, ValueError, PermissionError):
        return None
