"""Read one canary snapshot: Airflow's REST API, faultcat's Redis keys, the worker host, libvirt
and the container engine, each through its own hook, side by side.

A source that cannot be read is recorded in ``Snapshot.sources_unavailable`` with the reason; it
never fails the cycle. The invariants that need it are then skipped (:mod:`airflow_faultcat.core.invariants`).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from airflow_faultcat.core.invariants import ExpectedVm, ProcessInfo, RedisKey, Snapshot, seconds
from airflow_faultcat.core.scrub import scrub
from airflow_faultcat.core.shadow import LIBVIRT_SCHEME, parse_libvirt_asset

#: The calls each source makes, quoted in every violation it backs (``signal_query``).
QUERIES = {
    "api": (
        "POST /api/v2/dags/~/dagRuns/~/taskInstances/list state=[running|queued]; "
        "POST /api/v2/dags/~/dagRuns/list states=[running|queued]; GET /api/v2/pools; "
        "GET /api/v2/dags/{dag_id}/tasks (execution_timeout); "
        "GET /api/v2/dags/{dag_id}/details (dag_run_timeout)"
    ),
    "health": "GET /api/v2/monitor/health",
    "redis": "SCAN MATCH {prefix}* + TTL per key",
    "host": "psutil.process_iter(pid, ppid, name, status, cmdline, create_time)",
    "containers": "GET /containers/json?all=1 + GET /containers/{id}/json",
}
#: Most keys read per cycle: a canary must stay cheap on a Redis it shares.
MAX_REDIS_KEYS = 20000


def _flatten(pages: Any) -> list[dict[str, Any]]:
    return [entry for page in pages for entry in page]


def read_api(api: Any, snap: Snapshot) -> None:
    """Running and queued TaskInstances and DagRuns, pools, and the timeouts of the Dags involved.

    :param api: an :class:`~airflow_faultcat.hooks.airflow_api.AirflowApiHook`.
    """
    tis = _flatten(api.iter_task_instances_batch(None, states=["running", "queued"]))
    runs = _flatten(api.iter_dag_runs_batch(states=["running", "queued"]))
    pools = api.list_pools()
    timeouts: dict[tuple[str, str], float | None] = {}
    for dag_id in sorted({ti["dag_id"] for ti in tis if ti.get("state") == "running"}):
        for task_id, task in api.list_tasks(dag_id).items():
            timeouts[(dag_id, task_id)] = seconds(task.get("execution_timeout"))
    run_timeouts = {
        dag_id: seconds(api.get_dag_details(dag_id).get("dag_run_timeout"))
        for dag_id in sorted({r["dag_id"] for r in runs if r.get("state") == "running"})
    }
    for ti in tis:
        ti["execution_timeout_seconds"] = timeouts.get((ti["dag_id"], ti["task_id"]))
    for run in runs:
        run["dag_run_timeout_seconds"] = run_timeouts.get(run["dag_id"])
    snap.running_task_instances = [ti for ti in tis if ti.get("state") == "running"]
    snap.queued_task_instances = [ti for ti in tis if ti.get("state") == "queued"]
    snap.running_dag_runs = [r for r in runs if r.get("state") == "running"]
    snap.queued_dag_runs = [r for r in runs if r.get("state") == "queued"]
    snap.pools = pools


def read_health(api: Any, snap: Snapshot) -> None:
    """The health endpoint: heartbeats of the scheduler, triggerer and dag-processor."""
    snap.health = api.health()


def expected_vms(api: Any) -> list[ExpectedVm]:
    """Domains a successful task declared (``libvirt://`` outlet assets with at least one event)."""
    out = []
    for asset in api.list_assets(uri_pattern=f"{LIBVIRT_SCHEME}://"):
        # The API answers {"id": null, "timestamp": null} for an asset never produced.
        if not (asset.get("last_asset_event") or {}).get("timestamp"):
            continue
        try:
            conn_id, domain = parse_libvirt_asset(asset["uri"])
        except ValueError:
            continue
        out.append(ExpectedVm(conn_id=conn_id, domain=domain, declared_by="outlet"))
    return out


def read_libvirt(api: Any, snap: Snapshot, snapshot_of: Callable[[str], Any]) -> None:
    """The state of every domain on each libvirt connection an expected VM names.

    A connection that cannot be read is ``libvirt:<conn_id>`` in ``sources_unavailable``.
    """
    try:
        snap.expected_vms = expected_vms(api)
    except Exception as exc:
        snap.sources_unavailable["libvirt"] = f"expected VMs unknown (assets not listed): {_why(exc)}"
        return
    for conn_id in sorted({vm.conn_id for vm in snap.expected_vms}):
        try:
            snap.domains[conn_id] = snapshot_of(conn_id)
        except Exception as exc:
            snap.sources_unavailable[f"libvirt:{conn_id}"] = _why(exc)


def read_redis(client: Any, prefix: str, snap: Snapshot) -> None:
    """faultcat's keys (``prefix*``) and their TTLs, SCANned (never ``KEYS``) and pipelined."""
    keys: list[Any] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        keys.append(key)
        if len(keys) >= MAX_REDIS_KEYS:
            break
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.ttl(key)
    ttls = pipe.execute() if keys else []
    snap.redis_keys = [
        RedisKey(key=k.decode() if isinstance(k, bytes) else k, ttl=int(t))
        for k, t in zip(keys, ttls, strict=True)
        # -2: the key expired between SCAN and TTL.
        if t != -2
    ]


def read_host(snap: Snapshot) -> None:
    """Zombie processes, and Airflow's task processes, of this host (psutil).

    Only those are kept, with their parent's command line, so a snapshot stays small.
    """
    import psutil

    infos: dict[int, dict[str, Any]] = {}
    for proc in psutil.process_iter(["pid", "ppid", "name", "status", "cmdline", "create_time"]):
        info = proc.info
        infos[info["pid"]] = {**info, "cmdline": " ".join(info.get("cmdline") or [])}
    running_pids = {ti.get("pid") for ti in snap.running_task_instances if ti.get("pid")}
    # A running TaskInstance's supervisor (its parent) heartbeats for it: keep it too.
    keep = running_pids | {infos[pid]["ppid"] for pid in running_pids if pid in infos}
    wanted = [
        p
        for p in infos.values()
        if p["status"] == psutil.STATUS_ZOMBIE or "airflow" in p["cmdline"].lower() or p["pid"] in keep
    ]
    cmdlines = {pid: p["cmdline"] for pid, p in infos.items()}
    snap.processes = [
        ProcessInfo(
            pid=p["pid"],
            ppid=p["ppid"] or 0,
            name=p["name"] or "",
            status=p["status"] or "",
            cmdline=scrub(p["cmdline"])[:500],
            parent_cmdline=scrub(cmdlines[p["ppid"]])[:500] if p["ppid"] in cmdlines else None,
            create_time=p.get("create_time"),
        )
        for p in wanted
    ]


def _hostname() -> str:
    """This host's name as Airflow records it on a TaskInstance (``[core] hostname_callable``)."""
    try:
        from airflow.utils.net import get_hostname
    except ImportError:  # pragma: no cover - outside an Airflow installation
        return socket.getfqdn()
    return get_hostname()


def _why(exc: BaseException) -> str:
    return scrub(f"{type(exc).__name__}: {exc}")[:300]


def collect_snapshot(
    *,
    api: Any,
    redis_client: Any | None,
    redis_prefix: str,
    libvirt_snapshot_of: Callable[[str], Any] | None = None,
    containers: Callable[[], list[Any]] | None = None,
    host: bool = True,
) -> Snapshot:
    """Read every source, side by side, into one :class:`Snapshot`.

    :param api: an ``AirflowApiHook`` (the REST API and its health endpoint).
    :param redis_client: a ``redis.Redis`` client, ``None`` when it could not be made (the
        ``redis`` source is then unavailable).
    :param redis_prefix: faultcat's key prefix.
    :param libvirt_snapshot_of: ``conn_id -> DomainSnapshot``; ``None``: libvirt not configured.
    :param containers: returns the engine's :class:`~airflow_faultcat.core.containers.ContainerState`
        list; ``None``: no container engine configured.
    :param host: whether to read this host's processes.
    """
    snap = Snapshot(taken_at=datetime.now(timezone.utc), hostname=_hostname())
    snap.queries = dict(QUERIES)
    snap.queries["redis"] = QUERIES["redis"].format(prefix=redis_prefix)

    def guarded(source: str, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except Exception as exc:
                snap.sources_unavailable[source] = _why(exc)

        return run

    def read_containers() -> None:
        snap.containers = containers() if containers else []

    jobs: list[Callable[[], None]] = [guarded("health", lambda: read_health(api, snap))]
    if redis_client is None:
        snap.sources_unavailable["redis"] = "no Redis client"
    else:
        jobs.append(guarded("redis", lambda: read_redis(redis_client, redis_prefix, snap)))
    if libvirt_snapshot_of is None:
        snap.sources_not_configured.append("libvirt")
    else:
        jobs.append(guarded("libvirt", lambda: read_libvirt(api, snap, libvirt_snapshot_of)))
    if containers is None:
        snap.sources_not_configured.append("containers")
    else:
        jobs.append(guarded("containers", read_containers))
    with ThreadPoolExecutor(max_workers=len(jobs) + 1, thread_name_prefix="faultcat-canary") as pool:
        futures = [pool.submit(job) for job in jobs]
        # The host is read after the API so that the running TaskInstances' pids are kept.
        guarded("api", lambda: read_api(api, snap))()
        if not host:
            snap.sources_not_configured.append("host")
        else:
            guarded("host", lambda: read_host(snap))()
        for future in futures:
            future.result()
    return snap


def timed(fn: Callable[[], Snapshot]) -> tuple[Snapshot, float]:
    """Run ``fn`` and return its snapshot with the milliseconds it took."""
    started = time.perf_counter()
    snap = fn()
    return snap, round((time.perf_counter() - started) * 1000, 2)
