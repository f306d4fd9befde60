"""HAProxy stats CSV parsing: only servers UP by a passed check count (2.6 shows unchecked servers UP)."""

from __future__ import annotations

from regression_pipelines.lab.services.haproxy import haproxy_routing_ok, parse_haproxy_csv, up_servers

HEADER = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,status,weight,check_status,\n"


def _csv(rows: list[tuple[str, str, str, str]]) -> str:
    body = "".join(f"{px},{sv},0,0,0,0,,0,0,0,{st},1,{chk},\n" for px, sv, st, chk in rows)
    return HEADER + body


def test_ready_when_one_primary_and_two_replicas_checked_up() -> None:
    text = _csv(
        [
            ("stats", "FRONTEND", "OPEN", ""),
            ("primary", "FRONTEND", "OPEN", ""),
            ("primary", "pg0", "UP", "L7OK"),
            ("primary", "pg1", "DOWN", "L7STS"),
            ("primary", "pg2", "DOWN", "L7STS"),
            ("primary", "BACKEND", "UP", ""),
            ("replicas", "pg0", "DOWN", "L7STS"),
            ("replicas", "pg1", "UP", "L7OK"),
            ("replicas", "pg2", "UP 1/2", "L7OK"),
        ]
    )
    rows = parse_haproxy_csv(text)
    assert up_servers(rows, "primary") == ["pg0"]
    assert up_servers(rows, "replicas") == ["pg1", "pg2"]
    assert haproxy_routing_ok(rows)[0]


def test_not_ready_while_checks_have_not_run() -> None:
    rows = parse_haproxy_csv(
        _csv([("primary", f"pg{i}", "UP", "INI") for i in range(3)] + [("replicas", "pg0", "UP", "INI")])
    )
    ok, detail = haproxy_routing_ok(rows)
    assert not ok and "primary UP []" in detail


def test_two_primaries_is_not_ready() -> None:
    rows = parse_haproxy_csv(
        _csv(
            [("primary", "pg0", "UP", "L7OK"), ("primary", "pg1", "UP", "L7OK")]
            + [("replicas", "pg1", "UP", "L7OK"), ("replicas", "pg2", "UP", "L7OK")]
        )
    )
    assert not haproxy_routing_ok(rows)[0]
