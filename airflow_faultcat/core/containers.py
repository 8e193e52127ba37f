"""What a read-only look at a container engine saw: one :class:`ContainerState` per container.

The canary's checks (restart loops, zombies, containers that exited) read these models; the I/O
that fills them is :func:`airflow_faultcat.hooks.containers.container_snapshot`, through the
Docker Engine API (Docker, or podman's Docker-compatible API).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ZombieProcess(BaseModel):
    """A process inside a container that has exited and was not reaped by its parent.

    Read from the output of ``ps -o pid,ppid,stat,comm`` run in the container (Docker API
    ``POST /containers/{id}/exec``): the rows whose ``STAT`` starts with ``Z``.

    :param pid: the process id, in the container's PID namespace.
    :param ppid: the parent's process id (the process that should reap it), in the same namespace;
        ``None`` when only a plain ``ps`` could run and it printed no ``PPID`` column.
    :param command: the command name as ``ps`` prints it (``comm``, e.g. ``sleep``).
    """

    model_config = ConfigDict(extra="forbid")

    pid: int
    ppid: int | None = None
    command: str


class ContainerState(BaseModel):
    """One container as the engine reports it, plus the zombies found inside it.

    :param id: the full container id (``GET /containers/json?all=1``, ``Id``).
    :param name: the container's name without the leading ``/`` (list ``Names[0]``).
    :param image: the image as the container was created from it (list ``Image``).
    :param state: ``State.Status`` from ``GET /containers/{id}/json``: ``created``, ``running``,
        ``paused``, ``restarting``, ``exited``, ``removing`` or ``dead``; podman also reports
        ``stopped`` (e.g. between two restarts of a restart loop) and ``configured``.
    :param status: the human summary of the list call (``Status``, e.g. ``Up 3 seconds``,
        ``Exited (3) 2 minutes ago``).
    :param restart_count: how often the engine restarted the container (inspect ``RestartCount``).
    :param restart_policy: the restart policy's name (inspect ``HostConfig.RestartPolicy.Name``:
        ``always``, ``on-failure``, ``unless-stopped``...), ``None`` when it has none.
    :param exit_code: the last exit code (inspect ``State.ExitCode``); ``None`` when not reported.
    :param started_at: when it last started (inspect ``State.StartedAt``, RFC 3339), ``None`` if never.
    :param finished_at: when it last stopped (inspect ``State.FinishedAt``), ``None`` if never.
    :param zombies: the zombie processes found inside (running containers only).
    :param zombie_probe: the exact exec call made to look for zombies, e.g.
        ``exec ps -o pid,ppid,stat,comm in web``; ``None`` when none was made (not running).
    :param zombie_probe_error: why the zombie probe could not look (exec refused, ``ps`` missing,
        timeout, output without a ``STAT`` column); ``zombies`` is then empty and means nothing.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    image: str
    state: str
    status: str = ""
    restart_count: int = 0
    restart_policy: str | None = None
    exit_code: int | None = None
    started_at: str | None = None
    finished_at: str | None = None
    zombies: list[ZombieProcess] = Field(default_factory=list)
    zombie_probe: str | None = None
    zombie_probe_error: str | None = None
