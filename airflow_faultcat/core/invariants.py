"""Canary invariants: what must hold of Airflow itself, checked over one snapshot.

Pure: the collectors (``airflow_faultcat.hooks.canary``) read the sources into a :class:`Snapshot`
and this module judges. An invariant names the sources it reads; when one of them could not be
read this cycle the invariant is *skipped* (neither green nor red), and the violations it had open
stay as they were. Each violation carries the state it saw and the ``signal_query`` that saw it.

Adding an invariant is one small subclass of :class:`Invariant` with a ``check`` method, added to
:data:`REGISTRY`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from airflow_faultcat.core.containers import ContainerState
from airflow_faultcat.core.models import DomainSnapshot
from airflow_faultcat.core.shadow import CheckStatus, parse_time, step

Severity = Literal["critical", "major", "minor"]
#: Sources a snapshot is read from. ``libvirt`` and ``containers`` are optional: when no
#: connection is configured they are "not configured", which skips their invariants.
Source = Literal["api", "health", "redis", "host", "libvirt", "containers"]
#: The libvirt states in which a VM that should run is not running.
_VM_DOWN = frozenset({"paused", "crashed", "shutoff", "shutdown", "pmsuspended", "blocked", "missing"})
#: Process titles of Airflow's task processes: the LocalExecutor worker that supervises a task
#: (``airflow worker -- LocalExecutor: ...``), the task runner (``airflow worker -- <ti id>``) and
#: a Celery or ``airflow tasks run`` command line.
_TASK_PROCESS_MARKS = ("airflow worker --", "airflow tasks run", "airflow task ")


_TIMEDELTA = TypeAdapter(timedelta)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CanarySettings(_Model):
    """Thresholds of the invariants (``[faultcat] canary_*``).

    :param timeout_buffer_seconds: how long past its ``execution_timeout`` (or a DagRun past its
        ``dagrun_timeout``) before it counts as stuck; Airflow itself should have acted by then.
    :param heartbeat_stale_seconds: a scheduler, triggerer or dag-processor heartbeat older than
        this is stale.
    :param queued_seconds: a TaskInstance or DagRun queued for longer than this is waiting.
    :param restart_count: restarts of one container that make a restart loop.
    :param restart_window_seconds: a container up this long since its last restart left the loop.
    :param zombie_grace_seconds: how long cycles must have seen a zombie before it counts.
    :param max_ttl_seconds: a faultcat Redis key may not live longer than this.
    """

    timeout_buffer_seconds: float = Field(default=300, ge=0)
    heartbeat_stale_seconds: float = Field(default=120, gt=0)
    queued_seconds: float = Field(default=300, ge=0)
    restart_count: int = Field(default=3, ge=1)
    restart_window_seconds: float = Field(default=300, gt=0)
    zombie_grace_seconds: float = Field(default=120, ge=0)
    max_ttl_seconds: int = Field(default=31 * 86400, gt=0)


class ProcessInfo(_Model):
    """One process on the worker host (psutil).

    :param status: psutil's status (``running``, ``sleeping``, ``stopped``, ``zombie``...).
    :param parent_cmdline: the parent's command line, when the parent still exists.
    :param create_time: when it started (seconds since the epoch).
    """

    pid: int
    ppid: int
    name: str
    status: str
    cmdline: str = ""
    parent_cmdline: str | None = None
    create_time: float | None = None


class RedisKey(_Model):
    """One of faultcat's Redis keys and its TTL in seconds (``-1``: no expiry)."""

    key: str
    ttl: int


class ExpectedVm(_Model):
    """A libvirt domain that should be running: declared by a ``libvirt://`` asset or a YAML rule."""

    conn_id: str
    domain: str
    declared_by: str


class Snapshot(_Model):
    """Everything one canary cycle read. A source that could not be read is in ``sources_unavailable``.

    :param taken_at: when the cycle started (UTC).
    :param hostname: the worker host the process data is from.
    :param sources_unavailable: source -> why it could not be read.
    :param sources_not_configured: sources with no connection configured (their checks are skipped).
    :param queries: source -> the calls that read it (the ``signal_query`` of its violations).
    :param running_task_instances: REST TaskInstances in state ``running``, each with an added
        ``execution_timeout_seconds`` (from the Dag's task list; ``None`` when unset).
    :param queued_task_instances: REST TaskInstances in state ``queued``.
    :param running_dag_runs: REST DagRuns in state ``running``, each with an added
        ``dag_run_timeout_seconds`` (from the Dag's details; ``None`` when unset).
    :param queued_dag_runs: REST DagRuns in state ``queued``.
    :param pools: REST pools (``name``, ``slots``, ``open_slots``...).
    :param health: the REST health endpoint's answer.
    :param processes: zombie processes and Airflow task processes of the worker host.
    :param redis_keys: faultcat's keys with their TTL.
    :param domains: libvirt connection id -> its domains.
    :param expected_vms: the domains that should be running.
    :param containers: every container of the container engine.
    :param zombies_first_seen: :func:`zombie_key` -> when a cycle first saw that zombie (kept in
        Redis between cycles).
    """

    taken_at: datetime
    hostname: str = ""
    sources_unavailable: dict[str, str] = Field(default_factory=dict)
    sources_not_configured: list[str] = Field(default_factory=list)
    queries: dict[str, str] = Field(default_factory=dict)
    running_task_instances: list[dict[str, Any]] = Field(default_factory=list)
    queued_task_instances: list[dict[str, Any]] = Field(default_factory=list)
    running_dag_runs: list[dict[str, Any]] = Field(default_factory=list)
    queued_dag_runs: list[dict[str, Any]] = Field(default_factory=list)
    pools: list[dict[str, Any]] = Field(default_factory=list)
    health: dict[str, Any] = Field(default_factory=dict)
    processes: list[ProcessInfo] = Field(default_factory=list)
    redis_keys: list[RedisKey] = Field(default_factory=list)
    domains: dict[str, DomainSnapshot] = Field(default_factory=dict)
    expected_vms: list[ExpectedVm] = Field(default_factory=list)
    containers: list[ContainerState] = Field(default_factory=list)
    zombies_first_seen: dict[str, datetime] = Field(default_factory=dict)

    def source_down(self, source: str) -> bool:
        """Whether ``source`` (or, for ``libvirt``, every libvirt connection) could not be read."""
        if source in self.sources_unavailable or source in self.sources_not_configured:
            return True
        if source == "libvirt":
            wanted = {vm.conn_id for vm in self.expected_vms}
            return bool(wanted) and all(f"libvirt:{c}" in self.sources_unavailable for c in wanted)
        return False


class InvariantViolation(_Model):
    """One thing that breaks an invariant.

    :param invariant_id: e.g. ``E-01``.
    :param subject: what broke it, stable from cycle to cycle (a TaskInstance, a key, a pid).
    :param message: one sentence.
    :param observed_state: what the source showed.
    :param signal_query: the call that showed it.
    """

    invariant_id: str
    subject: str
    message: str
    observed_state: dict[str, Any] = Field(default_factory=dict)
    signal_query: str = ""

    @property
    def key(self) -> str:
        """The key it fires and clears under."""
        return f"{self.invariant_id}|{self.subject}"


class Invariant(ABC):
    """One invariant. Subclasses set the class attributes and implement :meth:`check`."""

    id: ClassVar[str]
    name: ClassVar[str]
    tier: ClassVar[int] = 1
    severity: ClassVar[Severity] = "major"
    description: ClassVar[str]
    runbook: ClassVar[str]
    sources: ClassVar[tuple[Source, ...]]

    @abstractmethod
    def check(self, snap: Snapshot, settings: CanarySettings) -> list[InvariantViolation]:
        """The violations in ``snap`` (empty when the invariant holds)."""

    def undecided(self, snap: Snapshot) -> set[str]:
        """Subject prefixes this cycle could not decide although the invariant ran (a part of a
        source was down). Open violations under them stay as they were."""
        return set()

    def violation(
        self, subject: str, message: str, observed: dict[str, Any], query: str
    ) -> InvariantViolation:
        return InvariantViolation(
            invariant_id=self.id,
            subject=subject,
            message=message,
            observed_state=observed,
            signal_query=query,
        )


def _age(snap: Snapshot, value: Any) -> float | None:
    when = parse_time(value)
    return None if when is None else (snap.taken_at - when).total_seconds()


def _ti_subject(ti: dict[str, Any]) -> str:
    return f"{ti.get('dag_id')}/{ti.get('dag_run_id')}/{ti.get('task_id')}/{ti.get('map_index', -1)}"


def _ti_state(ti: dict[str, Any], **more: Any) -> dict[str, Any]:
    keep = ("dag_id", "dag_run_id", "task_id", "map_index", "try_number", "state", "hostname", "pid", "pool")
    return {k: ti.get(k) for k in keep if k in ti} | more


class StuckRunningTask(Invariant):
    id = "E-01"
    name = "TaskInstance running past its execution_timeout"
    severity = "major"
    description = (
        "A running TaskInstance is still running longer than its execution_timeout plus a buffer: "
        "the timeout did not fire (signals blocked, a hung C call, a lost supervisor)."
    )
    runbook = (
        "Open the TaskInstance's log; on its host, `py-spy dump --pid <pid>` shows where it hangs. "
        "Mark it failed (UI or PATCH .../taskInstances/<task_id>) to free its slot."
    )
    sources = ("api",)

    def check(self, snap: Snapshot, settings: CanarySettings) -> list[InvariantViolation]:
        out = []
        for ti in snap.running_task_instances:
            timeout = ti.get("execution_timeout_seconds")
            age = _age(snap, ti.get("start_date"))
            if timeout is None or age is None or age <= timeout + settings.timeout_buffer_seconds:
                continue
            out.append(
                self.violation(
                    _ti_subject(ti),
                    f"{ti.get('dag_id')}.{ti.get('task_id')} has run {age:.0f} s, "
                    f"past its execution_timeout of {timeout:.0f} s",
                    _ti_state(ti, running_seconds=round(age, 1), execution_timeout_seconds=timeout),
                    snap.queries.get("api", ""),
                )
            )
        return out


class RunningWithoutHeartbeat(Invariant):
    id = "E-02"
    name = "TaskInstance running without a live task process"
    severity = "critical"
    description = (
        "A TaskInstance the API says is running on this host has no live process behind it: its "
        "task process or the supervisor that heartbeats for it is gone, stopped or a zombie. No "
        "heartbeat reaches the API server; the scheduler only notices after "
        "[scheduler] task_instance_heartbeat_timeout."
    )
    runbook = (
        "Check the worker (dmesg for the OOM killer, `ps -o pid,stat,cmd -p <pid>`). A stopped "
        "process resumes with SIGCONT; otherwise mark the TaskInstance failed so it is retried."
    )
    sources = ("api", "host")

    def check(self, snap: Snapshot, settings: CanarySettings) -> list[InvariantViolation]:
        procs = {p.pid: p for p in snap.processes}
        out = []
        for ti in snap.running_task_instances:
            pid = ti.get("pid")
            if not pid or not _same_host(ti.get("hostname"), snap.hostname):
                continue
            proc = procs.get(pid)
            parent = procs.get(proc.ppid) if proc else None
            if proc is None:
                problem = f"its process {pid} does not exist"
            elif proc.status in ("stopped", "zombie", "dead", "tracing-stop"):
                problem = f"its process {pid} is {proc.status}"
            elif parent is not None and parent.status in ("stopped", "zombie", "dead", "tracing-stop"):
                problem = f"its supervisor {parent.pid} is {parent.status}"
            else:
                continue
            out.append(
                self.violation(
                    _ti_subject(ti),
                    f"{ti.get('dag_id')}.{ti.get('task_id')} is running but {problem}",
                    _ti_state(
                        ti,
                        process_status=proc.status if proc else "missing",
                        supervisor_pid=parent.pid if parent else None,
                        supervisor_status=parent.status if parent else None,
                    ),
                    f"{snap.queries.get('api', '')}; {snap.queries.get('host', '')}",
                )
            )
        return out


def _same_host(ti_host: Any, here: str) -> bool:
    if not ti_host or not here:
        return False
    return str(ti_host).split(".")[0].lower() == here.split(".")[0].lower()


class QueuedWithStaleScheduler(Invariant):
    id = "E-03"
    name = "Work queued with open pool slots and a stale scheduler"
    severity = "critical"
    description = (
        "TaskInstances or DagRuns have been queued longer than the threshold while their pool has "
        "open slots, and the scheduler's heartbeat is stale: nothing is picking the work up."
    )
    runbook = (
        "Check the scheduler process and its log (`airflow jobs check --job-type SchedulerJob`); "
        "restart it. A stuck executor shows as queued TaskInstances with a healthy heartbeat."
    )
    sources = ("api", "health")

    def check(self, snap: Snapshot, settings: CanarySettings) -> list[InvariantViolation]:
        scheduler = snap.health.get("scheduler") or {}
        beat_age = _age(snap, scheduler.get("latest_scheduler_heartbeat"))
        if beat_age is not None and beat_age <= settings.heartbeat_stale_seconds:
            return []
        open_slots = {p.get("name"): p.get("open_slots", 0) for p in snap.pools}
        waiting: list[dict[str, Any]] = []
        for ti in snap.queued_task_instances:
            age = _age(snap, ti.get("queued_when"))
            if age is not None and age > settings.queued_seconds and open_slots.get(ti.get("pool"), 1) > 0:
                waiting.append(_ti_state(ti, queued_seconds=round(age, 1)))
        for run in snap.queued_dag_runs:
            age = _age(snap, run.get("queued_at"))
            if age is not None and age > settings.queued_seconds:
                waiting.append(
                    {
                        "dag_id": run.get("dag_id"),
                        "run_id": run.get("dag_run_id"),
                        "queued_seconds": round(age, 1),
                    }
                )
        if not waiting or not any(slots > 0 for slots in open_slots.values()):
            return []
        beat = "never" if beat_age is None else f"{beat_age:.0f} s ago"
        return [
            self.violation(
                "scheduler",
                f"{len(waiting)} queued item(s) wait with open pool slots; last scheduler heartbeat {beat}",
                {
                    "scheduler_heartbeat_age_seconds": None if beat_age is None else round(beat_age, 1),
                    "scheduler_status": scheduler.get("status"),
                    "open_slots": open_slots,
                    "queued": waiting[:20],
                },
                snap.queries.get("api", ""),
            )
        ]


class DagRunPastTimeout(Invariant):
    id = "E-04"
    name = "DagRun running past its dagrun_timeout"
    severity = "major"
    description = (
        "A DagRun is still running longer than its Dag's dagrun_timeout plus a buffer: the "
        "scheduler should have failed it."
    )
    runbook = (
        "Check that the scheduler runs and is not stuck on this Dag; fail the DagRun by hand "
        "(PATCH .../dagRuns/<run_id> state=failed) to free max_active_runs."
    )
    sources = ("api",)

    def check(self, snap: Snapshot, settings: CanarySettings) -> list[InvariantViolation]:
        out = []
        for run in snap.running_dag_runs:
            timeout = run.get("dag_run_timeout_seconds")
            age = _age(snap, run.get("start_date"))
            if timeout is None or age is None or age <= timeout + settings.timeout_buffer_seconds:
                continue
            out.append(
                self.violation(
                    f"{run.get('dag_id')}/{run.get('dag_run_id')}",
                    f"DagRun {run.get('dag_id')} {run.get('dag_run_id')} has run {age:.0f} s, "
                    f"past its dagrun_timeout of {timeout:.0f} s",
                    {
                        "dag_id": run.get("dag_id"),
                        "run_id": run.get("dag_run_id"),
                        "state": run.get("state"),
                        "running_seconds": round(age, 1),
                        "dag_run_timeout_seconds": timeout,
                    },
                    snap.queries.get("api", ""),
                )
            )
        return out


class _StaleHeartbeat(Invariant):
    component: ClassVar[str]
    field: ClassVar[str]
    sources = ("health",)

    def check(self, snap: Snapshot, settings: CanarySettings) -> list[InvariantViolation]:
        info = snap.health.get(self.component) or {}
        # Never heard from: this deployment does not run one; nothing has gone stale.
        age = _age(snap, info.get(self.field))
        if age is None or age <= settings.heartbeat_stale_seconds:
            return []
        return [
            self.violation(
                self.component,
                f"the {self.component.replace('_', '-')}'s last heartbeat was {age:.0f} s ago",
                {
                    "status": info.get("status"),
                    self.field: info.get(self.field),
                    "age_seconds": round(age, 1),
                },
                snap.queries.get("health", ""),
            )
        ]


class StaleTriggerer(_StaleHeartbeat):
    id = "E-05"
    name = "Triggerer heartbeat stale"
    severity = "major"
    component = "triggerer"
    field = "latest_triggerer_heartbeat"
    description = "The triggerer has not heartbeat recently: deferred tasks and sensors will not resume."
    runbook = (
        "Check the triggerer process and its log (`airflow jobs check --job-type TriggererJob`); "
        "a blocking call in a trigger's run() stalls the whole loop."
    )


class StaleDagProcessor(_StaleHeartbeat):
    id = "E-06"
    name = "Dag processor heartbeat stale"
    severity = "major"
    component = "dag_processor"
    field = "latest_dag_processor_heartbeat"
    description = "The dag-processor has not heartbeat recently: Dag file changes are not picked up."
    runbook = "Check the dag-processor process and its log (`airflow jobs check --job-type DagProcessorJob`)."


class RedisKeyWithoutExpiry(Invariant):
    id = "E-07"
    name = "faultcat Redis key without expiry"
    severity = "major"
    description = (
        "Every faultcat key (locks, claims, budgets, history) must expire. A lock without a TTL "
        "blocks its recovery forever; any key without one grows Redis without bound."
    )
    runbook = (
        "Inspect with `redis-cli TTL <key>` and `redis-cli TYPE <key>`; delete a stale lock "
        "(`redis-cli DEL <key>`) or give the key an expiry (`EXPIRE`)."
    )
    sources = ("redis",)

    def check(self, snap: Snapshot, settings: CanarySettings) -> list[InvariantViolation]:
        out = []
        for item in snap.redis_keys:
            if item.ttl == -1:
                message = f"Redis key {item.key} has no expiry"
            elif item.ttl > settings.max_ttl_seconds:
                limit = settings.max_ttl_seconds
                message = f"Redis key {item.key} expires in {item.ttl} s, past the {limit} s limit"
            else:
                continue
            out.append(
                self.violation(
                    item.key, message, {"key": item.key, "ttl": item.ttl}, snap.queries.get("redis", "")
                )
            )
        return out


class ZombieTaskProcess(Invariant):
    id = "E-08"
    name = "Zombie or orphaned task process"
    severity = "major"
    description = (
        "A task process on this host is a zombie (exited, never reaped by its Airflow parent) for "
        "longer than a grace period, or an orphan (its supervisor is gone and it was re-parented "
        "to init). A zombie of a moment is normal: the LocalExecutor reaps its workers on its "
        "next loop, so a zombie counts only once cycles have seen it for the grace period."
    )
    runbook = (
        "`ps -o pid,ppid,stat,cmd -p <pid>` names the parent; a zombie goes when its parent "
        "reaps it or exits. Kill an orphan that holds resources once its TaskInstance is finished."
    )
    # Redis remembers since when each zombie has been seen.
    sources = ("host", "redis")

    def check(self, snap: Snapshot, settings: CanarySettings) -> list[InvariantViolation]:
        out = []
        for proc in snap.processes:
            since = snap.zombies_first_seen.get(zombie_key(proc))
            lasted = (snap.taken_at - since).total_seconds() if since else 0.0
            if proc.status == "zombie" and _is_airflow(proc.parent_cmdline):
                if lasted < settings.zombie_grace_seconds:
                    continue
                message = (
                    f"process {proc.pid} ({proc.name}) has been a zombie of Airflow process {proc.ppid} "
                    f"for {lasted:.0f} s or more"
                )
            elif proc.status != "zombie" and proc.ppid == 1 and _is_task_process(proc.cmdline):
                message = f"task process {proc.pid} is an orphan (parent is init)"
            else:
                continue
            out.append(
                self.violation(
                    f"pid:{proc.pid}",
                    message,
                    {
                        "pid": proc.pid,
                        "ppid": proc.ppid,
                        "name": proc.name,
                        "status": proc.status,
                        "parent_cmdline": (proc.parent_cmdline or "")[:200],
                    }
                    | ({"zombie_seconds": round(lasted, 1)} if proc.status == "zombie" else {}),
                    snap.queries.get("host", ""),
                )
            )
        return out


def zombie_key(proc: ProcessInfo) -> str:
    """A zombie's identity across cycles: its pid and start time (a reused pid is another process)."""
    return f"{proc.pid}@{proc.create_time or 0:.2f}"


def _is_airflow(cmdline: str | None) -> bool:
    return bool(cmdline) and "airflow" in cmdline.lower()


def _is_task_process(cmdline: str | None) -> bool:
    text = (cmdline or "").lower()
    return any(mark in text for mark in _TASK_PROCESS_MARKS)


class VmNotRunning(Invariant):
    id = "E-09"
    name = "Expected VM not running"
    severity = "critical"
    description = (
        "A libvirt domain that a postcondition expects running (a libvirt:// asset or a YAML "
        "rule) is paused, crashed, shut off or gone."
    )
    runbook = (
        "`virsh -c <uri> domstate --reason <domain>`; `virsh resume` a paused domain, read "
        "/var/log/libvirt/qemu/<domain>.log for a crash before `virsh start`."
    )
    sources = ("libvirt",)

    def check(self, snap: Snapshot, settings: CanarySettings) -> list[InvariantViolation]:
        out = []
        for vm in snap.expected_vms:
            domains = snap.domains.get(vm.conn_id)
            if domains is None:
                continue
            seen = domains.domains.get(vm.domain)
            state = seen.state if seen else "missing"
            if state not in _VM_DOWN:
                continue
            out.append(
                self.violation(
                    f"{vm.conn_id}/{vm.domain}",
                    f"VM {vm.domain} on {vm.conn_id} is {state}",
                    {
                        "domain": vm.domain,
                        "conn_id": vm.conn_id,
                        "state": state,
                        "declared_by": vm.declared_by,
                    }
                    | ({"reason": seen.reason} if seen and seen.reason is not None else {}),
                    f"{domains.query} on {domains.uri}",
                )
            )
        return out

    def undecided(self, snap: Snapshot) -> set[str]:
        return {f"{vm.conn_id}/" for vm in snap.expected_vms if vm.conn_id not in snap.domains}


class ContainerRestartLoop(Invariant):
    id = "E-10"
    name = "Container in a restart loop"
    severity = "major"
    description = (
        "A container keeps exiting and being restarted by its restart policy: its restart count "
        "reached the threshold and it has not stayed up since its last restart."
    )
    runbook = (
        "`docker logs --tail 50 <name>` (or podman) shows why it exits; "
        "`docker inspect <name>` its exit code."
    )
    sources = ("containers",)

    def check(self, snap: Snapshot, settings: CanarySettings) -> list[InvariantViolation]:
        out = []
        for c in snap.containers:
            if c.restart_count < settings.restart_count:
                continue
            up_for = _age(snap, c.started_at)
            # A container that has run steadily since its last restart is out of the loop.
            if c.state == "running" and up_for is not None and up_for > settings.restart_window_seconds:
                continue
            out.append(
                self.violation(
                    f"container:{c.name}",
                    f"container {c.name} restarted {c.restart_count} times "
                    f"(state {c.state}, exit code {c.exit_code})",
                    {
                        "name": c.name,
                        "image": c.image,
                        "state": c.state,
                        "status": c.status,
                        "restart_count": c.restart_count,
                        "restart_policy": c.restart_policy,
                        "exit_code": c.exit_code,
                    },
                    snap.queries.get("containers", ""),
                )
            )
        return out


class ContainerZombies(Invariant):
    id = "E-11"
    name = "Zombie processes inside a running container"
    severity = "minor"
    tier = 2
    description = (
        "A running container holds zombie processes: its PID 1 does not reap its children (no "
        "init), which leaks PIDs until the container cannot fork."
    )
    runbook = (
        "Run the container with an init (`--init`, tini) or fix the entrypoint to wait for its children."
    )
    sources = ("containers",)

    def check(self, snap: Snapshot, settings: CanarySettings) -> list[InvariantViolation]:
        out = []
        for c in snap.containers:
            if c.state != "running" or not c.zombies:
                continue
            out.append(
                self.violation(
                    f"container:{c.name}",
                    f"container {c.name} holds {len(c.zombies)} zombie process(es)",
                    {"name": c.name, "zombies": [z.model_dump() for z in c.zombies[:20]]},
                    c.zombie_probe or snap.queries.get("containers", ""),
                )
            )
        return out


#: Every invariant a cycle checks, in id order.
REGISTRY: tuple[Invariant, ...] = (
    StuckRunningTask(),
    RunningWithoutHeartbeat(),
    QueuedWithStaleScheduler(),
    DagRunPastTimeout(),
    StaleTriggerer(),
    StaleDagProcessor(),
    RedisKeyWithoutExpiry(),
    ZombieTaskProcess(),
    VmNotRunning(),
    ContainerRestartLoop(),
    ContainerZombies(),
)


class SkippedCheck(_Model):
    invariant_id: str
    reason: str


class CanaryTransitions(_Model):
    """What changed since the previous cycle (the shadow scan's tri-state step).

    :param fired: violations seen now and not open before: alert once.
    :param cleared: keys of open violations whose invariant ran and no longer sees them.
    :param still_open: keys of violations open before and seen again (no repeat alert).
    :param undecided: keys of open violations whose invariant was skipped this cycle.
    """

    fired: list[InvariantViolation] = Field(default_factory=list)
    cleared: list[str] = Field(default_factory=list)
    still_open: list[str] = Field(default_factory=list)
    undecided: list[str] = Field(default_factory=list)


class CycleReport(_Model):
    """One canary cycle.

    :param checks_run: ids of the invariants checked.
    :param checks_skipped: the ones skipped, and why (a source unavailable or not configured).
    :param sources_unavailable: source -> why it could not be read.
    :param violations: everything that breaks an invariant now (open or new).
    :param transitions: fired / cleared / still open / undecided.
    :param cycle_duration_ms: snapshot plus checks, in milliseconds.
    """

    taken_at: datetime
    checks_run: list[str] = Field(default_factory=list)
    checks_skipped: list[SkippedCheck] = Field(default_factory=list)
    sources_unavailable: dict[str, str] = Field(default_factory=dict)
    sources_not_configured: list[str] = Field(default_factory=list)
    violations: list[InvariantViolation] = Field(default_factory=list)
    transitions: CanaryTransitions = Field(default_factory=CanaryTransitions)
    cycle_duration_ms: float = 0.0
    snapshot_ms: float = 0.0


def by_id(invariant_id: str, registry: Sequence[Invariant] = REGISTRY) -> Invariant:
    """The invariant with this id.

    :raises KeyError: no such invariant.
    """
    for inv in registry:
        if inv.id == invariant_id:
            return inv
    raise KeyError(invariant_id)


def run_checks(
    snap: Snapshot,
    open_keys: Iterable[str],
    settings: CanarySettings | None = None,
    registry: Sequence[Invariant] = REGISTRY,
) -> CycleReport:
    """Check every invariant of ``registry`` over ``snap`` and step the open violations.

    :param open_keys: keys (:attr:`InvariantViolation.key`) open after the previous cycle.
    :return: the report; ``cycle_duration_ms`` covers the checks only (the caller adds the snapshot).
    """
    started = time.perf_counter()
    settings = settings or CanarySettings()
    open_keys = list(open_keys)
    report = CycleReport(
        taken_at=snap.taken_at,
        sources_unavailable=dict(snap.sources_unavailable),
        sources_not_configured=list(snap.sources_not_configured),
    )
    verdicts: list[tuple[str, CheckStatus, InvariantViolation | None]] = []
    for inv in registry:
        prefix = f"{inv.id}|"
        mine = [k for k in open_keys if k.startswith(prefix)]
        down = [s for s in inv.sources if snap.source_down(s)]
        if down:
            reasons = [
                "not configured"
                if s in snap.sources_not_configured
                else snap.sources_unavailable.get(s, "unavailable")
                for s in down
            ]
            report.checks_skipped.append(
                SkippedCheck(
                    invariant_id=inv.id,
                    reason="; ".join(f"{s}: {r}" for s, r in zip(down, reasons, strict=True)),
                )
            )
            verdicts.extend((k, "UNAVAILABLE", None) for k in mine)
            continue
        report.checks_run.append(inv.id)
        found = inv.check(snap, settings)
        report.violations.extend(found)
        seen = {v.key for v in found}
        verdicts.extend((v.key, "VIOLATION", v) for v in found)
        undecided = {prefix + s for s in inv.undecided(snap)}
        for key in mine:
            if key in seen:
                continue
            status: CheckStatus = "UNAVAILABLE" if any(key.startswith(u) for u in undecided) else "PASS"
            verdicts.append((key, status, None))
    fired, cleared, still_open, undecided_keys = step(open_keys, verdicts)
    report.transitions = CanaryTransitions(
        fired=[v for v in fired if v is not None],
        cleared=cleared,
        still_open=still_open,
        undecided=undecided_keys,
    )
    report.cycle_duration_ms = round((time.perf_counter() - started) * 1000, 2)
    return report


def describe(registry: Sequence[Invariant] = REGISTRY) -> list[dict[str, Any]]:
    """The registry as plain data (id, name, tier, severity, sources, description, runbook)."""
    return [
        {
            "id": inv.id,
            "name": inv.name,
            "tier": inv.tier,
            "severity": inv.severity,
            "sources": list(inv.sources),
            "description": inv.description,
            "runbook": inv.runbook,
        }
        for inv in registry
    ]


def seconds(value: Any) -> float | None:
    """A REST TimeDelta (``{"days", "seconds", "microseconds"}``), an ISO 8601 duration, a number
    or ``None``, as seconds (``None`` when unset or unreadable)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        # DAGDetailsResponse.dag_run_timeout is an ISO 8601 duration ("PT3S", "P1DT2H").
        try:
            return _TIMEDELTA.validate_python(value).total_seconds()
        except ValueError:
            return None
    if isinstance(value, dict):
        return timedelta(
            days=value.get("days", 0) or 0,
            seconds=value.get("seconds", 0) or 0,
            microseconds=value.get("microseconds", 0) or 0,
        ).total_seconds()
    return None
