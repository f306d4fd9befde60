"""Reads in a child process: a read that outlives its time bound is ended by killing the process.

Why a process: DuckDB reads the Delta table through its Arrow dataset, and Arrow's I/O thread pool joins its
threads when the process exits. A read that never returns (a DuckDB 2.0.0 Arrow-dataset scan hung once, see
benchmarks/delta_cdf/RESULTS.md; a data file that blocks on open) cannot be abandoned in a thread without
hanging the run's process at exit. In a child it is killed, and the read becomes a timed-out `Read`.

The parent talks to one long-lived child over two pipes (multiprocessing's `Connection`: pickled requests, and
answers as Arrow IPC bytes the parent turns into a `Read`). The child runs this file by its path and imports
only DuckDB, delta-rs and Arrow (never the area's package); it exits when the parent closes its end.
A child that dies mid-read (a crash in the engine) gives a failed `Read` naming its exit status, and the
next read starts a new child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assets.delta_cdf.oracle import Read

START_TIMEOUT_S = 120.0  # importing DuckDB, delta-rs and Arrow on a loaded host


class ChildReader:
    """One child process answering read requests, started on the first request."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.process: subprocess.Popen | None = None
        self.requests: Connection | None = None
        self.answers: Connection | None = None

    def _start(self) -> str:
        """'' once the child said it is ready; else why it is not."""
        parent_r, child_w = os.pipe()
        child_r, parent_w = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, __file__, str(child_r), str(child_w)],
                pass_fds=(child_r, child_w),
                stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(child_r)
            os.close(child_w)
        self.answers, self.requests = Connection(parent_r, writable=False), Connection(parent_w, readable=False)
        answer = self._answer(START_TIMEOUT_S)
        if answer == "ready":
            return ""
        self.close()
        return f"{self.name} reader process did not start: {answer}"

    def _answer(self, timeout_s: float) -> Any:
        """The child's next answer, or a text saying why there is none (a Read or 'ready' otherwise)."""
        assert self.answers is not None and self.process is not None
        try:
            if self.answers.poll(timeout_s):
                return self.answers.recv()
        except (EOFError, OSError):
            pass
        else:
            return None  # no answer in time (the caller says what timed out)
        status = self.process.wait(timeout=10)
        return f"{self.name} reader process died (exit status {status})"

    def call(self, request: tuple, timeout_s: float, what: str) -> Read:
        """Send one request; the child's Read, or a failed one if the child timed out (killed) or died."""
        from assets.delta_cdf.oracle import Read

        started = time.perf_counter()
        if self.process is None or self.process.poll() is not None:
            self.close()
            problem = self._start()
            if problem:
                return Read(error=problem, seconds=time.perf_counter() - started)
        assert self.requests is not None
        try:
            self.requests.send(request)
        except OSError as exc:
            self.close()
            return Read(error=f"{what}: the reader process is gone ({exc})", seconds=time.perf_counter() - started)
        answer = self._answer(timeout_s)
        if isinstance(answer, tuple):
            return _read_of(answer)
        self.close()
        if answer is None:
            return Read(
                error=f"TimedOut: {what} gave no answer in {timeout_s:g} s (reader process killed)",
                seconds=time.perf_counter() - started,
            )
        return Read(error=f"{what}: {answer}", seconds=time.perf_counter() - started)

    def close(self) -> None:
        """Kill the child (a hung read ends with it) and close the pipes; safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        for connection in (self.requests, self.answers):
            if connection is not None:
                connection.close()
        self.process = self.requests = self.answers = None


def _read_of(answer: tuple) -> Read:
    """The child's answer as a Read: ("rows", Arrow IPC stream, count, seconds) or ("error", text, seconds)."""
    import pyarrow as pa

    from assets.delta_cdf.engines import table_rows
    from assets.delta_cdf.oracle import Read

    if answer[0] == "error":
        return Read(error=answer[1], seconds=answer[2])
    _, stream, count, seconds = answer
    table = pa.ipc.open_stream(stream).read_all()
    return Read(rows=tuple(table_rows(table)), count=count, seconds=seconds)


# --- the child (stdlib, DuckDB, delta-rs and Arrow only: it is run by its path) ------------------------------------


TABLES: dict[str, Any] = {}  # the child's loaded table per uri, moved forward version by version


def _table_at(uri: str, version: int) -> Any:
    """The table at `version`: the loaded one moved forward (`load_as_version`, incremental: a path of its own,
    next to delta-rs's fresh load of each version), else a fresh load (going back, or after an error)."""
    from deltalake import DeltaTable

    table = TABLES.pop(uri, None)
    if table is not None and table.version() <= version:
        try:
            table.load_as_version(version)
        except Exception:  # a failed incremental load: try a fresh one (its error is the answer)
            table = None
    else:
        table = None
    if table is None:
        table = DeltaTable(uri, version=version)
    TABLES[uri] = table
    return table


def duckdb_snapshot(connection: Any, uri: str, version: int) -> tuple:
    """DuckDB's answer for one version: every row and its count(*), through the table's Arrow dataset."""
    import pyarrow as pa

    started = time.perf_counter()
    try:
        dataset = _table_at(uri, version).to_pyarrow_dataset()
        connection.register("t", dataset)
        try:
            rows = connection.sql("SELECT * FROM t").to_arrow_table()
            (count,) = connection.sql("SELECT count(*) FROM t").fetchall()[0]
        finally:
            connection.unregister("t")
        seconds = time.perf_counter() - started
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_table(rows)
        return ("rows", sink.getvalue().to_pybytes(), int(count), seconds)
    except BaseException as exc:  # engines raise many types, and a Rust panic arrives as a BaseException
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        text = " ".join(str(exc).split())
        return ("error", f"{type(exc).__name__}: {text}"[:300], time.perf_counter() - started)


class _NoPandas:
    """Arrow imports pandas when it is installed (about a third of the child's start-up CPU); DuckDB's scan of an
    Arrow dataset never needs it, so the child finds none."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"the reader process imports no {name}", name=name)


def _exit_with_parent(parent: int) -> None:
    """A child whose parent died (killed mid-run) ends itself, even in the middle of a read that hangs."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(3)


def main(read_fd: int, write_fd: int) -> None:
    import threading

    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    sys.meta_path.insert(0, _NoPandas())  # type: ignore[arg-type]
    import duckdb

    requests, answers = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    connection = duckdb.connect()
    answers.send("ready")
    while True:
        try:
            request = requests.recv()
        except EOFError:
            return
        kind, *args = request
        if kind == "duckdb_snapshot":
            answers.send(duckdb_snapshot(connection, *args))
        else:
            answers.send(("error", f"unknown request {kind!r}", 0.0))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
