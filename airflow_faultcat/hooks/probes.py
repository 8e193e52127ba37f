"""The I/O of the read-only probes (:mod:`airflow_faultcat.core.probes`).

Each probe makes one library call with a timeout (no subprocess, no shell): targets arrive as
validated host names, ports and paths and are passed as data. A probe that cannot look (no
permission, timeout, missing library or connection) says ``could_not_run`` with why; it never
raises. :func:`run_probes` runs several under a total ceiling.
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
import socket
import ssl
import stat
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from airflow_faultcat.core.probes import ProbeResult, ProbeSpec
from airflow_faultcat.core.probes.targets import valid_host, valid_path, valid_port

#: Seconds one probe may take.
PROBE_TIMEOUT = 2.0
#: Seconds all the probes of one diagnosis may take.
TOTAL_TIMEOUT = 10.0


class _CouldNotRun(Exception):
    """The probe could not look (a diagnostics gap, not a verdict)."""


def _endpoint(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    h, p = valid_host(host), valid_port(port)
    if not h or not p:
        raise _CouldNotRun(f"not a host:port: {target!r}")
    return h, p


def _dns(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    host = valid_host(spec.target)
    if not host:
        raise _CouldNotRun(f"not a host name: {spec.target!r}")
    call = f"socket.getaddrinfo({host!r}, None)"
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        return "failed", {"resolved": False, "errno": exc.errno}, call, str(exc)
    addresses = sorted({info[4][0] for info in infos})
    return "ok", {"resolved": True, "addresses": addresses}, call, ", ".join(addresses)


def _tcp(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    host, port = _endpoint(spec.target)
    call = f"socket.create_connection(({host!r}, {port}), timeout={timeout:g})"
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            peer = conn.getpeername()[0]
    except socket.gaierror as exc:
        raise _CouldNotRun(f"{host} does not resolve ({exc})") from exc
    except TimeoutError:
        return "failed", {"open": False, "reason": "timeout"}, call, f"no answer within {timeout:g} s"
    except OSError as exc:
        reason = errno.errorcode.get(exc.errno or 0, "error")
        return "failed", {"open": False, "reason": reason}, call, str(exc)
    return "ok", {"open": True, "peer": peer}, call, f"connected to {peer}:{port}"


def _tls(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    host, port = _endpoint(spec.target)
    call = (
        f"ssl.create_default_context().wrap_socket(socket.create_connection(({host!r}, {port})), "
        f"server_hostname={host!r})"
    )
    context = ssl.create_default_context()
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            cert = tls.getpeercert() or {}
            version = tls.version()
    except ssl.SSLCertVerificationError as exc:
        return "failed", {"handshake": False, "verify": exc.verify_message}, call, str(exc)
    except ssl.SSLError as exc:
        return "failed", {"handshake": False, "reason": exc.reason}, call, str(exc)
    except (OSError, TimeoutError) as exc:
        raise _CouldNotRun(f"no TCP connection to {host}:{port}: {exc}") from exc
    not_after = cert.get("notAfter")
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), timezone.utc) if not_after else None
    days = (expires - datetime.now(timezone.utc)).days if expires else None
    observed = {
        "handshake": True,
        "version": version,
        "not_after": expires.isoformat() if expires else None,
        "days_left": days,
    }
    return "ok", observed, call, f"{version}, certificate valid for {days} more day(s)"


#: Free space below which a file system counts as full (bytes), and its share.
MIN_FREE_BYTES = 64 * 1024 * 1024
MIN_FREE_SHARE = 0.01


def _disk(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    path = valid_path(spec.target)
    if not path:
        raise _CouldNotRun(f"not an absolute path: {spec.target!r}")
    # The nearest existing folder: a file the task could not write may not exist at all.
    probe = path
    while not os.path.exists(probe) and probe != "/":
        probe = os.path.dirname(probe)
    call = f"os.statvfs({probe!r})"
    try:
        mode = os.stat(probe).st_mode
    except OSError as exc:
        raise _CouldNotRun(str(exc)) from exc
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        # /dev/full, a tape, a raw disk: a device's room is not its file system's free space.
        raise _CouldNotRun(
            f"{probe} is a device: the free space of the file system holding it says nothing of it"
        )
    try:
        st = os.statvfs(probe)
    except OSError as exc:
        raise _CouldNotRun(str(exc)) from exc
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    observed = {
        "checked": probe,
        "free_bytes": free,
        "total_bytes": total,
        "free_inodes": st.f_favail,
        "total_inodes": st.f_files,
    }
    full_space = total > 0 and (free < MIN_FREE_BYTES or free / total < MIN_FREE_SHARE)
    full_inodes = st.f_files > 0 and st.f_favail == 0
    text = (
        f"{free / 2**20:.0f} MiB free of {total / 2**20:.0f} MiB, {st.f_favail} of {st.f_files} inodes free"
    )
    return ("failed" if full_space or full_inodes else "ok"), observed, call, text


def _unix_socket(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    path = valid_path(spec.target)
    if not path:
        raise _CouldNotRun(f"not an absolute path: {spec.target!r}")
    call = f"socket.socket(AF_UNIX).connect({path!r})"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "failed", {"exists": False}, call, f"{path} does not exist"
    except PermissionError as exc:
        raise _CouldNotRun(str(exc)) from exc
    if not stat.S_ISSOCK(mode):
        return "failed", {"exists": True, "socket": False}, call, f"{path} is not a socket"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except PermissionError as exc:
            raise _CouldNotRun(str(exc)) from exc
        except OSError as exc:
            return "failed", {"exists": True, "accepts": False}, call, str(exc)
    return "ok", {"exists": True, "accepts": True}, call, f"{path} accepts connections"


def _process(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    name = spec.target
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum() or len(name) > 64:
        raise _CouldNotRun(f"not a process name: {name!r}")
    call = f"scan /proc/*/comm for {name!r}"
    if not os.path.isdir("/proc"):
        raise _CouldNotRun("no /proc on this host")
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="utf-8", errors="replace") as fh:
                if fh.read().strip() == name[:15]:  # the kernel keeps 15 characters
                    pids.append(int(entry))
        except OSError:
            continue
    if pids:
        return "ok", {"running": True, "pids": sorted(pids)[:20]}, call, f"{len(pids)} process(es)"
    return "failed", {"running": False}, call, f"no process named {name}"


def _redis(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    call = f"RedisHook({spec.target!r}).get_conn().ping()"
    try:
        import redis
        from airflow.providers.redis.hooks.redis import RedisHook

        client = RedisHook(redis_conn_id=spec.target).get_conn()
    except Exception as exc:
        raise _CouldNotRun(f"connection {spec.target!r}: {exc}") from exc
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # One try: redis-py's default retries with backoff would outlast the probe's time box.
    client.connection_pool.connection_kwargs.update(
        socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return "failed", {"ping": False}, call, str(exc)
    return "ok", {"ping": True}, call, "PONG"


def _connection(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    """The read-only check a connection's type allows, through its own Airflow hook."""
    conn_id = spec.target
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(conn_id)
    except Exception as exc:
        raise _CouldNotRun(f"connection {conn_id!r}: {exc}") from exc
    kind = (conn.conn_type or "").lower()
    if kind == "redis":
        return _redis(spec, timeout)
    if kind in ("http", "https"):
        return _http(conn_id, conn, timeout)
    try:
        hook = conn.get_hook()
    except Exception as exc:
        raise _CouldNotRun(f"no hook for connection type {kind!r}: {exc}") from exc
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    if not isinstance(hook, DbApiHook):
        raise _CouldNotRun(f"no read-only check for connection type {kind!r}")
    call = f"{type(hook).__name__}({conn_id!r}).get_first('SELECT 1')"
    try:
        row = hook.get_first("SELECT 1")
    except Exception as exc:
        # The database refused or could not be reached: what the failure said, seen again.
        return "failed", {"answered": False, "error": type(exc).__name__}, call, str(exc).strip()
    return "ok", {"answered": True, "row": list(row or [])}, call, f"SELECT 1 -> {list(row or [])}"


def _http(conn_id: str, conn: Any, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    try:
        import requests
        from airflow.providers.http.hooks.http import HttpHook
    except ImportError as exc:
        raise _CouldNotRun(f"the http provider is not installed: {exc}") from exc
    endpoint = str(conn.extra_dejson.get("health_endpoint") or "")
    call = f"HttpHook(method='GET', http_conn_id={conn_id!r}).run({endpoint!r})"
    try:
        response = HttpHook(method="GET", http_conn_id=conn_id).run(
            endpoint, extra_options={"timeout": timeout, "check_response": False, "allow_redirects": False}
        )
    except requests.RequestException as exc:
        return "failed", {"answered": False}, call, str(exc)
    status = response.status_code
    return ("ok" if status < 400 else "failed"), {"answered": True, "status": status}, call, f"HTTP {status}"


def _libvirt_domain(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    from airflow_faultcat.hooks.libvirt import LibvirtUnavailable, snapshot_of

    conn_id, _, domain = spec.target.partition("/")
    call = f"virConnectGetAllDomainStats on connection {conn_id!r}"
    try:
        snap = snapshot_of(conn_id)
    except LibvirtUnavailable as exc:
        # The host itself not answering is what a libvirt failure says: an observation.
        return "failed", {"reachable": False}, call, str(exc)
    except Exception as exc:
        raise _CouldNotRun(str(exc)) from exc
    if not domain:
        return "ok", {"reachable": True, "domains": len(snap.domains)}, call, f"{len(snap.domains)} domains"
    found = snap.domains.get(domain)
    if found is None:
        return "failed", {"reachable": True, "exists": False}, call, f"no domain {domain!r}"
    observed = {"reachable": True, "exists": True, "state": found.state}
    return ("ok" if found.state == "running" else "failed"), observed, call, f"{domain} is {found.state}"


def _container(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    """A container's state through the docker provider's hook (``[faultcat] docker_conn_id``)."""
    import re2

    from airflow_faultcat import conf

    conn_id, _, name = spec.target.rpartition("/")
    conn_id = conn_id or conf.get_str("docker_conn_id")
    if not re2.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", name):
        raise _CouldNotRun(f"not a container name: {name!r}")
    if not conn_id:
        raise _CouldNotRun("no container engine configured ([faultcat] docker_conn_id)")
    try:
        from airflow_faultcat.hooks.containers import ContainersUnavailable, container_snapshot
    except ImportError as exc:
        raise _CouldNotRun(str(exc)) from exc
    call = (
        f"GET /containers/json?all=1 + GET /containers/{{id}}/json on connection {conn_id!r}, name {name!r}"
    )
    try:
        found = container_snapshot(
            conn_id, timeout=timeout, exec_zombies=False, name_pattern=re2.escape(name)
        )
    except ContainersUnavailable as exc:
        # The engine not answering is what a container failure may say: an observation.
        return "failed", {"reachable": False}, call, str(exc)
    except ValueError as exc:
        raise _CouldNotRun(str(exc)) from exc
    if not found:
        return "failed", {"reachable": True, "exists": False}, call, f"no container {name!r}"
    c = found[0]
    observed = {
        "reachable": True,
        "exists": True,
        "state": c.state,
        "exit_code": c.exit_code,
        "restarts": c.restart_count,
    }
    return ("ok" if c.state == "running" else "failed"), observed, call, f"{name} is {c.state} ({c.status})"


def _airflow_health(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    """Airflow's health endpoint: the metadatabase and every component that ever heartbeat."""
    from airflow_faultcat.hooks.airflow_api import AirflowApiError, AirflowApiHook

    call = f"GET /api/v2/monitor/health on connection {spec.target!r}"
    try:
        hook = AirflowApiHook(spec.target, timeout=timeout)
    except Exception as exc:
        raise _CouldNotRun(f"connection {spec.target!r}: {exc}") from exc
    try:
        health = hook.health()
    except AirflowApiError as exc:
        return "failed", {"answered": False}, call, str(exc)
    finally:
        hook.close()
    states = {name: (info or {}).get("status") for name, info in health.items() if isinstance(info, dict)}
    unhealthy = sorted(name for name, status in states.items() if status not in ("healthy", None))
    text = ", ".join(f"{name}={status}" for name, status in sorted(states.items()))
    return ("failed" if unhealthy else "ok"), {"status": states, "unhealthy": unhealthy}, call, text


def _pool(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    """An Airflow pool's open slots (``GET /api/v2/pools/{name}``, connection ``faultcat_api_default``)."""
    from airflow_faultcat.hooks.airflow_api import AirflowApiError, AirflowApiHook

    call = f"GET /api/v2/pools/{spec.target}"
    hook = AirflowApiHook(timeout=timeout)
    try:
        pool = hook.get_pool(spec.target)
    except AirflowApiError as exc:
        if exc.status_code == 404:
            return "failed", {"exists": False}, call, f"no pool {spec.target!r}"
        raise _CouldNotRun(str(exc)) from exc
    finally:
        hook.close()
    keep = ("slots", "open_slots", "running_slots", "queued_slots", "scheduled_slots", "deferred_slots")
    observed = {k: pool.get(k) for k in keep}
    full = (pool.get("open_slots") or 0) <= 0
    return (
        ("failed" if full else "ok"),
        observed,
        call,
        f"{pool.get('open_slots')} of {pool.get('slots')} slots open",
    )


_PROBES: dict[str, Callable[[ProbeSpec, float], tuple[str, dict[str, Any], str, str]]] = {
    "dns": _dns,
    "tcp": _tcp,
    "tls": _tls,
    "disk": _disk,
    "unix_socket": _unix_socket,
    "process": _process,
    "redis": _redis,
    "connection": _connection,
    "libvirt_domain": _libvirt_domain,
    "container": _container,
    "airflow_health": _airflow_health,
    "pool": _pool,
}


def run_probe(spec: ProbeSpec, timeout: float = PROBE_TIMEOUT) -> ProbeResult:
    """Run one probe in a worker thread, given at most ``timeout`` seconds; never raises."""
    from airflow_faultcat.core.scrub import Scrubber

    started = time.monotonic()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="faultcat-probe")
    future = pool.submit(_PROBES[spec.kind], spec, timeout)
    try:
        status, observed, call, output = future.result(timeout=timeout + 0.5)
    except concurrent.futures.TimeoutError:
        # getaddrinfo has no timeout of its own: the thread is left to finish on its own.
        status, observed, call, output = "could_not_run", {}, spec.kind, f"no answer within {timeout:g} s"
    except _CouldNotRun as exc:
        status, observed, call, output = "could_not_run", {}, spec.kind, str(exc)
    except Exception as exc:
        status, observed, call, output = "could_not_run", {}, spec.kind, f"{type(exc).__name__}: {exc}"
    finally:
        pool.shutdown(wait=False)
    return ProbeResult(
        spec=spec,
        status=status,
        observed=observed,
        call=call,
        output=Scrubber().scrub(output)[:1000],
        duration_ms=round((time.monotonic() - started) * 1000, 1),
    )


def run_probes(
    specs: Iterable[ProbeSpec], *, per_probe: float = PROBE_TIMEOUT, total: float = TOTAL_TIMEOUT
) -> list[ProbeResult]:
    """Run probes one after the other until the total ceiling; the ones left say could_not_run."""
    deadline = time.monotonic() + total
    out = []
    for spec in dict.fromkeys(specs):
        left = deadline - time.monotonic()
        if left <= 0.05:
            out.append(
                ProbeResult(
                    spec=spec,
                    status="could_not_run",
                    call=spec.kind,
                    output=f"the {total:g} s ceiling was reached",
                )
            )
            continue
        out.append(run_probe(spec, min(per_probe, left)))
    return out


def probe_diagnosis(
    diagnosis: Any,
    *,
    per_probe: float = PROBE_TIMEOUT,
    total: float = TOTAL_TIMEOUT,
    extra_texts: Iterable[str] = (),
) -> tuple[list[tuple[int, ProbeSpec]], dict[ProbeSpec, ProbeResult], str | None]:
    """Run the probes of every finding of ``diagnosis`` here, each once, under the ceiling.

    :param extra_texts: more text to find targets in (the log lines around the evidence).

    :return: (finding index, spec) pairs, the result of each spec, and a note when the ceiling
        stopped some probes.
    """
    from airflow_faultcat.core.probes.catalogue import evidence_texts, plan_probes
    from airflow_faultcat.core.probes.targets import extract_targets

    planned = plan_probes(diagnosis, extract_targets(evidence_texts(diagnosis, extra_texts)))
    specs = list(dict.fromkeys(spec for _, spec in planned))
    results = dict(zip(specs, run_probes(specs, per_probe=per_probe, total=total), strict=True))
    ceiling = any("ceiling was reached" in r.output for r in results.values())
    return planned, results, (f"the {total:g} s ceiling stopped some probes" if ceiling else None)
