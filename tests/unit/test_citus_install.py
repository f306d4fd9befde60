"""The Citus build recipe's pure parts: which archive, which checksum, which cache folder, and the patch for
PostgreSQL 15.20's headers (applied to the real release sources when ../shared/vendor/citus is present)."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
from pathlib import Path

import pytest

from regression_pipelines.matrix import citus_install as ci

VENDOR = Path(__file__).resolve().parents[3] / "shared" / "vendor" / "citus"
COMPAT = "src/include/pg_version_compat.h"
CALLER = "src/backend/distributed/commands/serialize_distributed_ddls.c"


def _archive(folder: Path, version: str, content: bytes = b"x") -> tuple[Path, str]:
    path = folder / f"citus-{version}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(f"citus-{version}/configure")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_sources_folder_checksum_list_is_the_authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ci.SOURCES_ENV, str(tmp_path))
    path, sha = _archive(tmp_path, "13.9.9")
    (tmp_path / "SHA256SUMS").write_text(f"{sha}  {path.name}\n")
    assert ci.locate_archive("13.9.9", log=lambda _m: None) == (path, sha)
    (tmp_path / "SHA256SUMS").write_text(f"{'0' * 64}  {path.name}\n")
    with pytest.raises(ci.CitusBuildError, match=r"has sha256 [0-9a-f]{64}, expected 0{64} \(from .*SHA256SUMS\)"):
        ci.locate_archive("13.9.9", log=lambda _m: None)


def test_an_unknown_version_without_a_checksum_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ci.SHA_ENV, raising=False)
    path, _ = _archive(tmp_path, "13.9.9")
    with pytest.raises(ci.CitusBuildError, match="no checksum known for citus 13.9.9: list citus-13.9.9.tar.gz"):
        ci.verify(path, "13.9.9", tmp_path)


def test_a_pinned_version_is_checked_against_the_pin(tmp_path: Path) -> None:
    path, _ = _archive(tmp_path, "13.2.2")  # same name, other bytes: must not pass for the release
    with pytest.raises(ci.CitusBuildError, match=f"expected {ci.PINNED_SHA256['13.2.2']} \\(from the pin"):
        ci.verify(path, "13.2.2", None)


def test_a_failed_download_says_where_to_put_the_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:  # a port nothing listens on: connection refused, at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setattr(ci, "RELEASE_URL", f"http://127.0.0.1:{port}/v{{version}}.tar.gz")
    monkeypatch.setenv(ci.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(ci.SOURCES_ENV, raising=False)
    with pytest.raises(ci.CitusBuildError) as failed:
        ci.locate_archive("13.2.2", log=lambda _m: None)
    assert str(failed.value).startswith(f"could not download citus 13.2.2 from http://127.0.0.1:{port}/v13.2.2.tar.gz")
    assert "point REGRESS_CITUS_SOURCES at it" in str(failed.value)
    assert not list((tmp_path / "downloads").iterdir())  # no partial file left to be mistaken for the archive


def test_cache_folder_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ci.CACHE_ENV, str(tmp_path / "explicit"))
    assert ci.cache_root() == tmp_path / "explicit"
    monkeypatch.delenv(ci.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ci.cache_root() == tmp_path / "xdg" / "regression_pipelines" / "citus"
    assert ci.install_key("13.2.2", "dd2453caec20a830", "15.20") == "13.2.2-dd2453caec20-pg15.20"


def test_an_install_without_its_manifest_is_not_an_install(tmp_path: Path) -> None:
    install = ci.CitusInstall("13.2.2", tmp_path / "13.2.2-0123456789ab-pg15.20")
    install.bin_dir.mkdir(parents=True)
    install.postgres.write_text("")
    install.extension_dir.mkdir(parents=True)
    (install.extension_dir / "citus.control").write_text("")
    assert ci.installed("13.2.2", tmp_path) == []  # a build that died before its manifest
    (install.root / ci.MANIFEST).write_text(json.dumps({"version": "13.2.2", "pg_version": "15.20"}))
    assert [i.root for i in ci.installed("13.2.2", tmp_path)] == [install.root]
    assert ci.installed("13.2.0", tmp_path) == []


def test_the_patch_refuses_sources_it_does_not_fit(tmp_path: Path) -> None:
    for relative in ci.PATCHES:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text("nothing to patch\n")
    with pytest.raises(ci.CitusBuildError, match="did not apply to src/include/pg_version_compat.h"):
        ci.patch_sources(tmp_path)


@pytest.mark.skipif(not VENDOR.is_dir(), reason=f"no Citus release sources at {VENDOR}")
@pytest.mark.parametrize("version", ["13.2.0", "13.2.2"])
def test_the_patch_fits_the_real_releases(tmp_path: Path, version: str) -> None:
    with tarfile.open(VENDOR / f"citus-{version}.tar.gz") as tar:
        for relative in ci.PATCHES:
            tar.extract(f"citus-{version}/{relative}", tmp_path, filter="data")
    source = tmp_path / f"citus-{version}"
    ci.patch_sources(source)
    compat, caller = (source / COMPAT).read_text(), (source / CALLER).read_text()
    assert "\ncitus_have_createdb_privilege(void)" in compat and "\nhave_createdb_privilege(void)" not in compat
    assert "#define citus_have_createdb_privilege() have_createdb_privilege()" in compat  # PG 16+ branch
    assert "!citus_have_createdb_privilege()" in caller and "!have_createdb_privilege()" not in caller
