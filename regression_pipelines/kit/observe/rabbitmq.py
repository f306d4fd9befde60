"""What a RabbitMQ broker says about a run's queues and exchanges: the evidence a failure's detail names.

Why: "5 failed_jobs rows without a dead letter" tells the user what the run saw; the broker knows why: a policy
(or operator policy) capping a queue or giving its messages a TTL, the queue arguments in force, a dead-letter
exchange nothing is bound to, a memory or disk alarm, a restart (uptime shorter than the run), a queue deleted
from outside. Such faults come and go: a policy set and cleared, an alarm raised and cleared, a binding removed
and added back before the judge looks. So a `Sampler` (kit.observe.watch) takes looks during the run and
`findings(before, after, during)` names what changed, when it was seen and whether it was back by the end.

A look reads the management HTTP API when one is given (`snapshot_http`), else asks the broker's own node
through `rabbitmqctl` (a runner the caller provides, e.g. the lab's): one `eval` per look (`snapshot_eval`: one
Erlang VM, about 0.5 s here), falling back to the listing commands (`snapshot_ctl`: six VMs, 5-8 s here) on a
broker whose internals the eval does not fit. Every look never raises: a broker that does not answer is a state
that says why. `explain` gives "unexplained" when nothing stands out.

Reusable by any area: it knows only the queue and exchange names the run made.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from regression_pipelines.kit.observe.watch import Sampler
from regression_pipelines.measure import describe_error

UNEXPLAINED = (
    "unexplained (no policy, limiting queue argument, unbound dead-letter exchange, alarm or restart on the broker)"
)
# Policy keys and queue arguments that drop, expire, bound or reroute messages: what a loss can come from.
LIMITING_KEYS = (
    "max-length", "max-length-bytes", "overflow", "message-ttl", "expires", "delivery-limit",
    "dead-letter-exchange", "dead-letter-routing-key", "dead-letter-strategy", "queue-mode",
)  # fmt: skip
BOUNDING_KEYS = ("max-length", "max-length-bytes", "message-ttl", "expires", "delivery-limit")
AT_MOST_ONCE = (
    "a restart drops dead letters in flight from queues that dead-letter at most once (classic queues, and quorum "
    "queues without x-dead-letter-strategy at-least-once)"
)
RESTART_SLACK_S = 2.0  # uptime may lag the looks' clock by this much (plus each look's own duration)
LOOK_TIMEOUT_S = 10.0  # a listing look while watching: a paused broker must not hold the watch for long


@dataclass(frozen=True)
class Policy:
    name: str
    vhost: str
    pattern: str
    apply_to: str  # queues, exchanges, all, classic_queues, quorum_queues, streams
    definition: Mapping[str, Any]
    priority: int = 0
    operator: bool = False

    def applies(self, name: str, kind: str, queue_type: str = "") -> bool:
        """RabbitMQ's rule: the pattern is a regular expression searched in the name; apply-to selects kinds."""
        kinds = {"all": ("queue", "exchange"), "queues": ("queue",), "exchanges": ("exchange",),
                 "classic_queues": ("queue",), "quorum_queues": ("queue",), "streams": ("queue",)}  # fmt: skip
        if kind not in kinds.get(self.apply_to, ()):
            return False
        typed = {"classic_queues": "classic", "quorum_queues": "quorum", "streams": "stream"}.get(self.apply_to)
        if typed and queue_type and typed != queue_type:
            return False
        try:
            return re.search(self.pattern, name) is not None
        except re.error:
            return False

    def describe(self) -> str:
        kind = "operator policy" if self.operator else "policy"
        settings = ", ".join(f"{k}={v}" for k, v in sorted(self.definition.items()))
        return f"{kind} '{self.name}' ({settings}; pattern {self.pattern!r}, apply-to {self.apply_to}, priority " \
               f"{self.priority})"  # fmt: skip


@dataclass(frozen=True)
class QueueFacts:
    name: str
    exists: bool = True
    arguments: Mapping[str, Any] = field(default_factory=dict)
    policy: str = ""  # the policy the broker applies (name), as it reports it
    messages: int = 0
    consumers: int = 0
    queue_type: str = ""
    identity: str = ""  # the queue's process as the broker names it ("" when the API does not say)


@dataclass(frozen=True)
class BrokerState:
    at: float  # monotonic seconds, when the look started
    source: str = ""
    uptime_s: float | None = None
    version: str = ""
    policies: tuple[Policy, ...] = ()
    queues: Mapping[str, QueueFacts] = field(default_factory=dict)
    # (source exchange, destination, destination kind, routing key): the run's queues' and exchanges' bindings,
    # without the default exchange's implicit ones (nobody can remove those)
    bindings: tuple[tuple[str, str, str, str], ...] = ()
    exchanges: frozenset[str] = frozenset()
    alarms: tuple[str, ...] = ()
    error: str = ""
    took_s: float = 0.0  # how long the look took (its figures were read somewhere in that span)

    @property
    def answered(self) -> bool:
        return not self.error


Ctl = Callable[..., str]  # rabbitmqctl's arguments -> its stdout (raises when it fails)
Look = Callable[[Sequence[str], Sequence[str]], BrokerState]  # (queues, exchanges) -> one look


def snapshot_ctl(
    ctl: Ctl,
    vhost: str,
    queues: Sequence[str],
    exchanges: Sequence[str] = (),
    clock: Callable[[], float] = time.monotonic,
) -> BrokerState:
    """One look through `rabbitmqctl`'s listing commands (in parallel: each starts an Erlang VM); never raises."""
    at = clock()
    commands = {
        "status": ("status", "--formatter", "json"),
        "policies": ("list_policies", "-p", vhost, "--formatter", "json"),
        "operator": ("list_operator_policies", "-p", vhost, "--formatter", "json"),
        "queues": ("list_queues", "-p", vhost, "--formatter", "json", "name", "arguments", "policy", "messages",
                   "consumers", "type", "pid"),
        "bindings": ("list_bindings", "-p", vhost, "--formatter", "json", "source_name", "destination_name",
                     "destination_kind", "routing_key"),
        "exchanges": ("list_exchanges", "-p", vhost, "--formatter", "json", "name"),
    }  # fmt: skip
    try:
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            futures = {key: pool.submit(ctl, *args) for key, args in commands.items()}
            out = {key: json.loads(future.result() or "null") for key, future in futures.items()}
    except Exception as exc:  # the broker (or its CLI) is not answering: a state that says why
        return BrokerState(at, source="rabbitmqctl", error=describe_error(exc), took_s=clock() - at)
    status = out["status"] or {}
    return BrokerState(
        at,
        source="rabbitmqctl",
        uptime_s=float(status["uptime"]) if "uptime" in status else None,
        version=str(status.get("rabbitmq_version", "")),
        policies=(*_policies(out["policies"], False), *_policies(out["operator"], True)),
        queues=_queues(out["queues"] or [], queues),
        bindings=_bindings(
            out["bindings"] or [], queues, exchanges, "source_name", "destination_name", "destination_kind"
        ),  # fmt: skip
        exchanges=frozenset(e["name"] for e in out["exchanges"] or [] if e["name"] in exchanges),
        alarms=tuple(_alarm(a) for a in status.get("alarms", [])),
        took_s=clock() - at,
    )


# A look from inside the broker's node: the facts the listing commands give, for the run's names only, as one JSON
# line. It calls internals RabbitMQ's own CLI commands call (3.10 here); a broker they do not fit makes the eval
# fail, and the observer falls back to the listing commands. `Look` is bound for the two uses below.
EVAL_PRELUDE = """
V = @VHOST@, Queues = @QUEUES@, Exchanges = @EXCHANGES@,
S = fun S(X) when is_binary(X); is_number(X); is_boolean(X) -> X;
        S(X) when is_atom(X) -> atom_to_binary(X, utf8);
        S({resource, _, _, Name}) -> Name;
        S(X) -> iolist_to_binary(io_lib:format("~p", [X])) end,
M = fun(Props) -> maps:from_list([{S(K), S(Val)} || {K, Val} <- Props]) end,
Args = fun(Listed) -> maps:from_list([{K, S(Val)} || {K, _, Val} <- Listed]) end,
Queue = fun(Name) -> case rabbit_amqqueue:lookup(rabbit_misc:r(V, queue, Name)) of
    {ok, Q} -> I = rabbit_amqqueue:info(Q, [name, arguments, policy, messages, consumers, type, pid]),
               (M(proplists:delete(arguments, I)))#{<<"arguments">> => Args(proplists:get_value(arguments, I, []))};
    _ -> null end end,
Bound = fun(Listed) -> [M(rabbit_binding:info(B, [source_name, destination_name, destination_kind, routing_key]))
                        || B <- Listed] end,
Exists = fun(Name) -> element(1, rabbit_exchange:lookup(rabbit_misc:r(V, exchange, Name))) =:= ok end,
Alarm = fun({resource_limit, R, Node}) -> iolist_to_binary(io_lib:format("~s alarm (node ~s)", [R, Node]));
           (Other) -> S(Other) end,
Alarms = fun() -> [Alarm(case A of {Key, _} -> Key; Key -> Key end) || A <- rabbit_alarm:get_alarms()] end,
Look = fun(AlsoSeen) -> io:format("~s~n", [rabbit_json:encode(#{
  <<"uptime_ms">> => element(1, erlang:statistics(wall_clock)),
  <<"version">> => unicode:characters_to_binary(rabbit_misc:version()),
  <<"alarms">> => lists:usort(Alarms() ++ AlsoSeen),
  <<"policies">> => [M(P) || P <- rabbit_policy:list_formatted(V)],
  <<"operator_policies">> => [M(P) || P <- rabbit_policy:list_formatted_op(V)],
  <<"queues">> => [Q || Q <- [Queue(N) || N <- Queues], Q =/= null],
  <<"exchanges">> => [N || N <- Exchanges, Exists(N)],
  <<"bindings">> => lists:append([Bound(rabbit_binding:list_for_destination(rabbit_misc:r(V, queue, N)))
                                  || N <- Queues])
                 ++ lists:append([Bound(rabbit_binding:list_for_source(rabbit_misc:r(V, exchange, N)))
                                  || N <- Exchanges])})]) end,
"""
EVAL_ONCE = "Look([]), ok."
# The watch: the loop runs on the broker's node and prints a look every period, a bounded number of times; a look
# that fails prints {"error": ...} and the loop goes on. Between looks it polls the alarms every @POLL_MS@ ms (a
# cheap call) and the next look reports every alarm seen since the last: an alarm raised and cleared within one
# period (a fault healed early, when the workload it blocked ends) is seen all the same.
EVAL_STREAM = """
Poll = fun P(0, Seen) -> Seen;
           P(K, Seen) -> timer:sleep(@POLL_MS@), P(K - 1, lists:usort(Seen ++ try Alarms() catch _:_ -> [] end)) end,
Loop = fun L(0, _) -> ok;
           L(N, Seen) -> try Look(Seen) catch _:Why -> io:format("~s~n", [rabbit_json:encode(#{<<"error">> => S(Why)})])
                         end,
                         L(N - 1, Poll(@POLLS@, [])) end,
Loop(@LOOKS@, []).
"""
ALARM_POLL_S = 0.05


def _erlang_binary(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'<<"{escaped}"/utf8>>'


def eval_look_expression(
    vhost: str, queues: Sequence[str], exchanges: Sequence[str], period_s: float = 0.0, looks: int = 0
) -> str:
    """The Erlang expression of one look (`looks` 0), or of `looks` looks `period_s` apart, with the run's names in
    it (quoted as Erlang binaries)."""
    polls = max(1, round(period_s / ALARM_POLL_S))
    listed = {
        "@VHOST@": _erlang_binary(vhost),
        "@QUEUES@": "[" + ", ".join(_erlang_binary(q) for q in queues) + "]",
        "@EXCHANGES@": "[" + ", ".join(_erlang_binary(e) for e in exchanges) + "]",
        "@POLL_MS@": str(max(1, round(period_s * 1000 / polls))),
        "@POLLS@": str(polls),
        "@LOOKS@": str(looks),
    }
    text = EVAL_PRELUDE + (EVAL_STREAM if looks else EVAL_ONCE)
    for mark, value in listed.items():
        text = text.replace(mark, value)
    return text.strip()


def parse_eval_look(
    line: str, at: float, queues: Sequence[str], exchanges: Sequence[str], source: str, took_s: float = 0.0
) -> BrokerState:
    """One JSON line the eval printed as a state (raises on a line that is not one: the caller says why)."""
    facts = json.loads(line)
    if "error" in facts:
        return BrokerState(at, source=source, error=f"the look failed on the broker: {str(facts['error'])[:200]}")
    return BrokerState(
        at,
        source=source,
        uptime_s=float(facts["uptime_ms"]) / 1000,
        version=str(facts.get("version", "")),
        policies=(*_policies(facts["policies"], False), *_policies(facts["operator_policies"], True)),
        queues=_queues(facts["queues"], queues),
        bindings=_bindings(facts["bindings"], queues, exchanges, "source_name", "destination_name", "destination_kind"),
        exchanges=frozenset(e for e in facts["exchanges"] if e in exchanges),
        alarms=tuple(str(a) for a in facts["alarms"]),
        took_s=took_s,
    )


def snapshot_eval(
    ctl: Ctl,
    vhost: str,
    queues: Sequence[str],
    exchanges: Sequence[str] = (),
    clock: Callable[[], float] = time.monotonic,
) -> BrokerState:
    """One look through one `rabbitmqctl eval` (one Erlang VM instead of six); never raises."""
    at = clock()
    try:
        out = ctl("eval", eval_look_expression(vhost, queues, exchanges))
        line = next(line for line in out.splitlines() if line.startswith("{"))
        return parse_eval_look(line, at, queues, exchanges, "rabbitmqctl eval", clock() - at)
    except Exception as exc:
        return BrokerState(at, source="rabbitmqctl eval", error=_short_error(exc), took_s=clock() - at)


def _short_error(exc: BaseException) -> str:
    """The error without the command line (a timed-out subprocess names its whole argv: the eval's expression)."""
    return re.sub(r"\(Command .* timed out after", "(timed out after", describe_error(exc))[:300]


class Watch(Protocol):
    """Looks taken during a run (kit.observe.watch.Sampler is one): started once, stopped for its samples."""

    def start(self) -> Watch: ...

    def stop(self) -> list[BrokerState]: ...


Spawn = Callable[[str, float], "subprocess.Popen[str]"]  # (eval expression, timeout s) -> rabbitmqctl running it


class EvalStream:
    """A watch from inside the broker: one `rabbitmqctl eval` runs a loop on the broker's node for the whole run
    and prints a look every `period_s`, so the run pays for one CLI VM (seconds of CPU each on a busy 2-core host;
    one per look would miss a 2 s fault and slow the workload it watches). The stream ends when the node goes down
    (a restart) or the CLI fails: the watch records a look that was not answered and starts it again. A broker
    whose internals the eval does not fit (it fails while the listing commands answer) is watched through
    `fallback` looks instead. Between looks the loop polls the alarms every 50 ms, and a look names every alarm
    seen since the last one, so an alarm shorter than a period is not missed. start() returns once the first look
    is in (answered or not), at most `ready_s` later: the CLI's VM takes seconds to start on a busy host, and a
    fault that comes and goes before the watch looks would go unnamed. Never raises; stop() ends the CLI process
    it started."""

    def __init__(
        self,
        spawn: Spawn,
        vhost: str,
        queues: Sequence[str],
        exchanges: Sequence[str],
        fallback: Callable[[], BrokerState] | None = None,
        period_s: float = 0.5,
        max_s: float = 3600.0,
        keep: int = 400,
        clock: Callable[[], float] = time.monotonic,
        ready_s: float = 20.0,
    ) -> None:
        self.spawn, self.fallback, self.period_s, self.keep, self.clock = spawn, fallback, period_s, keep, clock
        self.ready_s = ready_s
        self._first = threading.Event()
        self.queues, self.exchanges, self.max_s = list(queues), list(exchanges), max_s
        self.expression = eval_look_expression(vhost, queues, exchanges, period_s, max(1, int(max_s / period_s)))
        self.samples: list[BrokerState] = []
        self.fallback_only = False
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._loop, name="rabbitmq-watch", daemon=True)

    def start(self) -> EvalStream:
        self._thread.start()
        self._first.wait(self.ready_s)
        return self

    def stop(self) -> list[BrokerState]:
        """The samples so far (idempotent)."""
        self._halt.set()
        self._end_process()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with self._lock:
            return list(self.samples)

    def _add(self, state: BrokerState) -> None:
        with self._lock:
            self.samples.append(state)
            if len(self.samples) > self.keep:
                self.samples = self.samples[::2]
        self._first.set()

    def _loop(self) -> None:
        while not self._halt.is_set():
            try:
                if self.fallback_only and self.fallback is not None:
                    self._add(self.fallback())
                    self._halt.wait(self.period_s)
                    continue
                looks, why = self._stream()
                if self._halt.is_set():
                    break
                if looks == 0 and self.fallback is not None and _eval_error(why):
                    listed = self.fallback()
                    if listed.answered:
                        self.fallback_only = True
                        self._add(listed)
                        continue
                self._add(BrokerState(self.clock(), source="rabbitmqctl eval stream", error=why))
            except Exception as exc:  # a watch that breaks anyway must not end the run: say so, try again
                self._add(BrokerState(self.clock(), source="rabbitmqctl eval stream", error=describe_error(exc)))
            self._halt.wait(self.period_s)

    def _stream(self) -> tuple[int, str]:
        """One stream until it ends: how many looks it gave, and why it ended."""
        try:
            proc = self.spawn(self.expression, self.max_s + 60)
        except Exception as exc:
            return 0, _short_error(exc)
        with self._lock:
            self._proc = proc
        if self._halt.is_set():
            self._end_process()
        looks, said = 0, ""
        for line in proc.stdout or ():
            if not line.startswith("{"):
                said = said or line.strip()  # the CLI's first line says why (later ones: node details, hints)
                continue
            try:
                self._add(parse_eval_look(line, self.clock(), self.queues, self.exchanges, "rabbitmqctl eval stream"))
                looks += 1
            except Exception as exc:
                said = said or describe_error(exc)
        code = proc.wait()
        return looks, f"the watch's rabbitmqctl eval ended (exit {code}){': ' + said[:200] if said else ''}"

    def _end_process(self) -> None:
        with self._lock:
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # its own session (spawn starts one): the CLI and its VM
            proc.wait(timeout=3)
        except (ProcessLookupError, PermissionError):
            return
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


def _eval_error(why: str) -> bool:
    """The stream's CLI said something other than "the node is not reachable": an Erlang error of the eval."""
    unreachable = ("unable to perform an operation", "nodedown", "timed out", "failed to run", "econnrefused")
    return not any(word in why.lower() for word in unreachable)


def snapshot_http(
    url: str, user: str, password: str, vhost: str, queues: Sequence[str], exchanges: Sequence[str] = (),
    timeout_s: float = 5.0, clock: Callable[[], float] = time.monotonic,
) -> BrokerState:  # fmt: skip
    """One look through the management HTTP API (`url` like http://host:15672); never raises."""
    at = clock()
    v = urllib.parse.quote(vhost, safe="")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()

    def get(path: str) -> Any:
        request = urllib.request.Request(url.rstrip("/") + path, headers={"Authorization": f"Basic {token}"})
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - the configured API URL
            return json.loads(response.read())

    try:
        overview, nodes = get("/api/overview"), get("/api/nodes")
        policies = (*_policies(get(f"/api/policies/{v}"), False), *_policies(get(f"/api/operator-policies/{v}"), True))
        listed = get(f"/api/queues/{v}")
        bindings = get(f"/api/bindings/{v}")
        names = {e["name"] for e in get(f"/api/exchanges/{v}")}
    except Exception as exc:
        return BrokerState(at, source=f"management API {url}", error=describe_error(exc), took_s=clock() - at)
    node = next((n for n in nodes if n.get("name") == overview.get("node")), nodes[0] if nodes else {})
    alarms = [f"{what} alarm (node {node.get('name', '?')})" for key, what in (("mem_alarm", "memory"),
              ("disk_free_alarm", "disk")) if node.get(key)]  # fmt: skip
    return BrokerState(
        at,
        source=f"management API {url}",
        uptime_s=float(node["uptime"]) / 1000 if "uptime" in node else None,
        version=str(overview.get("rabbitmq_version", "")),
        policies=policies,
        queues=_queues(listed, queues),
        bindings=_bindings(bindings, queues, exchanges, "source", "destination", "destination_type"),
        exchanges=frozenset(e for e in names if e in exchanges),
        alarms=tuple(alarms),
        took_s=clock() - at,
    )


def _policies(listed: Any, operator: bool) -> list[Policy]:
    found = []
    for p in listed or []:
        definition = p.get("definition", {})
        if isinstance(definition, str):
            definition = json.loads(definition or "{}")
        found.append(Policy(str(p["name"]), str(p.get("vhost", "/")), str(p["pattern"]), str(p.get("apply-to", "all")),
                            definition, int(p.get("priority", 0)), operator))  # fmt: skip
    return found


def _queues(listed: Iterable[Mapping[str, Any]], wanted: Sequence[str]) -> dict[str, QueueFacts]:
    by_name = {str(q["name"]): q for q in listed}
    found = {}
    for name in wanted:
        q = by_name.get(name)
        if q is None:
            found[name] = QueueFacts(name, exists=False)
            continue
        found[name] = QueueFacts(
            name, True, _arguments(q.get("arguments")), str(q.get("policy") or ""), _count(q.get("messages")),
            _count(q.get("consumers")), str(q.get("type") or ""), _process(q.get("pid")),
        )  # fmt: skip
    return found


def _process(raw: Any) -> str:
    """A queue process's id as "number.serial": the node part differs between one VM's view and another's
    (<0.858.0> inside the broker, #PID<10988.858.0> from rabbitmqctl)."""
    numbers = re.findall(r"\d+", str(raw or ""))
    return ".".join(numbers[-2:]) if len(numbers) >= 2 else str(raw or "")


def _count(raw: Any) -> int:
    """A queue's figure; a queue that cannot say (a quorum queue without its leader) gives '' or null."""
    try:
        return int(raw or 0)
    except (TypeError, ValueError):
        return 0


def _bindings(
    listed: Iterable[Mapping[str, Any]], queues: Sequence[str], exchanges: Sequence[str], src: str, dst: str, kind: str
) -> tuple[tuple[str, str, str, str], ...]:
    """The run's bindings (to its queues, from its exchanges), sorted, without the default exchange's."""
    found = {
        (str(b[src]), str(b[dst]), str(b[kind]), str(b.get("routing_key", "")))
        for b in listed
        if b[src] and (b[dst] in queues or b[src] in exchanges)
    }
    return tuple(sorted(found))


def _arguments(raw: Any) -> dict[str, Any]:
    """rabbitmqctl gives [[name, type, value], ...]; the HTTP API a mapping."""
    if isinstance(raw, Mapping):
        return dict(raw)
    return {item[0]: item[-1] for item in raw or [] if isinstance(item, list | tuple) and item}


def _alarm(raw: Any) -> str:
    """rabbitmqctl's status JSON: {"node": N, "resource": "memory", "type": "resource_limit"}."""
    if isinstance(raw, Mapping):
        if "resource" in raw:
            return f"{raw['resource']} alarm (node {raw.get('node', '?')})"
        return ", ".join(f"{k} {v}" for k, v in raw.items())
    return str(raw)


# -- what the looks say ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One broker object as one look shows it: `value` is compared between looks; `text` names it; `identity` (the
    queue's process) tells a queue deleted and declared again from the same queue, unless the broker restarted."""

    value: str
    text: str
    identity: str = ""


@dataclass(frozen=True)
class Kind:
    """A class of broker objects that can come and go during a run, and the words for it."""

    appeared: str
    vanished: str
    changed: str
    view: Callable[[BrokerState, Mapping[str, str]], Mapping[str, Seen]]  # (look, dead-letter targets) -> objects
    present_is_news: bool = False  # named even when in force from the first look: the run makes none of its own
    replaced: str = "deleted and declared again, or its process restarted"


def findings(
    before: BrokerState,
    after: BrokerState,
    during: Sequence[BrokerState] = (),
    dead_letter_targets: Mapping[str, str] | None = None,
    run_seconds: float | None = None,
) -> list[str]:
    """What bounds, drops or reroutes the run's messages, from the first look (at set-up), the samples and the last
    look, most telling first: restarts and looks not answered, alarms, policies, queues, exchanges and bindings
    changed (each with when it was seen and whether it was back by the end), then limits in force at the end; []
    when nothing. `dead_letter_targets`: exchange -> the queue the run meant it to feed. `run_seconds`: the run's
    length, judged against the broker's uptime when only one look answered."""
    targets = dict(dead_letter_targets or {})
    timeline = _answered(before, during, after)
    if not timeline:
        return [f"the broker could not be asked ({after.source}: {after.error})"]
    restarts = _restart_points(timeline)
    found = _restarts(before, timeline, restarts, run_seconds) + _silences(before, during, after)
    for kind in KINDS:
        found += _track(before.at, timeline, kind, restarts, targets, after)
    final = timeline[-1]
    found += [f for f in _declared_bounds(final) if f not in found]
    found += _dead_letter_routes(final, targets)
    if found and found[0].startswith("RabbitMQ restarted") and _at_most_once(final):
        found.insert(1, AT_MOST_ONCE)
    return found


def explain(
    before: BrokerState,
    after: BrokerState,
    during: Sequence[BrokerState] = (),
    dead_letter_targets: Mapping[str, str] | None = None,
    run_seconds: float | None = None,
) -> str:
    """The findings in one line, or "unexplained" when the broker shows nothing abnormal."""
    found = findings(before, after, during, dead_letter_targets, run_seconds)
    return "; ".join(found) if found else UNEXPLAINED


def _answered(before: BrokerState, during: Sequence[BrokerState], after: BrokerState) -> list[BrokerState]:
    """The looks that answered, in order, each once (`after` may be `before`: a single look)."""
    looks: list[BrokerState] = []
    for look in (before, *during, after):
        if look.answered and all(look is not seen for seen in looks):
            looks.append(look)
    return looks


def _restart_points(timeline: Sequence[BrokerState]) -> set[int]:
    """Indexes i where the broker restarted between looks i-1 and i: its uptime went back, or grew by less than
    the time between the looks (less the slack of when within each look the uptime was read)."""
    points = set()
    for i in range(1, len(timeline)):
        prev, cur = timeline[i - 1], timeline[i]
        if prev.uptime_s is None or cur.uptime_s is None:
            continue
        missing = (cur.at - prev.at) - (cur.uptime_s - prev.uptime_s)
        if cur.uptime_s < prev.uptime_s or missing > RESTART_SLACK_S + prev.took_s + cur.took_s:
            points.add(i)
    return points


def _restarts(
    before: BrokerState, timeline: Sequence[BrokerState], points: set[int], run_seconds: float | None
) -> list[str]:
    found = []
    for i in sorted(points):
        prev, cur = timeline[i - 1], timeline[i]
        assert cur.uptime_s is not None and prev.uptime_s is not None
        up_at = cur.at + cur.took_s / 2 - cur.uptime_s - before.at
        found.append(f"RabbitMQ restarted during the run (its node started again about {max(up_at, 0.0):.1f} s into "
                     f"the run: uptime {cur.uptime_s:.0f} s at the look {cur.at - before.at:.1f} s in, "
                     f"{prev.uptime_s:.0f} s at the look {prev.at - before.at:.1f} s in)")  # fmt: skip
    final = timeline[-1]
    single = len(timeline) == 1 or not before.answered
    uptime = final.uptime_s
    if not found and single and run_seconds is not None and uptime is not None and uptime < run_seconds:
        found.append(f"RabbitMQ restarted during the run (broker uptime {uptime:.0f} s, the run {run_seconds:.0f} s)")
    return found


def _silences(before: BrokerState, during: Sequence[BrokerState], after: BrokerState) -> list[str]:
    found = []
    silent = [s for s in (*during, after) if not s.answered and s is not before]
    if silent:
        first, last = silent[0], silent[-1]
        span = f"{first.at - before.at:.1f} s"
        if first is not last:
            span = f"{first.at - before.at:.1f}-{last.at - before.at:.1f} s"
        found.append(f"RabbitMQ could not be asked at {len(silent)} look{'s' if len(silent) > 1 else ''} at {span} "
                     f"into the run ({first.source}: {first.error[-200:]})")  # fmt: skip
    if not before.answered:
        found.append(f"RabbitMQ could not be asked at the start of the run ({before.source}: {before.error[-200:]})")
    return found


def _when(base: float, look: BrokerState, after: BrokerState) -> str:
    """When a look saw it: a slow look (the listing commands take seconds) read it somewhere within its span."""
    if look is after:
        return "at the end of the run"
    if look.took_s >= 1.0:
        return f"seen by the look {look.at - base:.1f}-{look.at + look.took_s - base:.1f} s into the run"
    return f"seen {look.at - base:.1f} s into the run"


def _track(
    base: float,
    timeline: Sequence[BrokerState],
    kind: Kind,
    restarts: set[int],
    targets: Mapping[str, str],
    after: BrokerState,
) -> list[str]:
    """Each object of `kind` that came, went or changed between the looks, in one sentence: what it is, each
    change with when it was seen, and how it stood at the end (gone again, back, still there)."""
    views = [kind.view(look, targets) for look in timeline]
    order: dict[str, int] = {}
    for index, view in enumerate(views):
        for key in view:
            order.setdefault(key, index)
    found = []
    for key in sorted(order, key=lambda k: (order[k], k)):
        history = [view.get(key) for view in views]
        events = _events(base, timeline, history, kind, restarts, after)
        first = next(seen for seen in history if seen is not None)
        if events:
            shown = events if len(events) <= 4 else [*events[:3], f"{len(events) - 3} more changes"]
            if history[0] is not None and kind.present_is_news:
                shown.insert(0, "in force at the first look, when the run set up")
            found.append(f"{first.text}: {', then '.join(shown)} ({_standing(base, timeline, history, after)})")
        elif history[0] is not None and kind.present_is_news:
            found.append(f"{first.text} (in force from the first look, when the run set up)")
    return found


def _events(
    base: float,
    timeline: Sequence[BrokerState],
    history: Sequence[Seen | None],
    kind: Kind,
    restarts: set[int],
    after: BrokerState,
) -> list[str]:
    """One object's changes from look to look, each with when it was seen."""
    events = []
    for i in range(1, len(timeline)):
        prev, cur, when = history[i - 1], history[i], _when(base, timeline[i], after)
        if prev is None and cur is not None:
            events.append(f"{kind.appeared} ({when})")
        elif prev is not None and cur is None:
            events.append(f"{kind.vanished} ({when})")
        elif prev is not None and cur is not None and prev.value != cur.value:
            events.append(f"{kind.changed} {cur.value} ({when})")
        elif prev and cur and prev.identity and cur.identity and prev.identity != cur.identity and i not in restarts:
            events.append(f"{kind.replaced} ({when})")
    return events


def _standing(base: float, timeline: Sequence[BrokerState], history: Sequence[Seen | None], after: BrokerState) -> str:
    """How an object that changed stood at the last look, against how it stood at the first."""
    last = timeline[-1]
    end = "by the end of the run" if last is after else f"by the last look that answered ({last.at - base:.1f} s in)"
    start, final = history[0], history[-1]
    if start is None and final is None:
        return f"gone again {end}"
    if final is None:
        return f"gone {end}"
    if start is not None and final.value == start.value:
        return f"back {end}"
    return f"still in force {end}"


def _policies_seen(state: BrokerState, _targets: Mapping[str, str]) -> dict[str, Seen]:
    """The policies that apply to the run's queues or exchanges in this look (a policy matching nothing of the
    run's is someone else's business)."""
    seen = {}
    for policy in state.policies:
        hits = [q.name for q in state.queues.values() if q.exists and policy.applies(q.name, "queue", q.queue_type)]
        hits += [e for e in sorted(state.exchanges) if policy.applies(e, "exchange")]
        if not hits:
            continue
        limiting = any(k in LIMITING_KEYS for k in policy.definition)
        what = "bounds or reroutes messages" if limiting else "applies"
        named = sorted({q for q in hits if _named_by_broker(state, q, policy)})
        text = f"{policy.describe()} {what} on {', '.join(hits)} (the broker names it on {', '.join(named) or 'none'})"
        key = f"{'operator ' if policy.operator else ''}policy {policy.name}"
        seen[key] = Seen(policy.describe(), text)
    return seen


def _alarms_seen(state: BrokerState, _targets: Mapping[str, str]) -> dict[str, Seen]:
    return {alarm: Seen("", f"broker {alarm}: publishers are blocked while it is in force") for alarm in state.alarms}


def _queues_seen(state: BrokerState, _targets: Mapping[str, str]) -> dict[str, Seen]:
    seen = {}
    for queue in state.queues.values():
        if queue.exists:
            args = ", ".join(f"{k}={v}" for k, v in sorted(queue.arguments.items()))
            value = f"{queue.queue_type or '?'}" + (f" with {args}" if args else "")
            seen[queue.name] = Seen(value, f"queue {queue.name}", queue.identity)
    return seen


def _exchanges_seen(state: BrokerState, _targets: Mapping[str, str]) -> dict[str, Seen]:
    return {name: Seen("", f"exchange {name}") for name in state.exchanges}


def _bindings_seen(state: BrokerState, targets: Mapping[str, str]) -> dict[str, Seen]:
    seen = {}
    for source, destination, kind, key in state.bindings:
        text = f"binding {source} -> {kind} {destination}" + (f" (routing key {key!r})" if key else "")
        if source in targets:
            text += " (the run's dead-letter route: while it is missing, dead letters are dropped unroutable)"
        seen[f"{source}\0{destination}\0{kind}\0{key}"] = Seen("", text)
    return seen


KINDS = (
    Kind("raised", "cleared", "changed to", _alarms_seen, present_is_news=True),
    Kind("set", "cleared", "changed to", _policies_seen, present_is_news=True),
    Kind("declared", "deleted", "declared again as", _queues_seen),
    Kind("declared", "deleted", "declared again as", _exchanges_seen),
    Kind("added", "removed", "changed to", _bindings_seen),
)


def _declared_bounds(state: BrokerState) -> list[str]:
    """Queues missing at the last look, and the run's own queue arguments that bound messages."""
    found = []
    for queue in state.queues.values():
        if not queue.exists:
            found.append(f"queue {queue.name} does not exist at the last look (deleted from outside, or lost in a "
                         "restart)")  # fmt: skip
            continue
        args = {k: v for k, v in queue.arguments.items() if k.removeprefix("x-") in LIMITING_KEYS and
                k not in ("x-dead-letter-exchange", "x-dead-letter-routing-key")}  # fmt: skip
        if any(k.removeprefix("x-") in BOUNDING_KEYS for k in args):  # an overflow mode alone bounds nothing
            listed = ", ".join(f"{k}={v}" for k, v in sorted(args.items()))
            found.append(f"queue {queue.name} ({queue.queue_type or '?'}) declared with {listed}")
    return found


def _dead_letter_routes(state: BrokerState, targets: Mapping[str, str]) -> list[str]:
    found = []
    for exchange, queue in targets.items():
        if exchange not in state.exchanges:
            found.append(f"dead-letter exchange {exchange} does not exist: dead letters are dropped")
        elif not any(src == exchange for src, *_rest in state.bindings):
            found.append(f"dead-letter exchange {exchange} has no binding (not even to {queue}): dead letters are "
                         "dropped unroutable")  # fmt: skip
    return found


def _named_by_broker(state: BrokerState, queue: str, policy: Policy) -> bool:
    facts = state.queues.get(queue)
    return facts is not None and facts.policy == policy.name


def _at_most_once(state: BrokerState) -> bool:
    return any(
        queue.exists
        and "x-dead-letter-exchange" in queue.arguments
        and (queue.queue_type != "quorum" or queue.arguments.get("x-dead-letter-strategy") != "at-least-once")
        for queue in state.queues.values()
    )


def lab_ctl(host: str, port: int, timeout_s: float = 30.0) -> Ctl | None:
    """`rabbitmqctl` against this lab's own broker when (host, port) is it (its cookie, node, epmd); else None."""
    from regression_pipelines.kit.nemeses import lab
    from regression_pipelines.kit.nemeses.base import Endpoint
    from regression_pipelines.lab.settings import LabSettings

    try:
        s = LabSettings.from_env()
        if lab.why_not_the_lab(Endpoint("rabbitmq", host, port), s) is not None:
            return None
    except Exception:  # no lab here at all
        return None

    def ctl(*args: str) -> str:
        return lab.rabbitmqctl(s, *args, timeout_s=timeout_s)

    return ctl


def ctl_observer(ctl: Ctl, vhost: str, strikes: int = 3) -> Look:
    """Looks through `rabbitmqctl`: one eval each, or the listing commands once the eval proved not to fit this
    broker (it failed `strikes` looks in a row while the listing commands answered; one failure can be the CLI
    not reaching a busy node)."""
    failed = [0]

    def look(queues: Sequence[str], exchanges: Sequence[str]) -> BrokerState:
        if failed[0] >= strikes:
            return snapshot_ctl(ctl, vhost, queues, exchanges)
        state = snapshot_eval(ctl, vhost, queues, exchanges)
        if state.answered or not _eval_error(state.error):  # a node that does not answer: no listing either
            failed[0] = 0 if state.answered else failed[0]
            return state
        listed = snapshot_ctl(ctl, vhost, queues, exchanges)
        if listed.answered:
            failed[0] += 1
            return listed
        return state

    return look


def observer(
    host: str, port: int, vhost: str, management_url: str = "", user: str = "", password: str = ""
) -> Look | None:
    """(queues, exchanges) -> one look: through the management API when its URL is given, else rabbitmqctl when the
    broker is this lab's; None when neither can ask it (the caller says so in its detail)."""
    if management_url:
        return lambda queues, exchanges: snapshot_http(management_url, user, password, vhost, queues, exchanges)
    ctl = lab_ctl(host, port)
    if ctl is None:
        return None
    return ctl_observer(ctl, vhost)


def lab_spawn(host: str, port: int) -> Spawn | None:
    """Starts `rabbitmqctl eval EXPRESSION` against this lab's own broker, in a session of its own (so the watch
    can end the CLI and its VM together); None when (host, port) is not the lab's broker."""
    from regression_pipelines.kit.nemeses import lab
    from regression_pipelines.kit.nemeses.base import Endpoint
    from regression_pipelines.lab.settings import LabSettings

    try:
        s = LabSettings.from_env()
        if lab.why_not_the_lab(Endpoint("rabbitmq", host, port), s) is not None:
            return None
    except Exception:  # no lab here at all
        return None

    def spawn(expression: str, timeout_s: float) -> subprocess.Popen[str]:
        argv, env = lab.rabbitmqctl_command(s, "-t", str(int(timeout_s)), "eval", expression)
        return subprocess.Popen(  # noqa: S603 - the lab's own rabbitmqctl, argv built from the lab's settings
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            start_new_session=True,
        )  # fmt: skip

    return spawn


WatchFactory = Callable[[Sequence[str], Sequence[str], float], Watch]  # (queues, exchanges, at most s) -> a watch


def watcher(
    host: str, port: int, vhost: str, management_url: str = "", user: str = "", password: str = ""
) -> WatchFactory | None:
    """(queues, exchanges, max_s) -> a watch (not started) that looks every 0.5 s during the run, for at most
    `max_s`: a `Sampler` of HTTP looks when the management API's URL is given, else an `EvalStream` when the
    broker is this lab's; None when neither can ask it."""
    if management_url:

        def sampler(queues: Sequence[str], exchanges: Sequence[str], max_s: float) -> Watch:
            look = lambda: snapshot_http(management_url, user, password, vhost, queues, exchanges)  # noqa: E731
            return Sampler(look, name="rabbitmq-observer")

        return sampler
    ctl, spawn = lab_ctl(host, port, timeout_s=LOOK_TIMEOUT_S), lab_spawn(host, port)
    if ctl is None or spawn is None:
        return None

    def stream(queues: Sequence[str], exchanges: Sequence[str], max_s: float) -> Watch:
        listing = lambda: snapshot_ctl(ctl, vhost, queues, exchanges)  # noqa: E731
        return EvalStream(spawn, vhost, queues, exchanges, fallback=listing, max_s=max_s)

    return stream
