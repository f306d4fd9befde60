"""Process faults on a whole service: restart (graceful or immediate) and pause (SIGSTOP / SIGCONT).

A restart stops the service the way its operator would (PostgreSQL: fast shutdown, SIGINT, or immediate
shutdown, SIGQUIT, as `pg_ctl stop -m fast|immediate` sends; Redis and RabbitMQ: their stop signal, or SIGKILL)
through the lab's own control, so the lab's state stays true; the service stays down for `nemesis_for_s` and
is started again at heal, which waits until it is ready. A pause SIGSTOPs the service's processes (parents
first, so nothing new is forked) and SIGCONTs them at heal; the stop is verified in /proc/PID/stat, because a
stopped child can look alive to `kill -0` here. PIDs come from the lab's state file.
"""

from __future__ import annotations

import signal

from regression_pipelines.kit.nemeses import lab
from regression_pipelines.kit.nemeses.base import Endpoint, NemesisError, Target
from regression_pipelines.kit.nemeses.service import ServiceNemesis
from regression_pipelines.lab import control
from regression_pipelines.lab.services import patroni as lab_patroni
from regression_pipelines.lab.settings import LabSettings

SIGNAL_NAMES = {None: "its stop signal", signal.SIGQUIT: "SIGQUIT", signal.SIGKILL: "SIGKILL"}


class Restart(ServiceNemesis):
    """Stop the whole service (all its lab processes), start it again at heal."""

    destructive = True
    sig: int | None = None  # None: the service's own stop signal (the lab's `down`)

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        pids = control.stop_service(s, self.service, self.sig)
        return f"stopped {self.service} (pids {pids}, {SIGNAL_NAMES.get(self.sig, self.sig)})"

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        started = control.start_processes(s, self.service)
        return f"started {self.service} again (pids {sorted(started.values())})" if started else "was running"


class PostgresRestartFast(Restart):
    name = "postgres_restart_fast"
    service = "postgres"
    description = "stops PostgreSQL with a fast shutdown (SIGINT: sessions are disconnected, open transactions roll back) and starts it after nemesis_for_s"  # noqa: E501


class PostgresRestartImmediate(Restart):
    name = "postgres_restart_immediate"
    service = "postgres"
    sig = signal.SIGQUIT
    description = "stops PostgreSQL with an immediate shutdown (SIGQUIT: no checkpoint, crash recovery on start) and starts it after nemesis_for_s"  # noqa: E501


class RedisRestart(Restart):
    name = "redis_restart"
    service = "redis"
    description = "stops Redis (SIGTERM; the lab's Redis keeps no data on disk, so the cache comes back empty) and starts it after nemesis_for_s"  # noqa: E501


class RedisKill(Restart):
    name = "redis_kill"
    service = "redis"
    sig = signal.SIGKILL
    description = "kills Redis (SIGKILL) and starts it after nemesis_for_s"


class RabbitmqRestart(Restart):
    name = "rabbitmq_restart"
    service = "rabbitmq"
    description = "stops the lab's RabbitMQ (SIGTERM, a clean node shutdown) and starts it after nemesis_for_s"


class RabbitmqKill(Restart):
    name = "rabbitmq_kill"
    service = "rabbitmq"
    sig = signal.SIGKILL
    description = "kills the lab's RabbitMQ (SIGKILL of the Erlang VM) and starts it after nemesis_for_s"


class Pause(ServiceNemesis):
    """SIGSTOP every process of the service for the window; SIGCONT at heal."""

    destructive = True

    def roots(self, s: LabSettings, target: Target) -> list[int]:
        return list(control.service_pids(s, self.service).values())

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        roots = self.roots(s, target)
        if not roots:
            raise NemesisError(f"no running lab process of {self.service} to pause")
        pids, late = lab.pause_processes(roots)
        self.state(target)["paused"] = pids  # first: the heal resumes them even if the check below fails
        if late:
            raise NemesisError(f"processes {late} of {self.service} did not stop after SIGSTOP")
        return f"paused {self.service}: SIGSTOP to {len(pids)} processes (roots {roots})"

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        pids = self.state(target).pop("paused", [])
        if not pids:
            return "nothing paused"
        still = lab.resume_processes(pids)
        if still:
            raise NemesisError(f"processes {still} still stopped after SIGCONT")
        return f"resumed {len(pids)} processes (SIGCONT)"


class PostgresPause(Pause):
    name = "postgres_pause"
    service = "postgres"
    description = "freezes PostgreSQL (SIGSTOP of the postmaster and every backend) for nemesis_for_s"


class RedisPause(Pause):
    name = "redis_pause"
    service = "redis"
    description = "freezes Redis (SIGSTOP) for nemesis_for_s"


class RabbitmqPause(Pause):
    name = "rabbitmq_pause"
    service = "rabbitmq"
    description = "freezes the lab's RabbitMQ (SIGSTOP of the Erlang VM and its helpers) for nemesis_for_s"


# -- Patroni: one replica (a leader fault is the destructive ha_failover area's) ------------------------------


def replica_member(s: LabSettings, seed: int) -> str:
    """A replica by the members' own REST answer, chosen by the seed among them (never the leader)."""
    replicas = []
    for index, member in enumerate(s.patroni_members):
        document = lab_patroni.member_document(s, index)
        if document and document.get("role") in ("replica", "sync_standby"):
            replicas.append(member)
    if not replicas:
        raise NemesisError("no Patroni member reports role replica; is the cluster up (`regress lab up patroni`)?")
    return replicas[seed % len(replicas)]


class PatroniReplicaRestart(ServiceNemesis):
    name = "patroni_replica_restart"
    service = "patroni"
    destructive = True
    description = "kills one replica's postmaster (SIGKILL) so Patroni restarts it in place; heal waits until the member runs again"  # noqa: E501

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        member = replica_member(s, target.seed)
        pid = lab_patroni.postmaster_pid(s, member)
        if pid is None:
            raise NemesisError(f"replica {member} has no running postmaster")
        lab.signal_all([pid], signal.SIGKILL)
        self.state(target)["member"] = member
        return f"killed the postmaster of replica {member} (pid {pid})"

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        member = self.state(target).pop("member", None)
        if member is None:
            return "nothing to heal"
        lab.PatroniLabControl(s).restart_member(member)
        return f"replica {member} running again"


class PatroniReplicaPause(Pause):
    name = "patroni_replica_pause"
    service = "patroni"
    description = "freezes one replica node (SIGSTOP of its Patroni, postmaster and backends) for nemesis_for_s"

    def roots(self, s: LabSettings, target: Target) -> list[int]:
        member = replica_member(s, target.seed)
        patroni_pid, postmaster = lab.PatroniLabControl(s).pids(member)
        return [p for p in (patroni_pid, postmaster) if p is not None]


# -- Citus: one worker -------------------------------------------------------------------------------------------

CITUS_WORKER = "citus-worker1"


class CitusWorkerRestart(ServiceNemesis):
    name = "citus_worker_restart"
    service = "citus"
    destructive = True
    description = "stops one Citus worker (fast shutdown) and starts it after nemesis_for_s"

    def act(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        pids = control.stop_service(s, "citus", processes=(CITUS_WORKER,))
        return f"stopped {CITUS_WORKER} (pids {pids})"

    def heal(self, s: LabSettings, target: Target, endpoint: Endpoint) -> str:
        started = control.start_processes(s, "citus", processes=(CITUS_WORKER,))
        return f"started {CITUS_WORKER} again" if started else "was running"


class CitusWorkerPause(Pause):
    name = "citus_worker_pause"
    service = "citus"
    description = "freezes one Citus worker (SIGSTOP of its postmaster and backends) for nemesis_for_s"

    def roots(self, s: LabSettings, target: Target) -> list[int]:
        return list(control.service_pids(s, "citus", (CITUS_WORKER,)).values())


NEMESES = (
    PostgresRestartFast(),
    PostgresRestartImmediate(),
    RedisRestart(),
    RedisKill(),
    RabbitmqRestart(),
    RabbitmqKill(),
    PostgresPause(),
    RedisPause(),
    RabbitmqPause(),
    PatroniReplicaRestart(),
    PatroniReplicaPause(),
    CitusWorkerRestart(),
    CitusWorkerPause(),
)
