"""The table's transaction log read as files, by the harness itself, and what was found on the table.

Why not `DeltaTable.history()`: it is the system under test, and it refuses the whole log when one commit file
is gone ("Expected contiguous commit files"). Reading `_delta_log/*.json` line by line tells which versions are
there, who made each commit (commitInfo: operation, engineInfo/clientVersion, userMetadata, the workload's tag,
app transaction ids) and which files each commit added or removed, whatever the engine thinks of the table.
`inspect` turns that into the observed causes a failed check names: commits from outside, missing commit files,
checkpoint state, data files missing or added, VACUUM runs and retention; "unexplained" when nothing was found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow.parquet as pq

from assets.delta_cdf.ops import TAG

COMMIT_FILE = re.compile(r"^(\d{20})\.json$")
CHECKPOINT_FILE = re.compile(r"^(\d{20})\.checkpoint(\.\d+\.\d+)?\.parquet$")
SHOWN = 3


@dataclass(frozen=True)
class Commit:
    """One commit file: who made it and what files it touched."""

    version: int
    operation: str = "?"
    tag: str | None = None
    engine: str = ""  # engineInfo, else clientVersion
    user_metadata: str = ""
    app_ids: tuple[str, ...] = ()
    metrics: Mapping[str, int] = field(default_factory=dict)
    adds: tuple[str, ...] = ()
    removes: tuple[str, ...] = ()
    cdcs: tuple[str, ...] = ()
    sizes: Mapping[str, int] = field(default_factory=dict)  # bytes the log records per added or change file
    readable: bool = True

    def who(self) -> str:
        """`v25 WRITE by delta-rs:py-1.6.6 (app nightly-backfill, userMetadata 'x')` for details."""
        parts = [f"v{self.version} {self.operation}"]
        if self.engine:
            parts.append(f"by {self.engine}")
        extra = [f"app {a}" for a in self.app_ids]
        if self.user_metadata:
            extra.append(f"userMetadata {self.user_metadata!r}")
        return " ".join(parts) + (f" ({', '.join(extra)})" if extra else "")


def log_dir(uri: str) -> Path:
    return Path(uri) / "_delta_log"


def commit_path(uri: str, version: int) -> Path:
    return log_dir(uri) / f"{version:020d}.json"


def read_log(uri: str) -> dict[int, Commit]:
    """Every commit file present, by version (a file that cannot be parsed is kept as unreadable)."""
    commits = {}
    folder = log_dir(uri)
    if not folder.is_dir():
        return {}
    for path in folder.iterdir():
        match = COMMIT_FILE.match(path.name)
        if match:
            version = int(match.group(1))
            commits[version] = _parse(version, path)
    return dict(sorted(commits.items()))


def _parse(version: int, path: Path) -> Commit:
    info: dict[str, Any] = {}
    adds, removes, cdcs, apps = [], [], [], []
    sizes: dict[str, int] = {}
    if not path.is_file():  # a FIFO in the log would block the harness's own read
        return Commit(version, readable=False)
    try:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if "commitInfo" in action:
                info = action["commitInfo"]
            elif "add" in action:
                adds.append(unquote(action["add"]["path"]))
                sizes[adds[-1]] = int(action["add"].get("size") or -1)
            elif "remove" in action:
                removes.append(unquote(action["remove"]["path"]))
            elif "cdc" in action:
                cdcs.append(unquote(action["cdc"]["path"]))
                sizes[cdcs[-1]] = int(action["cdc"].get("size") or -1)
            elif "txn" in action:
                apps.append(str(action["txn"].get("appId")))
    except (OSError, ValueError, KeyError, TypeError):
        return Commit(version, readable=False)
    metrics = {k: int(v) for k, v in (info.get("operationMetrics") or {}).items() if isinstance(v, int | float)}
    return Commit(
        version=version,
        operation=str(info.get("operation", "?")),
        tag=info.get(TAG),
        engine=str(info.get("engineInfo") or info.get("clientVersion") or ""),
        user_metadata=str(info.get("userMetadata") or ""),
        app_ids=tuple(apps),
        metrics=metrics,
        adds=tuple(adds),
        removes=tuple(removes),
        cdcs=tuple(cdcs),
        sizes=sizes,
    )


def missing_versions(commits: Mapping[int, Commit], latest: int | None = None) -> list[int]:
    """Versions with no commit file between 0 and the newest (older ones may be gone by log cleanup only when
    a checkpoint covers them; this run never cleans its log, so every gap is a finding)."""
    if not commits:
        return []
    top = max(commits) if latest is None else latest
    return [v for v in range(top + 1) if v not in commits]


@dataclass
class Forensics:
    """What was found on the table, for a failed check's detail."""

    outside: list[Commit] = field(default_factory=list)
    missing_commits: list[int] = field(default_factory=list)
    unreadable_commits: list[int] = field(default_factory=list)
    checkpoint: str = ""  # a problem with the checkpoint named by _last_checkpoint, or ""
    missing_data_files: list[str] = field(default_factory=list)
    missing_change_files: list[str] = field(default_factory=list)
    unreferenced_files: list[str] = field(default_factory=list)
    resized_files: list[str] = field(default_factory=list)  # on disk with another size than the log records
    not_regular_files: list[str] = field(default_factory=list)  # live data files that are FIFOs, folders, devices
    vacuums: list[Commit] = field(default_factory=list)
    retention: str = ""
    committed_despite_error: list[str] = field(default_factory=list)  # the workload's, landed though it errored
    folders: list[str] = field(default_factory=list)  # the table's folder or log missing or replaced mid-run

    def findings(self) -> list[str]:
        found = list(self.folders)
        if self.outside:
            found.append(
                f"{len(self.outside)} commit(s) not made by this workload: "
                + "; ".join(c.who() for c in self.outside[:SHOWN])
            )
        if self.committed_despite_error:
            found.append(
                f"{len(self.committed_despite_error)} commit(s) of this workload landed although their writer got "
                "an error: " + "; ".join(self.committed_despite_error[:SHOWN])
            )
        if self.missing_commits:
            found.append(f"commit file(s) missing for version(s) {_short(self.missing_commits)}")
        if self.unreadable_commits:
            found.append(f"commit file(s) unreadable for version(s) {_short(self.unreadable_commits)}")
        if self.checkpoint:
            found.append(self.checkpoint)
        if self.missing_data_files:
            found.append(
                f"{len(self.missing_data_files)} data file(s) the log adds are gone from disk, e.g. "
                f"{self.missing_data_files[0]}"
            )
        if self.missing_change_files:
            found.append(
                f"{len(self.missing_change_files)} _change_data file(s) the log names are gone, e.g. "
                f"{self.missing_change_files[0]}"
            )
        if self.not_regular_files:
            found.append(
                f"{len(self.not_regular_files)} data file(s) the log adds are not regular files (a FIFO, a folder: "
                f"reads of them block or fail), e.g. {self.not_regular_files[0]}"
            )
        if self.resized_files:
            found.append(
                f"{len(self.resized_files)} file(s) whose size on disk differs from the log's (truncated or "
                f"rewritten), e.g. {self.resized_files[0]}"
            )
        if self.vacuums:
            found.append(
                "VACUUM ran on the table: "
                + "; ".join(c.who() for c in self.vacuums[:SHOWN])
                + (f" (retention {self.retention})" if self.retention else "")
            )
        if self.unreferenced_files and found:
            found.append(
                f"{len(self.unreferenced_files)} data file(s) no commit references (left by conflicted "
                f"writers or added from outside), e.g. {self.unreferenced_files[0]}"
            )
        return found

    def describe(self) -> str:
        found = self.findings()
        return "found on the table: " + "; ".join(found) if found else "unexplained (nothing found on the table)"


def inspect(uri: str, commits: Mapping[int, Commit], ours: set[str], retention: str = "") -> Forensics:
    """Look at the table's folder and log for what could explain a failed check."""
    root = Path(uri)
    found = Forensics(retention=retention)
    found.outside = [c for c in commits.values() if c.readable and c.tag not in ours]
    found.missing_commits = missing_versions(commits)
    found.unreadable_commits = [v for v, c in commits.items() if not c.readable]
    found.checkpoint = _checkpoint_problem(uri)
    live = live_files(commits)
    referenced = {path for commit in commits.values() for path in commit.adds}
    change_files = {path for commit in commits.values() for path in commit.cdcs}
    found.missing_data_files = sorted(p for p in live if not (root / p).exists())
    found.not_regular_files = sorted(p for p in live if (root / p).exists() and not (root / p).is_file())
    found.missing_change_files = sorted(p for p in change_files if not (root / p).exists())
    on_disk = {
        str(p.relative_to(root))
        for p in root.rglob("*.parquet")
        if "_delta_log" not in p.parts and "_change_data" not in p.parts
    }
    found.unreferenced_files = sorted(on_disk - referenced)
    sizes = {path: size for commit in commits.values() for path, size in commit.sizes.items() if size >= 0}
    found.resized_files = sorted(
        path for path, size in sizes.items() if (root / path).is_file() and (root / path).stat().st_size != size
    )
    found.vacuums = [c for c in commits.values() if c.operation.upper().startswith("VACUUM")]
    return found


def live_files(commits: Mapping[int, Commit]) -> dict[str, int]:
    """The data files the newest version reads (the log's adds not removed since), with the version that added
    each."""
    live: dict[str, int] = {}
    for commit in commits.values():
        for path in commit.removes:
            live.pop(path, None)
        for path in commit.adds:
            live[path] = commit.version
    return live


def _checkpoint_problem(uri: str) -> str:
    pointer = log_dir(uri) / "_last_checkpoint"
    if not pointer.exists():
        return ""
    if not pointer.is_file():
        return "_last_checkpoint is not a regular file"
    try:
        version = int(json.loads(pointer.read_text())["version"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"_last_checkpoint unreadable ({type(exc).__name__})"
    files = [p for p in log_dir(uri).iterdir() if (m := CHECKPOINT_FILE.match(p.name)) and int(m.group(1)) == version]
    if not files:
        return f"the checkpoint of v{version} that _last_checkpoint names is missing"
    for path in files:
        if not path.is_file():
            return f"the checkpoint of v{version} is not a regular file"
        try:
            pq.read_metadata(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            return f"the checkpoint of v{version} is unreadable ({type(exc).__name__})"
    return ""


def checkpoints(uri: str) -> list[int]:
    return sorted({int(m.group(1)) for p in log_dir(uri).glob("*.parquet") if (m := CHECKPOINT_FILE.match(p.name))})


def _short(versions: list[int]) -> str:
    return ", ".join(str(v) for v in versions[:10]) + (" ..." if len(versions) > 10 else "")
