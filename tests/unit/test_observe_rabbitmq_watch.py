"""The RabbitMQ observer over a run's looks (first look, samples, last look): a fault that came and went before the
judge looked is named with when it was seen and how it stood at the end, for each class of broker object
(policies, alarms, restarts, queues, exchanges, bindings); the eval look parses what the broker prints; the watch
keeps a stream's looks, starts it again when it ends, and falls back to the listing commands only when the eval
does not fit. No broker needed: the watch's CLI is a stand-in child process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from regression_pipelines.kit.observe import rabbitmq as mq

WORK, DLQ, DLX = "etl.ab.load", "etl.ab.dlq", "etl.ab.dlx"
ROUTE = (DLX, DLQ, "queue", DLQ)
TARGETS = {DLX: DLQ}
CAP = mq.Policy("cap", "/", r"^etl\.ab\.load$", "queues", {"max-length": 10, "overflow": "drop-head"}, 999)


def _queue(name: str, identity: str = "1.0", **changes: Any) -> mq.QueueFacts:
    args = {"x-queue-type": "classic", "x-dead-letter-exchange": DLX} if name == WORK else {"x-queue-type": "classic"}
    return replace(mq.QueueFacts(name, True, args, "", 0, 1, "classic", identity), **changes)


def _state(at: float, uptime: float | None = None, **changes: Any) -> mq.BrokerState:
    """A look `at` s after the first one, on a broker up since 100 s before it (unless `uptime` says otherwise)."""
    base = mq.BrokerState(
        at,
        source="test",
        uptime_s=100.0 + at if uptime is None else uptime,
        queues={WORK: _queue(WORK, "1.0"), DLQ: _queue(DLQ, "2.0")},
        bindings=(ROUTE,),
        exchanges=frozenset({DLX}),
    )
    return replace(base, **changes)


def _findings(*looks: mq.BrokerState) -> list[str]:
    return mq.findings(looks[0], looks[-1], looks[1:-1], TARGETS)


def test_nothing_changed_over_many_looks_is_unexplained() -> None:
    looks = [_state(float(t)) for t in range(6)]
    assert _findings(*looks) == []
    assert mq.explain(looks[0], looks[-1], looks[1:-1], TARGETS) == mq.UNEXPLAINED


def test_a_policy_set_and_cleared_mid_run_is_named_with_when_and_gone_again() -> None:
    capped = {WORK: _queue(WORK, policy="cap"), DLQ: _queue(DLQ, "2.0")}
    looks = [_state(0.0), _state(1.0), _state(2.0, policies=(CAP,), queues=capped), _state(3.0, policies=(CAP,)),
             _state(4.0), _state(9.0)]  # fmt: skip
    (finding,) = _findings(*looks)
    assert finding == (
        "policy 'cap' (max-length=10, overflow=drop-head; pattern '^etl\\\\.ab\\\\.load$', apply-to queues, priority "
        "999) bounds or reroutes messages on etl.ab.load (the broker names it on etl.ab.load): set (seen 2.0 s into "
        "the run), then cleared (seen 4.0 s into the run) (gone again by the end of the run)"
    )


def test_a_policy_changed_mid_run_and_one_still_in_force_at_the_end() -> None:
    ttl = mq.Policy("cap", "/", "^etl", "queues", {"message-ttl": 100}, 999, operator=True)
    looks = [_state(0.0, policies=(ttl,)), _state(1.0, policies=(replace(ttl, definition={"message-ttl": 1}),)),
             _state(2.0, policies=(replace(ttl, definition={"message-ttl": 1}), CAP))]  # fmt: skip
    changed, added = _findings(*looks)
    assert changed.startswith("operator policy 'cap' (message-ttl=100; ")
    assert (
        ": in force at the first look, when the run set up, then changed to operator policy 'cap' (message-ttl=1; "
        in changed
    )
    assert changed.endswith("(seen 1.0 s into the run) (still in force by the end of the run)")
    assert added.startswith("policy 'cap' (max-length=10") and ": set (at the end of the run) (still in force" in added


def test_a_policy_matching_nothing_of_the_runs_is_not_news() -> None:
    elsewhere = mq.Policy("theirs", "/", "^billing\\.", "all", {"max-length": 1})
    assert _findings(_state(0.0), _state(1.0, policies=(elsewhere,)), _state(2.0)) == []


def test_an_alarm_raised_and_cleared_mid_run_is_named() -> None:
    alarm = ("memory alarm (node rabbit@localhost)",)
    looks = [_state(0.0), _state(1.5, alarms=alarm), _state(2.5, alarms=alarm), _state(3.5), _state(8.0)]
    assert _findings(*looks) == [
        "broker memory alarm (node rabbit@localhost): publishers are blocked while it is in force: raised (seen "
        "1.5 s into the run), then cleared (seen 3.5 s into the run) (gone again by the end of the run)"
    ]


def test_an_alarm_in_force_at_the_first_look_and_cleared_says_both() -> None:
    alarm = ("memory alarm (node n)",)
    assert _findings(_state(0.0, alarms=alarm), _state(7.1), _state(9.0)) == [
        "broker memory alarm (node n): publishers are blocked while it is in force: in force at the first look, when "
        "the run set up, then cleared (seen 7.1 s into the run) (gone by the end of the run)"
    ]


def test_a_restart_between_looks_is_named_with_when_and_not_as_queues_declared_again() -> None:
    """After a restart every queue has a new process: that is the restart, not a queue deleted and declared again."""
    restarted = {WORK: _queue(WORK, "9.0"), DLQ: _queue(DLQ, "8.0")}
    down = mq.BrokerState(3.0, source="rabbitmqctl eval", error="NemesisError: rabbitmqctl eval: exited 69: nodedown")
    looks = [_state(0.0), _state(2.0), down, _state(5.0, uptime=1.0, queues=restarted),
             _state(7.0, uptime=3.0, queues=restarted)]  # fmt: skip
    found = _findings(*looks)
    assert found[0] == (
        "RabbitMQ restarted during the run (its node started again about 4.0 s into the run: uptime 1 s at the look "
        "5.0 s in, 102 s at the look 2.0 s in)"
    )
    assert found[1] == mq.AT_MOST_ONCE  # the work queue dead-letters at most once
    assert found[2].startswith("RabbitMQ could not be asked at 1 look at 3.0 s into the run (rabbitmqctl eval: ")
    assert len(found) == 3


def test_a_restart_whose_uptime_overtook_the_last_one_is_still_seen() -> None:
    """A broker up 1 s when the run began, restarted, then looked at again 10 s later: its uptime grew, but by
    less than the time between the looks."""
    looks = [_state(0.0, uptime=1.0), _state(12.0, uptime=3.0)]
    assert _findings(*looks)[0].startswith("RabbitMQ restarted during the run (its node started again about 9.0 s")


def test_slow_looks_do_not_make_a_restart() -> None:
    """The listing commands take seconds: the uptime is read somewhere within the look."""
    first = _state(0.0, uptime=100.0, took_s=7.0)  # uptime read late in a slow look
    second = _state(8.0, uptime=101.0, took_s=0.5)  # read early in a quick one: 7 s "missing"
    assert _findings(first, second) == []


def test_a_queue_deleted_and_declared_again_is_named_both_ways() -> None:
    gone = {WORK: mq.QueueFacts(WORK, exists=False), DLQ: _queue(DLQ, "2.0")}
    back = {WORK: _queue(WORK, "5.0"), DLQ: _queue(DLQ, "2.0")}
    looks = [_state(0.0), _state(1.0, queues=gone), _state(2.0, queues=back), _state(3.0, queues=back)]
    assert _findings(*looks) == [
        "queue etl.ab.load: deleted (seen 1.0 s into the run), then declared (seen 2.0 s into the run) (back by the "
        "end of the run)"
    ]
    between_looks = [_state(0.0), _state(1.0, queues=back), _state(2.0, queues=back)]  # no look saw it missing
    assert _findings(*between_looks) == [
        "queue etl.ab.load: deleted and declared again, or its process restarted (seen 1.0 s into the run) (back by "
        "the end of the run)"
    ]


def test_a_queue_declared_again_with_other_arguments_and_one_still_gone() -> None:
    other = _queue(WORK, "5.0", arguments={"x-queue-type": "classic", "x-max-length": 3})
    looks = [_state(0.0), _state(1.0, queues={WORK: other, DLQ: mq.QueueFacts(DLQ, exists=False)})]
    dlq_gone, redeclared, bound, dlq_missing = _findings(*looks)
    assert redeclared == "queue etl.ab.load: declared again as classic with x-max-length=3, x-queue-type=classic " \
                         "(at the end of the run) (still in force by the end of the run)"  # fmt: skip
    assert dlq_gone == "queue etl.ab.dlq: deleted (at the end of the run) (gone by the end of the run)"
    assert dlq_missing.startswith("queue etl.ab.dlq does not exist at the last look")
    assert bound == "queue etl.ab.load (classic) declared with x-max-length=3"


def test_a_dead_letter_binding_removed_and_added_back_is_named_as_the_dead_letter_route() -> None:
    looks = [_state(0.0), _state(1.0, bindings=()), _state(2.0, bindings=()), _state(3.0), _state(4.0)]
    assert _findings(*looks) == [
        f"binding {DLX} -> queue {DLQ} (routing key '{DLQ}') (the run's dead-letter route: while it is missing, dead "
        "letters are dropped unroutable): removed (seen 1.0 s into the run), then added (seen 3.0 s into the run) "
        "(back by the end of the run)"
    ]


def test_a_binding_added_from_outside_and_an_exchange_deleted_for_good() -> None:
    extra = ("amq.fanout", WORK, "queue", "")
    looks = [_state(0.0), _state(1.0, bindings=(ROUTE, extra)), _state(2.0, bindings=(), exchanges=frozenset())]
    found = _findings(*looks)
    assert "exchange etl.ab.dlx: deleted (at the end of the run) (gone by the end of the run)" in found
    assert "binding amq.fanout -> queue etl.ab.load: added (seen 1.0 s into the run), then removed (at the end of " \
           "the run) (gone again by the end of the run)" in found  # fmt: skip
    assert found[-1] == "dead-letter exchange etl.ab.dlx does not exist: dead letters are dropped"


def test_a_flapping_object_is_summed_up() -> None:
    alarm = ("disk alarm (node n)",)
    looks = [_state(float(t), alarms=alarm if t % 2 else ()) for t in range(13)]
    (finding,) = _findings(*looks)
    assert finding.count("raised") == 2 and "then 9 more changes (gone again by the end of the run)" in finding


def test_a_last_look_that_did_not_answer_judges_by_the_last_that_did() -> None:
    down = mq.BrokerState(5.0, source="test", error="OSError: refused")
    looks = [_state(0.0), _state(1.0, alarms=("memory alarm (node n)",)), _state(2.0), down]
    found = _findings(*looks)
    assert found[0] == "RabbitMQ could not be asked at 1 look at 5.0 s into the run (test: OSError: refused)"
    assert found[1].endswith("(gone again by the last look that answered (2.0 s in))")


# -- the one-eval look ------------------------------------------------------------------------------------------

# What `rabbitmqctl eval` printed for the run's names on the lab's RabbitMQ 3.10.8 (one queue missing, a policy).
EVAL_OUTPUT = json.dumps({
    "alarms": ["memory alarm (node regress-lab-15973@localhost)"],
    "bindings": [{"destination_kind": "queue", "destination_name": DLQ, "routing_key": DLQ, "source_name": DLX},
                 {"destination_kind": "queue", "destination_name": DLQ, "routing_key": DLQ, "source_name": DLX}],
    "exchanges": [DLX], "operator_policies": [],
    "policies": [{"vhost": "/", "name": "cap", "pattern": "^etl", "apply-to": "queues",
                  "definition": '{"max-length":10}', "priority": 999}],
    "queues": [{"arguments": {"x-queue-type": "quorum"}, "consumers": 0, "messages": "", "name": DLQ,
                "pid": "<0.851.0>", "policy": "cap", "type": "quorum"}],
    "uptime_ms": 120665, "version": "3.10.8",
}) + "\nok"  # fmt: skip


def test_the_eval_look_parses_what_the_broker_prints() -> None:
    asked: list[tuple[str, ...]] = []

    def ctl(*args: str) -> str:
        asked.append(args)
        return EVAL_OUTPUT

    state = mq.snapshot_eval(ctl, "/", [WORK, DLQ], [DLX])
    assert state.answered and state.source == "rabbitmqctl eval" and state.uptime_s == 120.665
    assert state.version == "3.10.8" and state.alarms == ("memory alarm (node regress-lab-15973@localhost)",)
    assert not state.queues[WORK].exists and state.queues[DLQ].identity == "851.0" and state.queues[DLQ].messages == 0
    assert state.bindings == (ROUTE,) and state.policies[0].definition == {"max-length": 10}
    assert len(asked) == 1 and asked[0][0] == "eval" and f'<<"{WORK}"/utf8>>' in asked[0][1]


def test_eval_names_are_quoted_as_erlang_binaries() -> None:
    text = mq.eval_look_expression('v"h\\', ['q"1'], [])
    assert 'V = <<"v\\"h\\\\"/utf8>>, Queues = [<<"q\\"1"/utf8>>], Exchanges = [],' in text


def test_the_ctl_observer_falls_back_to_the_listing_commands_only_when_the_eval_keeps_failing() -> None:
    calls: list[str] = []
    listing = {"status": {"uptime": 50}, "list_policies": [], "list_operator_policies": [], "list_queues": [],
               "list_bindings": [], "list_exchanges": []}  # fmt: skip

    def ctl(*args: str) -> str:
        calls.append(args[0])
        if args[0] == "eval":
            raise RuntimeError("{:undef, [{:rabbit_policy, :list_formatted, ...}]}")
        return json.dumps(listing[args[0]])

    look = mq.ctl_observer(ctl, "/", strikes=2)
    states = [look([WORK], []) for _ in range(3)]
    assert all(s.answered and s.source == "rabbitmqctl" for s in states)
    assert calls.count("eval") == 2  # the third look goes straight to the listing commands


def test_the_ctl_observer_reports_a_broker_that_does_not_answer() -> None:
    def ctl(*args: str) -> str:
        raise RuntimeError("nodedown")

    state = mq.ctl_observer(ctl, "/")([WORK], [])
    assert not state.answered and state.source == "rabbitmqctl eval" and "nodedown" in state.error


# -- the watch from inside the broker ---------------------------------------------------------------------------

LOOK_LINE = json.dumps({"alarms": [], "bindings": [], "exchanges": [DLX], "operator_policies": [], "policies": [],
                        "queues": [], "uptime_ms": 5000, "version": "3.10.8"})  # fmt: skip


def _fake_cli(script: str) -> mq.Spawn:
    """A stand-in for `rabbitmqctl eval` as a real child process (its own session, like the lab's): `script` is
    Python that prints what the CLI would."""
    spawned: list[subprocess.Popen[str]] = []

    def spawn(expression: str, timeout_s: float) -> subprocess.Popen[str]:
        assert "Loop(" in expression and timeout_s > 0
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)  # fmt: skip
        spawned.append(proc)
        return proc

    spawn.spawned = spawned  # type: ignore[attr-defined]
    return spawn


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30  # generous: a loaded host starts processes slowly; never a timing assertion
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_the_stream_keeps_each_printed_look_and_stop_ends_its_process() -> None:
    script = f"import time\nwhile True:\n    print({LOOK_LINE!r}, flush=True)\n    time.sleep(0.05)"
    spawn = _fake_cli(script)
    watch = mq.EvalStream(spawn, "/", [WORK], [DLX], period_s=0.05).start()
    _wait_for(lambda: len(watch.samples) >= 3)
    samples = watch.stop()
    assert len(samples) >= 3 and all(s.answered and s.uptime_s == 5.0 for s in samples)
    assert all(s.source == "rabbitmqctl eval stream" for s in samples)
    (proc,) = spawn.spawned  # type: ignore[attr-defined]
    assert proc.poll() is not None  # stop() ended the CLI it started
    assert watch.stop() == samples or len(watch.stop()) >= len(samples)  # idempotent


def test_a_stream_that_ends_is_a_look_not_answered_and_starts_again() -> None:
    """The node went down (a restart): the CLI says so and exits; the watch records it and starts a new stream."""
    script = f"print({LOOK_LINE!r}, flush=True)\nprint('Error: unable to perform an operation on node')\nexit(69)"
    spawn, asked = _fake_cli(script), []
    listing = lambda: asked.append(1) or _state(0.0)  # noqa: E731 - the listing commands: not for a broker that is down
    watch = mq.EvalStream(spawn, "/", [WORK], [DLX], fallback=listing, period_s=0.01).start()
    _wait_for(lambda: len(watch.samples) >= 4)
    samples = watch.stop()
    assert samples[0].answered and not samples[1].answered
    assert (
        samples[1].error
        == "the watch's rabbitmqctl eval ended (exit 69): Error: unable to perform an operation on node"
    )
    assert len(spawn.spawned) >= 2 and asked == []  # type: ignore[attr-defined]


def test_a_broker_the_eval_does_not_fit_is_watched_through_the_listing_commands() -> None:
    script = "print('Error:')\nprint('{:undef, [{:rabbit_policy, :list_formatted_op, []}]}')\nraise SystemExit(70)"
    spawn = _fake_cli(script)
    listed = _state(0.0, source="rabbitmqctl")
    watch = mq.EvalStream(spawn, "/", [WORK], [DLX], fallback=lambda: listed, period_s=0.01).start()
    _wait_for(lambda: len(watch.samples) >= 3)
    samples = watch.stop()
    assert watch.fallback_only and all(s is listed for s in samples)
    assert len(spawn.spawned) == 1  # type: ignore[attr-defined]


def test_a_look_that_fails_on_the_broker_is_a_look_not_answered() -> None:
    state = mq.parse_eval_look('{"error": "{noproc, ...}"}', 1.0, [WORK], [DLX], "rabbitmqctl eval stream")
    assert not state.answered and state.error == "the look failed on the broker: {noproc, ...}"


def test_the_stream_expression_is_bounded() -> None:
    text = mq.eval_look_expression("/", [WORK], [DLX], period_s=0.5, looks=7200)
    assert "Poll(10, [])" in text and "timer:sleep(50)" in text  # 10 alarm polls a look
    assert text.endswith("Loop(7200, []).")


def test_start_returns_once_the_first_look_is_in_so_an_early_fault_is_seen() -> None:
    """The CLI's VM is slow to start on a busy host: the workload (and a nemesis) must not begin before the watch
    looks, or a 2 s alarm raised at once is over before the first look."""
    script = f"import time\ntime.sleep(1.0)\nwhile True:\n    print({LOOK_LINE!r}, flush=True)\n    time.sleep(0.05)"
    watch = mq.EvalStream(_fake_cli(script), "/", [WORK], [DLX], period_s=0.05).start()
    try:
        assert watch.samples and watch.samples[0].answered
    finally:
        watch.stop()


def test_start_waits_for_the_first_look_no_longer_than_ready_s() -> None:
    script = "import time\ntime.sleep(60)"
    began = time.monotonic()
    watch = mq.EvalStream(_fake_cli(script), "/", [WORK], [DLX], period_s=0.05, ready_s=0.5).start()
    waited = time.monotonic() - began
    watch.stop()
    assert 0.4 <= waited < 10, waited
