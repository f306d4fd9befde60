"""Config rendering for the lab: every name and port follows LabSettings (two labs must coexist)."""

from __future__ import annotations

import yaml

from regression_pipelines.lab.services import alertmanager, haproxy, patroni, rabbitmq
from regression_pipelines.lab.settings import LabSettings


def _settings(monkeypatch, **env: str) -> LabSettings:
    for k in list(__import__("os").environ):
        if k.startswith("REGRESS_LAB_"):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return LabSettings.from_env()


def test_patroni_yml_follows_settings_and_timings(monkeypatch) -> None:
    s = _settings(monkeypatch, REGRESS_LAB_PORT_OFFSET="1100", REGRESS_LAB_DIR="/tmp/lab-x")
    doc = yaml.safe_load(patroni.patroni_yml(s, 1))
    assert doc["name"] == "pg1"
    assert doc["restapi"]["listen"] == "127.0.0.1:19109"
    assert doc["postgresql"]["listen"] == "127.0.0.1:16534"
    assert doc["etcd3"]["hosts"] == "127.0.0.1:13479"
    dcs = doc["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (10, 2, 5)
    assert dcs["synchronous_mode"] is False
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["postgresql"]["parameters"]["wal_retrieve_retry_interval"] == "1s"
    assert doc["postgresql"]["data_dir"] == "/tmp/lab-x/patroni/pg1/data"
    assert doc["postgresql"]["authentication"]["superuser"]["username"] == "postgres"
    assert "host all all 127.0.0.1/32 scram-sha-256" in doc["postgresql"]["pg_hba"]


def test_synchronous_mode_from_env(monkeypatch) -> None:
    s = _settings(monkeypatch, REGRESS_LAB_PATRONI_SYNCHRONOUS_MODE="true")
    assert s.patroni_synchronous_mode is True
    assert yaml.safe_load(patroni.patroni_yml(s, 0))["bootstrap"]["dcs"]["synchronous_mode"] is True


def test_haproxy_cfg_checks_patroni_with_options(monkeypatch) -> None:
    s = _settings(monkeypatch)
    cfg = haproxy.haproxy_cfg(s)
    assert "option httpchk OPTIONS /primary" in cfg
    assert "option httpchk OPTIONS /replica" in cfg
    assert cfg.count("inter 500ms rise 2 fall 2 on-marked-down shutdown-sessions") == 2
    assert f"bind 127.0.0.1:{s.haproxy_rw_port}" in cfg and f"bind 127.0.0.1:{s.haproxy_ro_port}" in cfg
    assert "server pg2 127.0.0.1:15435 maxconn 100 check port 18010" in cfg
    assert "0.0.0.0" not in cfg


def test_alertmanager_webhook_default_and_override(monkeypatch) -> None:
    s = _settings(monkeypatch, REGRESS_LAB_PORT_OFFSET="7")
    assert s.alertmanager_webhook_url == f"http://127.0.0.1:{19093 + 7 + 1}/alerts"
    doc = yaml.safe_load(alertmanager.alertmanager_yml(s))
    assert doc["route"]["group_wait"] == "1s" and doc["route"]["repeat_interval"] == "1h"
    assert doc["receivers"][0]["webhook_configs"][0]["url"] == s.alertmanager_webhook_url
    s2 = _settings(monkeypatch, REGRESS_LAB_ALERTMANAGER_WEBHOOK_URL="http://127.0.0.1:1/x")
    assert "http://127.0.0.1:1/x" in alertmanager.alertmanager_yml(s2)


def test_rabbitmq_names_and_ports_shift_with_offset(monkeypatch) -> None:
    a = _settings(monkeypatch)
    b = _settings(monkeypatch, REGRESS_LAB_PORT_OFFSET="1100")
    assert a.rabbitmq_nodename != b.rabbitmq_nodename and a.lab_name != b.lab_name
    env_b = rabbitmq.rabbitmq_env(b)
    assert f"NODE_PORT={b.rabbitmq_port}" in env_b and f"DIST_PORT={b.rabbitmq_dist_port}" in env_b
    assert f"ERL_EPMD_PORT={b.rabbitmq_epmd_port}" in env_b and "NODE_IP_ADDRESS=127.0.0.1" in env_b
    assert f"listeners.tcp.default = 127.0.0.1:{b.rabbitmq_port}" in rabbitmq.rabbitmq_conf(b)
