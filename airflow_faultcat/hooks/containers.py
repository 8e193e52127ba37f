"""A read-only snapshot of the containers of a Docker Engine API (Docker, or podman's).

The calls go through the docker provider's :class:`~airflow.providers.docker.hooks.docker.DockerHook`
and its ``api_client`` (docker-py's low-level ``docker.APIClient``); each has the given timeout.
Nothing is started, stopped or changed: the only write is an exec of ``ps`` inside running
containers (never a shell on the host), to list their zombie processes.

Needs the ``docker`` extra (``apache-airflow-providers-docker``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from airflow_faultcat.core.containers import ContainerState, ZombieProcess
from airflow_faultcat.exceptions import FaultcatError

if TYPE_CHECKING:
    from docker import APIClient

__all__ = ["ContainersUnavailable", "container_snapshot", "parse_ps"]

#: The zombie probe, then the fallback for a ``ps`` without ``-o`` (its output must still have STAT).
PS_COMMANDS: tuple[tuple[str, ...], ...] = (("ps", "-o", "pid,ppid,stat,comm"), ("ps",))
#: URL schemes of a Docker Engine API (a docker connection's host is otherwise a registry).
_DAEMON_SCHEMES = ("unix://", "tcp://", "http://", "https://", "ssh://", "npipe://")
#: Docker's value for "never" in StartedAt / FinishedAt.
_NEVER = "0001-01-01T00:00:00Z"


class ContainersUnavailable(FaultcatError):
    """The container engine's API could not be reached or refused to list containers.

    The message names the base URL and the error.
    """


def _base_url(docker_conn_id: str | None, base_url: str | None) -> str:
    if base_url:
        return base_url
    if not docker_conn_id:
        raise ValueError("container_snapshot needs a docker_conn_id or a base_url")
    from airflow.providers.docker.hooks.docker import DockerHook

    host = (DockerHook.get_connection(docker_conn_id).host or "").strip()
    if not host.startswith(_DAEMON_SCHEMES):
        raise ValueError(
            f"connection {docker_conn_id!r} has no Docker API URL as its host ({host!r}); "
            f"expected e.g. unix:///run/podman/podman.sock or tcp://host:2375, or pass base_url"
        )
    return host


def _client(url: str, timeout: float, version: str) -> APIClient:
    try:
        from airflow.providers.docker.hooks.docker import DockerHook
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "container snapshots need apache-airflow-providers-docker: pip install 'airflow-faultcat[docker]'"
        ) from exc

    # No docker_conn_id: with one, DockerHook logs in to the connection's host as a registry.
    hook = DockerHook(docker_conn_id=None, base_url=url, version=version, timeout=timeout)  # type: ignore[arg-type]
    return hook.api_client


def _connect(url: str, timeout: float, api_version: str | None) -> APIClient:
    if url.startswith("unix://") and not os.path.exists(url.removeprefix("unix://")):
        raise ContainersUnavailable(f"container API at {url} unreachable: the socket does not exist")
    from docker.constants import DEFAULT_DOCKER_API_VERSION
    from docker.errors import APIError

    try:
        try:
            # docker-py's default version saves GET /version, which podman answers in ~0.3 s; an
            # engine too old for it refuses the ping with 400, and is then asked for its version.
            return _client(url, timeout, api_version or DEFAULT_DOCKER_API_VERSION)
        except APIError as exc:
            if api_version is not None or exc.status_code != 400:
                raise
            return _client(url, timeout, "auto")
    except ImportError:
        raise
    except Exception as exc:  # APIError, AirflowException (ping failed), DockerException, requests errors
        raise ContainersUnavailable(f"container API at {url} unreachable: {exc}") from exc


def _retried(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, tried again (twice at most) when the engine answers 5xx.

    podman 4.3 does when a container exits during the call (``read /proc/<pid>/cgroup: no such
    process``), which a restart loop makes frequent.
    """
    from docker.errors import APIError

    for attempt in range(3):
        try:
            return call(*args, **kwargs)
        except APIError as exc:
            if attempt == 2 or not exc.is_server_error():
                raise
            time.sleep(0.05)


def _when(value: str | None) -> str | None:
    return None if not value or value.startswith(_NEVER[:10]) else value


def parse_ps(output: str) -> list[ZombieProcess]:
    """The zombies in the output of ``ps`` (busybox, procps or toybox), read by its header.

    :param output: ``ps`` standard output; its first line is the header. It needs ``PID`` and
        ``STAT`` (or ``S``) columns; ``PPID`` and ``COMMAND`` (or ``COMM``, ``CMD``) are optional.
    :raises ValueError: the output has no header with ``PID`` and ``STAT``.
    """
    lines = [line for line in output.splitlines() if line.strip()]
    header = lines[0].split() if lines else []
    cols = {name.upper(): i for i, name in enumerate(header)}
    pid_at = cols.get("PID")
    stat_at = cols.get("STAT", cols.get("S"))
    if pid_at is None or stat_at is None:
        raise ValueError(f"ps printed no PID and STAT columns: {lines[0][:120] if lines else '(nothing)'!r}")
    ppid_at = cols.get("PPID")
    cmd_at = next((cols[c] for c in ("COMMAND", "COMM", "CMD") if c in cols), None)
    zombies = []
    for line in lines[1:]:
        # The command is last and may hold spaces: split the other columns off only.
        fields = line.split(None, len(header) - 1)
        if len(fields) <= max(pid_at, stat_at) or not fields[stat_at].startswith("Z"):
            continue
        try:
            pid = int(fields[pid_at])
            ppid = int(fields[ppid_at]) if ppid_at is not None and ppid_at < len(fields) else None
        except ValueError:
            continue
        command = fields[cmd_at].strip() if cmd_at is not None and cmd_at < len(fields) else ""
        zombies.append(ZombieProcess(pid=pid, ppid=ppid, command=command))
    return zombies


def _exec(client: APIClient, container_id: str, cmd: tuple[str, ...]) -> tuple[int | None, str, str]:
    exec_id = client.exec_create(container_id, list(cmd), stdout=True, stderr=True)["Id"]
    out, err = client.exec_start(exec_id, demux=True)
    code = client.exec_inspect(exec_id).get("ExitCode")
    return code, (out or b"").decode("utf-8", "replace"), (err or b"").decode("utf-8", "replace")


def _call(cmd: tuple[str, ...], name: str) -> str:
    return f"exec {' '.join(cmd)} in {name}"


def _probe_zombies(client: APIClient, container_id: str, name: str) -> dict[str, Any]:
    """``zombie_probe``, ``zombies`` and ``zombie_probe_error`` of one running container."""
    errors = []
    for cmd in PS_COMMANDS:
        try:
            code, out, err = _exec(client, container_id, cmd)
            if code not in (0, None):
                raise RuntimeError(f"exit code {code}: {(err or out).strip()[:200]}")
            return {"zombie_probe": _call(cmd, name), "zombies": parse_ps(out)}
        except Exception as exc:  # one container's probe never fails the snapshot
            errors.append(f"{_call(cmd, name)}: {type(exc).__name__}: {str(exc).strip()[:300]}")
    return {"zombie_probe": _call(PS_COMMANDS[0], name), "zombie_probe_error": "; ".join(errors)}


def _in_thread(fn: Callable[..., dict[str, Any]], *args: Any) -> Future[dict[str, Any]]:
    # docker-py reads an exec's output with no timeout: a daemon thread that may be left behind.
    future: Future[dict[str, Any]] = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # pragma: no cover - _probe_zombies catches its own errors
            future.set_exception(exc)

    threading.Thread(target=run, name="faultcat-zombie-probe", daemon=True).start()
    return future


def container_snapshot(
    docker_conn_id: str | None = None,
    *,
    base_url: str | None = None,
    timeout: float = 2.0,
    exec_zombies: bool = True,
    name_pattern: str | None = None,
    api_version: str | None = None,
) -> list[ContainerState]:
    """Every container of the engine (running or not), with restart data and the zombies inside.

    Calls, each with ``timeout``: ``GET /_ping`` (the hook's client), ``GET /containers/json?all=1``,
    ``GET /containers/{id}/json`` per container, and for each running container
    ``POST /containers/{id}/exec`` of ``ps -o pid,ppid,stat,comm`` (then plain ``ps`` if that fails).
    A container removed between the list and its inspect is left out; a list or inspect answered
    with a server error is tried again (twice at most).

    :param docker_conn_id: a ``docker`` connection whose host is the engine's API URL
        (``unix:///run/podman/podman.sock``, ``tcp://host:2375``); used when ``base_url`` is not given.
        It is only read: no registry login is made.
    :param base_url: the engine's API URL, e.g. ``unix:///run/user/1000/podman/podman.sock``.
    :param timeout: seconds each API call may take; the zombie probes, which run side by side,
        get ``timeout`` seconds in all (docker-py reads an exec's output without a timeout).
    :param exec_zombies: look for zombie processes inside running containers.
    :param name_pattern: a regular expression (RE2 syntax) the whole container name must match.
    :param api_version: the Docker API version to speak (``1.41`` for podman 4); ``auto`` asks the
        engine (``GET /version``); ``None`` tries docker-py's default and falls back to ``auto``
        when the engine says it is too new.
    :raises ContainersUnavailable: the API cannot be reached, times out or refuses the list call.
    :raises ValueError: neither a usable connection nor a base URL, or an invalid ``name_pattern``.

    .. seealso:: :class:`airflow_faultcat.core.containers.ContainerState`
    """
    import re2

    try:
        pattern = re2.compile(name_pattern) if name_pattern is not None else None
    except re2.error as exc:
        raise ValueError(f"invalid name_pattern {name_pattern!r}: {exc}") from exc
    url = _base_url(docker_conn_id, base_url)
    client = _connect(url, timeout, api_version)
    try:
        listed = _retried(client.containers, all=True)
    except Exception as exc:
        raise ContainersUnavailable(f"container API at {url}: listing containers failed: {exc}") from exc

    from docker.errors import NotFound

    snapshot: list[dict[str, Any]] = []
    probes: dict[int, Future[dict[str, Any]]] = {}
    for item in listed:
        names = item.get("Names") or [item.get("Id", "")[:12]]
        name = names[0].lstrip("/")
        if pattern is not None and not pattern.fullmatch(name):
            continue
        try:
            info = _retried(client.inspect_container, item["Id"])
        except NotFound:
            continue
        except Exception as exc:
            raise ContainersUnavailable(f"container API at {url}: inspecting {name} failed: {exc}") from exc
        st = info.get("State") or {}
        policy = ((info.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or None
        state: dict[str, Any] = {
            "id": item["Id"],
            "name": name,
            "image": item.get("Image") or (info.get("Config") or {}).get("Image") or "",
            "state": st.get("Status") or item.get("State") or "",
            "status": item.get("Status") or "",
            "restart_count": info.get("RestartCount") or 0,
            "restart_policy": policy if policy not in ("no", "") else None,
            "exit_code": st.get("ExitCode"),
            "started_at": _when(st.get("StartedAt")),
            "finished_at": _when(st.get("FinishedAt")),
        }
        if exec_zombies and state["state"] == "running":
            probes[len(snapshot)] = _in_thread(_probe_zombies, client, item["Id"], name)
        snapshot.append(state)
    # The probes run side by side; each may take ``timeout`` seconds from here.
    deadline = time.monotonic() + timeout
    for index, future in probes.items():
        try:
            snapshot[index].update(future.result(timeout=max(0.0, deadline - time.monotonic())))
        except FutureTimeout:
            call = _call(PS_COMMANDS[0], snapshot[index]["name"])
            snapshot[index].update(
                zombie_probe=call, zombie_probe_error=f"{call}: no answer in {timeout:g} s"
            )
    return [ContainerState(**state) for state in snapshot]
