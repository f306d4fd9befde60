"""The service registry is consistent: unique ports and processes, known and acyclic dependencies, declared
templates and binaries, and a start/stop order that respects dependencies."""

from __future__ import annotations

import dataclasses

import pytest

from regression_pipelines.lab import services
from regression_pipelines.lab.errors import LabError
from regression_pipelines.lab.lifecycle import _stop_waves
from regression_pipelines.lab.render import TEMPLATE_DIR
from regression_pipelines.lab.service import LabService, PortClaim
from regression_pipelines.lab.services import _dependency_order, all_services, selected
from regression_pipelines.lab.settings import LabSettings

EXPECTED = {
    "postgres",
    "etcd",
    "patroni",
    "haproxy",
    "redis",
    "rabbitmq",
    "epmd",
    "alertmanager",
    "dagster_storage",
    "citus",
}


@pytest.fixture(params=[0, 4300], ids=["default-ports", "offset-4300"])
def settings(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> LabSettings:
    for name in [k for k in __import__("os").environ if k.startswith("REGRESS_LAB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("REGRESS_LAB_PORT_OFFSET", str(request.param))
    return LabSettings.from_env()


def test_every_module_is_a_registered_service() -> None:
    assert {svc.name for svc in all_services()} == EXPECTED
    assert all(services.get(name).name == name for name in EXPECTED)
    with pytest.raises(LabError, match="no lab service 'mongodb'; services are"):
        services.get("mongodb")


def test_port_claims_are_unique_and_named_by_their_setting(settings: LabSettings) -> None:
    claims = [c for svc in all_services() for c in svc.port_claims(settings)]
    ports = [c.port for c in claims]
    assert len(ports) == len(set(ports)), sorted(p for p in ports if ports.count(p) > 1)
    fields = {f.name for f in dataclasses.fields(LabSettings)}
    for claim in claims:
        assert claim.setting in fields, claim
        value = getattr(settings, claim.setting)
        assert claim.port == value or claim.port in value, claim


def test_processes_are_unique_and_claims_belong_to_them(settings: LabSettings) -> None:
    processes = [p for svc in all_services() for p in svc.processes(settings)]
    assert len(processes) == len(set(processes))
    for svc in all_services():
        assert {c.service for c in svc.port_claims(settings)} <= set(svc.processes(settings)), svc.name
        assert services.owner_of(svc.processes(settings)[0], settings) is svc


def test_dependencies_are_known_acyclic_and_never_optional() -> None:
    order = [svc.name for svc in all_services()]
    for svc in all_services():
        for dep in svc.depends_on:
            assert order.index(dep) < order.index(svc.name), (dep, svc.name)
            assert not services.get(dep).optional, f"{svc.name} depends on optional {dep}"


def test_templates_exist_and_each_belongs_to_one_service() -> None:
    declared = [t for svc in all_services() for t in svc.templates]
    assert len(declared) == len(set(declared))
    assert all((TEMPLATE_DIR / t).is_file() for t in declared)
    assert {p.name for p in TEMPLATE_DIR.glob("*.tmpl")} == set(declared)


def test_every_service_declares_binaries_and_its_own_folder(settings: LabSettings) -> None:
    for svc in all_services():
        assert svc.binaries, svc.name
        assert all(b.package for b in svc.binaries)
    folders = [svc.folder(settings) for svc in all_services()]
    assert len(folders) == len(set(folders))
    assert all(f.parent == settings.lab_dir for f in folders)


class _Fake(LabService):
    def __init__(self, name: str, *deps: str) -> None:
        self.name = name  # type: ignore[misc]
        self.depends_on = deps  # type: ignore[misc]

    def port_claims(self, s: LabSettings) -> list[PortClaim]:
        return []

    def start(self, s: LabSettings, process: str) -> int:
        raise AssertionError("never started")

    def probe(self, s: LabSettings, process: str) -> tuple[bool, str]:
        return False, ""


def test_unknown_dependency_and_cycles_are_refused() -> None:
    with pytest.raises(LabError, match=r"'citus' depends on unknown \['pg-coordinator'\]"):
        _dependency_order({"citus": _Fake("citus", "pg-coordinator")})
    with pytest.raises(LabError, match="cycle"):
        _dependency_order({"a": _Fake("a", "b"), "b": _Fake("b", "a"), "c": _Fake("c")})
    order = _dependency_order({"z": _Fake("z"), "a": _Fake("a", "z"), "m": _Fake("m")})
    assert [s.name for s in order] == ["m", "z", "a"]


def test_selection_brings_dependencies_and_skips_those_of_a_reused_broker(settings: LabSettings) -> None:
    assert {svc.name for svc in selected(settings)} == EXPECTED
    assert [svc.name for svc in selected(settings, ["haproxy"])] == ["etcd", "patroni", "haproxy"]
    reused = dataclasses.replace(settings, rabbitmq_reuse="127.0.0.1:5672")
    assert {svc.name for svc in selected(reused)} == EXPECTED - {"epmd"}
    assert [svc.name for svc in selected(reused, ["rabbitmq"])] == ["rabbitmq"]


def test_down_stops_dependents_before_what_they_need() -> None:
    wave_of = {svc.name: i for i, wave in enumerate(_stop_waves()) for svc in wave}
    assert set(wave_of) == EXPECTED
    for svc in all_services():
        for dep in svc.depends_on:
            assert wave_of[svc.name] < wave_of[dep], (svc.name, dep)
