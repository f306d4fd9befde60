"""Worker processes of one run: start them (spec on stdin), kill one at its announced kill point, stop them
all (SIGTERM, then SIGKILL), and collect their stats files. Every process it starts, it also ends."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assets.etl_pipeline.worker import PAUSED


class Workers:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.killed: list[int] = []
        self.crashes: list[str] = []
        self._count = 0
        self._closed = False  # after stop(), a late replacement (from a kill watcher) is never started
        self._lock = threading.Lock()

    def start(self, spec: dict[str, Any], on_paused: Callable[[subprocess.Popen[bytes]], None] | None = None) -> None:
        with self._lock:
            if self._closed:
                return
            self._count += 1
            name = f"{spec['stage']}-{self._count}"
        spec = {**spec, "stats_path": str(self.folder / f"{name}.json")}
        stderr = open(self.folder / f"{name}.err", "wb")  # noqa: SIM115 - the child writes to it for its lifetime
        proc = subprocess.Popen(
            [sys.executable, "-m", "assets.etl_pipeline.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if on_paused else subprocess.DEVNULL,
            stderr=stderr,
        )
        stderr.close()
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(spec).encode())
        proc.stdin.close()
        with self._lock:
            self.procs.append((name, proc))
        if on_paused is not None:
            threading.Thread(target=self._watch, args=(proc, on_paused), daemon=True).start()

    def _watch(self, proc: subprocess.Popen[bytes], on_paused: Callable[[subprocess.Popen[bytes]], None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip().decode() == PAUSED:
                on_paused(proc)
                return

    def sigkill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        self.killed.append(proc.pid)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every live worker (each finishes its batch), then SIGKILL whatever is still running."""
        with self._lock:
            self._closed = True
            procs = list(self.procs)
        for _name, proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                self.crashes.append(f"{name} ignored SIGTERM for {timeout:.0f} s and was killed")
                continue
            if proc.returncode not in (0, -signal.SIGTERM, -signal.SIGKILL) or (  # SIGTERM before its handler: idle
                proc.returncode == -signal.SIGKILL and proc.pid not in self.killed
            ):
                tail = (self.folder / f"{name}.err").read_text(errors="replace").strip().splitlines()[-1:] or ["?"]
                self.crashes.append(f"{name} exited {proc.returncode}: {tail[0][:300]}")

    def stats(self) -> list[dict[str, Any]]:
        return [json.loads(p.read_text()) for p in sorted(self.folder.glob("*.json"))]

    def alive(self) -> int:
        return sum(1 for _name, proc in self.procs if proc.poll() is None)
