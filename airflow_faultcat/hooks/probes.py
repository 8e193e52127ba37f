"""The I/O of the read-only probes (:mod:`airflow_faultcat.core.probes`).

Each probe makes library calls with a timeout (no subprocess, no shell): targets arrive as
validated host names, ports, URLs and paths and are passed as data. A probe that cannot look (no
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
from airflow_faultcat.core.probes.targets import valid_host, valid_path, valid_port, valid_url

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
#: The (major, minor) numbers of Linux's ``/dev/full``, a character device.
FULL_DEVICE = (1, 7)


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
        info = os.stat(probe)
    except OSError as exc:
        raise _CouldNotRun(str(exc)) from exc
    mode = info.st_mode
    if stat.S_ISCHR(mode) and (os.major(info.st_rdev), os.minor(info.st_rdev)) == FULL_DEVICE:
        # The kernel's full device (under any name): its "No space left" is true by design.
        return (
            "failed",
            {"checked": probe, "device": "full"},
            f"os.stat({probe!r})",
            f"{probe} is the kernel's full device: every write to it fails with ENOSPC",
        )
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        # A tape, a raw disk, /dev/null: a device's room is not its file system's free space.
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


#: What ``os.stat`` says a path is (it follows symlinks: a link reads as what it points at).
_FILE_TYPES = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "directory"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "char_device"),
    (stat.S_ISBLK, "block_device"),
    (stat.S_ISFIFO, "fifo"),
)


def _path(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    """Does a path exist now, and what is it (``os.stat``; the file is never opened)."""
    path = valid_path(spec.target)
    if not path:
        raise _CouldNotRun(f"not an absolute path: {spec.target!r}")
    call = f"os.stat({path!r})"
    try:
        # Follows symlinks, as the task's open() did: a dangling link is a missing path.
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        nearest = os.path.dirname(path)
        while not os.path.isdir(nearest) and nearest != "/":
            nearest = os.path.dirname(nearest)
        observed = {"exists": False, "nearest_existing": nearest}
        return "failed", observed, call, f"{path} does not exist (nearest existing folder: {nearest})"
    except OSError as exc:
        # No permission to look (or an I/O error): the path may well be there.
        raise _CouldNotRun(str(exc)) from exc
    kind = next((name for test, name in _FILE_TYPES if test(mode)), "other")
    readable = os.access(path, os.R_OK)
    observed = {"exists": True, "type": kind, "readable": readable}
    return "ok", observed, call, f"{path} is a {kind}" + ("" if readable else ", not readable by this user")


#: Available memory below which a host counts as short of it (bytes), and its share of the total.
MIN_AVAILABLE_BYTES = 256 * 1024 * 1024
MIN_AVAILABLE_SHARE = 0.05
#: The share of its cgroup's ``memory.max`` above which a cgroup counts as at its limit.
CGROUP_FULL_SHARE = 0.95
CGROUP_ROOT = "/sys/fs/cgroup"


def _read_small(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read(4096)
    except OSError:
        return None


def _cgroup_memory() -> dict[str, int]:
    """This process's cgroup v2 memory limit, usage and OOM kills; what is missing is left out
    (cgroup v1, the root cgroup, no ``/proc``)."""
    text = _read_small("/proc/self/cgroup") or ""
    relative = next((line[3:] for line in text.splitlines() if line.startswith("0::")), None)
    folder = valid_path(CGROUP_ROOT + relative) if relative and relative.startswith("/") else None
    if not folder or not (folder == CGROUP_ROOT or folder.startswith(CGROUP_ROOT + "/")):
        return {}
    out: dict[str, int] = {}
    limit = (_read_small(f"{folder}/memory.max") or "").strip()
    if limit.isdigit():  # "max": no limit
        out["cgroup_limit_bytes"] = int(limit)
    current = (_read_small(f"{folder}/memory.current") or "").strip()
    if current.isdigit():
        out["cgroup_current_bytes"] = int(current)
    for line in (_read_small(f"{folder}/memory.events") or "").splitlines():
        name, _, count = line.partition(" ")
        if name == "oom_kill" and count.strip().isdigit():
            out["cgroup_oom_kills"] = int(count)
    return out


def _memory(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    """This host's available memory and, on cgroup v2, how near its cgroup is to its limit.

    With a size (``worker:<bytes>``, an allocation that failed), the question is whether that much
    would fit now: ``failed`` when it is more than is available (or than the cgroup has left).
    """
    where, _, size = spec.target.partition(":")
    if where != "worker" or (size and not size.isdigit()):
        raise _CouldNotRun(f"only this host's memory can be probed ('worker[:<bytes>]'), not {spec.target!r}")
    wanted = int(size) if size else None
    try:
        import psutil
    except ImportError as exc:
        raise _CouldNotRun(f"psutil is not installed: {exc}") from exc
    call = "psutil.virtual_memory() + /sys/fs/cgroup memory.max, memory.current, memory.events"
    vm = psutil.virtual_memory()
    observed: dict[str, Any] = {"available_bytes": vm.available, "total_bytes": vm.total}
    observed.update(_cgroup_memory())
    short = vm.available < max(MIN_AVAILABLE_BYTES, MIN_AVAILABLE_SHARE * vm.total)
    limit, current = observed.get("cgroup_limit_bytes"), observed.get("cgroup_current_bytes")
    # The kernel kills in a cgroup at its limit however much the host has free.
    at_limit = bool(limit) and current is not None and current / limit > CGROUP_FULL_SHARE
    text = f"{vm.available / 2**20:.0f} MiB of {vm.total / 2**20:.0f} MiB available; cgroup limit "
    if limit:
        used = f"{current / 2**20:.0f} MiB" if current is not None else "unknown"
        text += f"{limit / 2**20:.0f} MiB, {used} used"
    else:
        text += "none"
    if "cgroup_oom_kills" in observed:
        text += f", {observed['cgroup_oom_kills']} OOM kill(s) in the cgroup"
    if wanted is not None:
        room = vm.available if not limit or current is None else min(vm.available, max(0, limit - current))
        observed.update(requested_bytes=wanted, room_bytes=room)
        fits = wanted <= room
        text = f"{wanted / 2**20:.0f} MiB asked, {'fits' if fits else 'does not fit'} now; " + text
        return ("ok" if fits else "failed"), observed, call, text
    return ("failed" if short or at_limit else "ok"), observed, call, text


def _auth_challenge(value: str) -> str:
    """The scheme and realm of a ``WWW-Authenticate`` challenge, never its other parameters (an
    ``error_description`` or a nonce is the server's to keep)."""
    scheme, _, params = value.strip().partition(" ")
    for param in params.split(","):
        name, _, realm = param.strip().partition("=")
        if name.strip().lower() == "realm":
            return f"{scheme} realm={realm.strip()}"[:100]
    return scheme[:100]


def _http_url(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    """The status an unauthenticated GET of a URL gets now (the body is never read)."""
    import httpx

    # Credentials, a query or a fragment from a log are not ours to send again.
    url = valid_url(spec.target)
    if not url:
        raise _CouldNotRun(f"not an http(s) URL without credentials, query or fragment: {spec.target!r}")
    call = f"GET {url} (no credentials, no redirects)"
    try:
        with (
            httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False) as client,
            client.stream("GET", url) as response,
        ):
            status = response.status_code
            challenge = response.headers.get("WWW-Authenticate")
    except httpx.InvalidURL as exc:
        raise _CouldNotRun(f"not a URL: {url!r} ({exc})") from exc
    except httpx.TransportError as exc:
        # No status to compare with the one the failure got.
        raise _CouldNotRun(f"no answer from {url}: {exc}") from exc
    text = f"HTTP {status}" + (f", WWW-Authenticate: {_auth_challenge(challenge)}" if challenge else "")
    return ("ok" if status < 400 else "failed"), {"status": status}, call, text


def _dag_run_conf(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    """Is a key in a DagRun's conf (``GET /api/v2/dags/{dag_id}/dagRuns/{run_id}``).

    Only the conf's key names are kept: its values may hold secrets.
    """
    from airflow_faultcat.hooks.airflow_api import AirflowApiError, AirflowApiHook

    parts = spec.target.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise _CouldNotRun(f"not <dag_id>/<run_id>/<key>: {spec.target!r}")
    dag_id, run_id, key = parts
    call = f"GET /api/v2/dags/{dag_id}/dagRuns/{run_id} (conf keys)"
    hook = AirflowApiHook(timeout=timeout)
    try:
        run = hook.get_dag_run(dag_id, run_id)
    except AirflowApiError as exc:
        raise _CouldNotRun(str(exc)) from exc
    finally:
        hook.close()
    conf = run.get("conf") or {}
    if not isinstance(conf, dict):
        raise _CouldNotRun(f"the conf of {dag_id}/{run_id} is not an object")
    present = key in conf
    observed = {"key": key, "present": present, "conf_keys": sorted(conf)[:50]}
    where = f"the conf of {dag_id}/{run_id}"
    text = f"{key!r} is in {where}" if present else f"{key!r} is not in {where} (keys: {len(conf)})"
    return ("ok" if present else "failed"), observed, call, text


#: The share of its ``execution_timeout`` a try must have run for to count as timed out.
TIMEOUT_SHARE = 0.9


def _timeout_seconds(value: Any) -> float | None:
    """An ``execution_timeout`` as the REST API gives it (a ``TimeDelta`` object), in seconds, or
    None when there is none (the canary reads it the same way)."""
    from airflow_faultcat.core.invariants import seconds

    if isinstance(value, bool):
        return None
    try:
        limit = seconds(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return limit if limit and limit > 0 else None


def _try_duration(ti: dict[str, Any]) -> float | None:
    """How long a try ran, in seconds: its ``duration``, else ``end_date - start_date``."""
    from airflow_faultcat.core.shadow import parse_time

    duration = ti.get("duration")
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        return float(duration)
    began, ended = parse_time(ti.get("start_date")), parse_time(ti.get("end_date"))
    try:
        return (ended - began).total_seconds() if began and ended else None
    except TypeError:  # one naive and one aware
        return None


def _task_timeout(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    """Did a try run for its whole ``execution_timeout`` (what an ``AirflowTaskTimeout`` says)?"""
    from airflow_faultcat.hooks.airflow_api import AirflowApiError, AirflowApiHook

    parts = spec.target.split("/")
    # The run id is what is left in the middle: the Dag and task ids have no slash.
    if len(parts) < 5 or not all(parts):
        raise _CouldNotRun(f"not <dag_id>/<run_id>/<task_id>/<map_index>/<try_number>: {spec.target!r}")
    dag_id, run_id, (task_id, map_text, try_text) = parts[0], "/".join(parts[1:-3]), parts[-3:]
    try:
        map_index, try_number = int(map_text), int(try_text)
    except ValueError as exc:
        raise _CouldNotRun(f"map_index and try_number must be integers: {spec.target!r}") from exc
    call = f"GET .../taskInstances/{task_id}/tries + GET /api/v2/dags/{dag_id}/tasks"
    hook = AirflowApiHook(timeout=timeout)
    try:
        tries = hook.get_task_instance_tries(dag_id, run_id, task_id, map_index)
        found = next((t for t in tries if t.get("try_number") == try_number), None)
        if found is None:
            # An up_for_retry try is listed only once it is in the history: it may be the current one.
            current = hook.get_task_instance(dag_id, run_id, task_id, map_index)
            found = current if current.get("try_number") == try_number else None
        task = hook.list_tasks(dag_id).get(task_id)
    except AirflowApiError as exc:
        raise _CouldNotRun(str(exc)) from exc
    finally:
        hook.close()
    if found is None:
        raise _CouldNotRun(f"no try {try_number} of {task_id} in {dag_id}/{run_id}")
    if task is None:
        raise _CouldNotRun(f"no task {task_id!r} in the Dag {dag_id!r} now")
    limit = _timeout_seconds(task.get("execution_timeout"))
    duration = _try_duration(found)
    if limit is None:
        raise _CouldNotRun(f"{task_id} has no execution_timeout")
    if duration is None:
        raise _CouldNotRun(f"try {try_number} of {task_id} has no duration (not ended?)")
    observed = {"duration_seconds": duration, "execution_timeout_seconds": limit}
    text = f"try {try_number} ran {duration:.1f} s of its {limit:g} s execution_timeout"
    return ("failed" if duration >= TIMEOUT_SHARE * limit else "ok"), observed, call, text


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
    "path": _path,
    "memory": _memory,
    "http": _http_url,
    "dag_run_conf": _dag_run_conf,
    "task_timeout": _task_timeout,
}


def _unknown_kind(spec: ProbeSpec, timeout: float) -> tuple[str, dict[str, Any], str, str]:
    raise _CouldNotRun(f"no probe of kind {spec.kind!r} here")


def run_probe(spec: ProbeSpec, timeout: float = PROBE_TIMEOUT) -> ProbeResult:
    """Run one probe in a worker thread, given at most ``timeout`` seconds; never raises."""
    from airflow_faultcat.core.scrub import Scrubber

    started = time.monotonic()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="faultcat-probe")
    # A kind this worker's faultcat does not know (a newer planner's) is a gap, not an error.
    probe = _PROBES.get(spec.kind, _unknown_kind)
    try:
        future = pool.submit(probe, spec, timeout)
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
) -> tuple[list[tuple[int | str, ProbeSpec]], dict[ProbeSpec, ProbeResult], str | None]:
    """Run the probes of every finding of ``diagnosis`` and of the rivals here, each once, under
    the ceiling.

    :param extra_texts: more text to find targets in (the log lines around the evidence).

    :return: (subject, spec) pairs (the subject: a finding's index, or a rival's id), the result
        of each spec, and a note when the ceiling stopped some probes.
    """
    from airflow_faultcat.core.probes.catalogue import evidence_texts, plan_probes
    from airflow_faultcat.core.probes.targets import extract_targets

    planned = plan_probes(diagnosis, extract_targets(evidence_texts(diagnosis, extra_texts)))
    specs = list(dict.fromkeys(spec for _, spec in planned))
    results = dict(zip(specs, run_probes(specs, per_probe=per_probe, total=total), strict=True))
    ceiling = any("ceiling was reached" in r.output for r in results.values())
    return planned, results, (f"the {total:g} s ceiling stopped some probes" if ceiling else None)
