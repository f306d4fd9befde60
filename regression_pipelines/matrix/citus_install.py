"""Citus built from its release source, installed privately: one copy of the PostgreSQL 15 tree per Citus version.

Why private trees: PostgreSQL loads one `citus.so` per install, so two Citus versions side by side need two
installs; Debian's binaries find `share/` and `lib/` relative to `bin/` (checked after every build with the copy's
own `pg_config`), so a copy of /usr/lib/postgresql/15 and /usr/share/postgresql/15 under a private prefix, with
Citus installed into it, is a complete server that never touches the system's files.

Where: `REGRESS_CITUS_CACHE`, else `$XDG_CACHE_HOME/regression_pipelines/citus`, else (root, whose home the
postgres user cannot enter) `/var/cache/regression_pipelines/citus`, else `~/.cache/regression_pipelines/citus`;
one folder per `<version>-<sha256[:12]>-pg<PostgreSQL version>`, immutable once complete (`manifest.json`
written last), so CI runs on one machine reuse it and a build never overwrites another version.

Sources: `citus-<version>.tar.gz` in `REGRESS_CITUS_SOURCES` (checked against that folder's SHA256SUMS, else the
pin below), or the release archive downloaded from GitHub and checked against the pin. Stdlib only: the lab
imports this module.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PINNED_VERSION = "13.2.2"
# sha256 of the release archives (`git archive` of upstream tags v13.2.0 / v13.2.2, prefix citus-<version>/).
PINNED_SHA256 = {
    "13.2.0": "339ed1b25ec579bd13a97710230a081455ae23eaf5c38d21d80455a3442e7ae6",
    "13.2.2": "dd2453caec20a830e5e63f1def5c5a98cb6f57ae510407cdcd800916fcdab430",
}
RELEASE_URL = "https://github.com/citusdata/citus/archive/refs/tags/v{version}.tar.gz"
PG_MAJOR = "15"
SYSTEM_PG_LIB = Path(f"/usr/lib/postgresql/{PG_MAJOR}")
SYSTEM_PG_SHARE = Path(f"/usr/share/postgresql/{PG_MAJOR}")
SYSTEM_PG_CONFIG = SYSTEM_PG_LIB / "bin" / "pg_config"
BUILD_DEPS = (
    "postgresql-server-dev-15 libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libselinux1-dev "
    "libpam0g-dev autoconf flex bison"
)
SOURCES_ENV, CACHE_ENV, SHA_ENV = "REGRESS_CITUS_SOURCES", "REGRESS_CITUS_CACHE", "REGRESS_CITUS_SHA256"
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
DOWNLOAD_TIMEOUT_S = 30.0
MANIFEST = "manifest.json"


class CitusBuildError(RuntimeError):
    """Citus could not be found, fetched, verified or built; the message says why and what to do."""


@dataclass(frozen=True)
class CitusInstall:
    """A complete private server: PostgreSQL 15 with one Citus version in it."""

    version: str
    root: Path  # the private prefix; holds usr/lib/postgresql/15 and usr/share/postgresql/15
    sha256: str = ""
    pg_version: str = ""

    @property
    def bin_dir(self) -> Path:
        return self.root / "usr" / "lib" / "postgresql" / PG_MAJOR / "bin"

    @property
    def extension_dir(self) -> Path:
        return self.root / "usr" / "share" / "postgresql" / PG_MAJOR / "extension"

    @property
    def postgres(self) -> Path:
        return self.bin_dir / "postgres"

    @property
    def initdb(self) -> Path:
        return self.bin_dir / "initdb"


def check_version(version: str) -> str:
    if not VERSION_RE.match(version):
        raise CitusBuildError(f"citus version {version!r} must look like {PINNED_VERSION} (major.minor.patch)")
    return version


def cache_root() -> Path:
    """Where private installs live (see the module docstring for the order)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "regression_pipelines" / "citus"
    if os.geteuid() == 0:
        return Path("/var/cache/regression_pipelines/citus")
    return Path.home() / ".cache" / "regression_pipelines" / "citus"


def sources_dir() -> Path | None:
    raw = os.environ.get(SOURCES_ENV, "").strip()
    return Path(raw) if raw else None


def system_pg_version() -> str:
    """The installed PostgreSQL's version, e.g. '15.20' (a private tree is a copy of exactly this)."""
    try:
        out = subprocess.run([str(SYSTEM_PG_CONFIG), "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CitusBuildError(
            f"cannot run {SYSTEM_PG_CONFIG} ({exc}); install the build dependencies: apt-get install -y {BUILD_DEPS}"
        ) from None
    match = re.search(r"PostgreSQL (\d+\.\d+)", out.stdout)
    if not match or not match.group(1).startswith(PG_MAJOR + "."):
        raise CitusBuildError(f"{SYSTEM_PG_CONFIG} reports {out.stdout.strip()!r}; Citus 13 here needs PostgreSQL 15")
    return match.group(1)


def install_key(version: str, sha256: str, pg_version: str) -> str:
    return f"{version}-{sha256[:12]}-pg{pg_version}"


def read_manifest(folder: Path) -> dict[str, object] | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _install_from(folder: Path) -> CitusInstall | None:
    manifest = read_manifest(folder)
    if not manifest:
        return None
    install = CitusInstall(
        str(manifest["version"]), folder, str(manifest.get("sha256", "")), str(manifest.get("pg_version", ""))
    )
    return install if install.postgres.is_file() and (install.extension_dir / "citus.control").is_file() else None


def installed(version: str, root: Path | None = None) -> list[CitusInstall]:
    """Complete private installs of this Citus version, newest build first."""
    base = root or cache_root()
    if not base.is_dir():
        return []
    found = [i for d in base.glob(f"{version}-*") if d.is_dir() and (i := _install_from(d)) and i.version == version]
    return sorted(found, key=lambda i: (i.root / MANIFEST).stat().st_mtime, reverse=True)


def find_install(version: str, root: Path | None = None) -> CitusInstall | None:
    """The install to run for this version: one built against today's PostgreSQL if there is one."""
    candidates = installed(version, root)
    try:
        current = system_pg_version()
    except CitusBuildError:
        current = ""
    same_pg = [i for i in candidates if i.pg_version == current]
    return (same_pg or candidates or [None])[0]


# --- the archive ------------------------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _listed_sha(folder: Path, name: str) -> str | None:
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        return None
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == name:
            return parts[0].lower()
    return None


def expected_sha(version: str, folder: Path | None) -> tuple[str | None, str]:
    """The checksum an archive must have, and where that expectation comes from."""
    name = f"citus-{version}.tar.gz"
    if folder is not None and (listed := _listed_sha(folder, name)):
        return listed, f"{folder / 'SHA256SUMS'}"
    if os.environ.get(SHA_ENV):
        return os.environ[SHA_ENV].strip().lower(), SHA_ENV
    if version in PINNED_SHA256:
        return PINNED_SHA256[version], "the pin in regression_pipelines/matrix/citus_install.py"
    return None, ""


def verify(path: Path, version: str, folder: Path | None) -> str:
    """The archive's sha256, after checking it against the expected one; raises naming both on a mismatch."""
    want, source = expected_sha(version, folder)
    if want is None:
        raise CitusBuildError(
            f"no checksum known for citus {version}: list {path.name} in {path.parent / 'SHA256SUMS'} or set "
            f"{SHA_ENV}=<sha256> (the pinned releases are {', '.join(sorted(PINNED_SHA256))})"
        )
    got = sha256_of(path)
    if got != want:
        raise CitusBuildError(f"{path} has sha256 {got}, expected {want} (from {source}); refusing to build it")
    return got


def locate_archive(version: str, log: Callable[[str], None] = print) -> tuple[Path, str]:
    """(archive, sha256): from REGRESS_CITUS_SOURCES if it holds the version, else downloaded and verified."""
    folder = sources_dir()
    if folder is not None:
        candidate = folder / f"citus-{version}.tar.gz"
        if candidate.is_file():
            return candidate, verify(candidate, version, folder)
        if not folder.is_dir():
            raise CitusBuildError(f"{SOURCES_ENV}={folder} is not a directory; unset it to download the release")
        log(f"citus: {candidate} not found; downloading the release instead")
    return download(version, log)


def download(version: str, log: Callable[[str], None] = print) -> tuple[Path, str]:
    """Fetch the release archive into the cache and verify it before use (a partial file is never used)."""
    url = RELEASE_URL.format(version=version)
    target = cache_root() / "downloads" / f"citus-{version}.tar.gz"
    if target.is_file():
        return target, verify(target, version, None)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    log(f"citus: downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        partial.unlink(missing_ok=True)
        raise CitusBuildError(
            f"could not download citus {version} from {url} ({getattr(exc, 'reason', exc)}); put "
            f"citus-{version}.tar.gz in a folder and point {SOURCES_ENV} at it"
        ) from None
    try:
        sha = verify(partial, version, None)
    except CitusBuildError:
        partial.unlink(missing_ok=True)
        raise
    partial.rename(target)
    return target, sha


# --- the build --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One builder per install at a time (two CI runs on one machine wait for each other)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_installed(version: str = PINNED_VERSION, log: Callable[[str], None] = print) -> CitusInstall:
    """The private install of this Citus version, built now unless the cache already holds it."""
    check_version(version)
    archive, sha = locate_archive(version, log)
    pg_version = system_pg_version()
    root = cache_root()
    final = root / install_key(version, sha, pg_version)
    with _locked(root / f"{final.name}.lock"):
        if (ready := _install_from(final)) is not None:
            log(f"citus {version}: cached at {final}")
            return ready
        started = time.monotonic()
        build(archive, version, final, log)
        seconds = time.monotonic() - started
        manifest = {
            "version": version, "sha256": sha, "pg_version": pg_version, "source": str(archive),
            "build_seconds": round(seconds, 1), "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "patches": list(PATCHES),
        }  # fmt: skip
        (final / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        log(f"citus {version}: built and installed in {seconds:.0f}s at {final}")
    install = _install_from(final)
    assert install is not None
    return install


def build(archive: Path, version: str, final: Path, log: Callable[[str], None]) -> None:
    """Unpack, patch, configure, make, install into a staging folder, assemble the private tree, check it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    build_log = final.with_name(final.name + ".build.log")
    with tempfile.TemporaryDirectory(prefix=f"citus-{version}-", dir=final.parent) as tmp:
        work = Path(tmp)
        source = _unpack(archive, work)
        patch_sources(source)
        stage = work / "stage"
        jobs = str(os.cpu_count() or 2)
        with build_log.open("w") as out:
            _step(["./configure", f"PG_CONFIG={SYSTEM_PG_CONFIG}"], source, out, build_log, "configure", log)
            _step(["make", f"-j{jobs}"], source, out, build_log, "make", log)
            _step(["make", "install", f"DESTDIR={stage}"], source, out, build_log, "make install", log)
        _assemble(stage, partial)
    check_tree(partial)
    if final.exists():  # an incomplete leftover (no manifest): never a finished install, which returned earlier
        shutil.rmtree(final)
    partial.rename(final)


def _unpack(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    tops = [p for p in into.iterdir() if p.is_dir()]
    if len(tops) != 1 or not (tops[0] / "configure").is_file():
        raise CitusBuildError(f"{archive} does not unpack to one Citus source folder with a configure script")
    return tops[0]


# PostgreSQL 15.20 exports have_createdb_privilege() (commands/dbcommands.h); Citus 13.2.x keeps a static copy
# for PG 15 in pg_version_compat.h, and "static declaration follows non-static declaration" stops the build.
# The copy is renamed citus_have_createdb_privilege (the PG 16+ branch maps that name to the server's function)
# and its one caller uses the new name: same behaviour on every 15.x, old headers or new.
PATCHES = {
    "src/include/pg_version_compat.h": (
        (
            r"#define have_createdb_privilege\(\) have_createdb_privilege\(\)",
            "#define citus_have_createdb_privilege() have_createdb_privilege()",
        ),
        (r"\nhave_createdb_privilege\(void\)", "\ncitus_have_createdb_privilege(void)"),
    ),
    "src/backend/distributed/commands/serialize_distributed_ddls.c": (
        (r"!have_createdb_privilege\(\)", "!citus_have_createdb_privilege()"),
    ),
}


def patch_sources(source: Path) -> None:
    """Apply PATCHES; a pattern that does not match exactly once fails the build with the file named."""
    for relative, edits in PATCHES.items():
        path = source / relative
        text = path.read_text()
        for pattern, replacement in edits:
            text, count = re.subn(pattern, replacement, text)
            if count != 1:
                raise CitusBuildError(
                    f"patch for PostgreSQL 15.20 headers did not apply to {relative} ({pattern!r} matched {count}x); "
                    "this Citus version needs its own patch in regression_pipelines/matrix/citus_install.py"
                )
        path.write_text(text)


def _step(argv: list[str], cwd: Path, out: object, build_log: Path, name: str, log: Callable[[str], None]) -> None:
    log(f"citus: {name} ...")
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)  # type: ignore[arg-type]
    if proc.returncode != 0:
        tail = "\n".join(build_log.read_text(errors="replace").splitlines()[-15:])
        raise CitusBuildError(
            f"citus {name} failed (exit {proc.returncode}) after {time.monotonic() - started:.0f}s; full log "
            f"{build_log}; build dependencies: apt-get install -y {BUILD_DEPS}\n{tail}"
        )


def _assemble(stage: Path, prefix: Path) -> None:
    """Copy the system's PostgreSQL 15 tree under `prefix`, then lay the staged Citus files over it."""
    for system in (SYSTEM_PG_LIB, SYSTEM_PG_SHARE):
        shutil.copytree(system, prefix / system.relative_to("/"), symlinks=True)
    staged = stage / SYSTEM_PG_LIB.relative_to("/"), stage / SYSTEM_PG_SHARE.relative_to("/")
    for source, system in zip(staged, (SYSTEM_PG_LIB, SYSTEM_PG_SHARE), strict=True):
        if source.is_dir():
            shutil.copytree(source, prefix / system.relative_to("/"), symlinks=True, dirs_exist_ok=True)
    for folder in [prefix, *prefix.rglob("*")]:  # the postgres user runs it: everything readable
        if folder.is_dir() and not folder.is_symlink():
            folder.chmod(0o755)


def check_tree(prefix: Path) -> None:
    """The copy's own pg_config must resolve share/ and lib/ inside the copy, and the postgres user must run it."""
    install = CitusInstall("", prefix)
    pg_config = install.bin_dir / "pg_config"
    out = subprocess.run([str(pg_config), "--sharedir", "--pkglibdir"], capture_output=True, text=True, check=True)
    share, pkglib = (Path(line) for line in out.stdout.split())
    if share.resolve() != install.extension_dir.parent.resolve() or not (pkglib / "citus.so").is_file():
        raise CitusBuildError(f"{pg_config} resolves share={share}, lib={pkglib}, not the private copy {prefix}")
    if os.geteuid() == 0:
        probe = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", str(install.postgres), "-V"]
        if subprocess.run(probe, capture_output=True, check=False).returncode != 0:
            raise CitusBuildError(
                f"the postgres user cannot run {install.postgres}: a folder above it is closed to it; set "
                f"{CACHE_ENV} to a folder every user can read (e.g. /var/cache/regression_pipelines/citus)"
            )


# --- command line (`make citus`) --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m regression_pipelines.matrix.citus_install",
        description="Build and install a Citus release privately (cached by version and source checksum).",
    )
    parser.add_argument("--version", default=os.environ.get("REGRESS_CITUS_VERSION") or PINNED_VERSION)
    parser.add_argument("--print-root", action="store_true", help="print only the install's folder")
    args = parser.parse_args(argv)
    log = (lambda _msg: None) if args.print_root else print
    try:
        install = ensure_installed(args.version, log=log)
    except CitusBuildError as exc:
        print(f"citus: {exc}", file=sys.stderr)
        return 1
    print(install.root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
