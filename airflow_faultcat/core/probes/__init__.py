"""Read-only probes: what the environment says now about what a log said then.

This package is the logic (pure): which targets a failure names (:mod:`.targets`), which probes
test which finding and how their outcome reads (:mod:`.catalogue`). The I/O (sockets, file
systems, Airflow hooks) is in :mod:`airflow_faultcat.hooks.probes`.

Every probe is read-only and time-boxed, and returns a :class:`ProbeResult` with the exact call it
made, its output (scrubbed before it leaves the process) and its duration. Nothing taken from a log
is ever given to a shell: targets are parsed into host names, ports and paths, validated, and passed
to library calls as data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ProbeKind = Literal[
    "dns",
    "tcp",
    "tls",
    "disk",
    "unix_socket",
    "process",
    "redis",
    "connection",
    "libvirt_domain",
    "container",
    "airflow_health",
    "pool",
    "path",
    "memory",
    "http",
    "dag_run_conf",
    "task_timeout",
]
ProbeStatus = Literal["ok", "failed", "could_not_run"]
#: Probes of the state of the host they run on (its disk, memory, paths, processes, sockets): they
#: speak for that host only, never for a failure on another worker.
HOST_LOCAL_KINDS: frozenset[str] = frozenset({"disk", "unix_socket", "process", "path", "memory"})


class ProbeSpec(BaseModel):
    """One probe to run.

    :param kind: what it checks.
    :param target: what it checks it on: a host name, ``host:port``, a path, a socket path, a
        process name, a connection id (``redis``, ``connection``: the check its type allows,
        Redis PING, SQL ``SELECT 1`` or an HTTP GET), ``<conn_id>/<domain>`` (libvirt), a
        container name or ``<docker_conn_id>/<name>``, a ``faultcat_api`` connection id
        (``airflow_health``), an Airflow pool name, an absolute path (``path``: does it exist),
        ``worker`` or ``worker:<bytes>`` (``memory``: this host's available memory and its
        cgroup's limit; with a size, would an allocation that large fit now), an
        ``http(s)://host[:port]/path`` URL without query or credentials (``http``: the status an
        unauthenticated GET gets now), ``<dag_id>/<run_id>/<key>`` (``dag_run_conf``: is the key
        in that DagRun's conf) or ``<dag_id>/<run_id>/<task_id>/<map_index>/<try_number>``
        (``task_timeout``: did that try run for its whole ``execution_timeout``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ProbeKind
    target: str = Field(min_length=1, max_length=1024)


class ProbeResult(BaseModel):
    """What one probe saw.

    :param status: ``ok`` (the thing works now: the name resolves, the port accepts, the path has
        room...), ``failed`` (it does not, which is what the failure said) or ``could_not_run``
        (the probe itself could not look: no permission, timeout, missing library; a diagnostics
        gap, never a verdict).
    :param observed: what it saw, as data (addresses, free bytes, state...).
    :param call: the exact call made, e.g. ``socket.create_connection(('127.0.0.1', 5432), timeout=2)``.
    :param output: its output or error text (scrubbed before it leaves the process).
    :param duration_ms: how long it took, in milliseconds.
    :param host: the host it ran on (set by the explore step).
    """

    model_config = ConfigDict(extra="forbid")

    spec: ProbeSpec
    status: ProbeStatus
    observed: dict = Field(default_factory=dict)
    call: str
    output: str = ""
    duration_ms: float = Field(default=0.0, ge=0)
    host: str | None = None
