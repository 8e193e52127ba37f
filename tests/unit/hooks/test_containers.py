"""container_snapshot against a real podman (its Docker-compatible API), through DockerHook.

The podman is private to this module (tests/podman.py): its own store, a busybox image built from
the host's static busybox, no registry. Skipped when podman cannot run a container here.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from pydantic import ValidationError

from airflow_faultcat.core.containers import ContainerState, ZombieProcess
from airflow_faultcat.hooks import containers
from airflow_faultcat.hooks.containers import ContainersUnavailable, container_snapshot, parse_ps
from tests.podman import PodmanService, PodmanUnavailable

RUNNING, ZOMBIE, EXITED, RESTARTING = "fc-running", "fc-zombie", "fc-exited", "fc-restarting"


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory):
    try:
        service = PodmanService(tmp_path_factory.mktemp("podman")).start()
    except PodmanUnavailable as exc:
        pytest.skip(str(exc))
    try:
        service.run(RUNNING, "sleep", "300")
        # The exec'd sleep never reaps its child: ``sleep 1`` stays a zombie.
        service.run(ZOMBIE, "sh", "-c", "sleep 1 & exec sleep 300")
        service.run(EXITED, "sh", "-c", "exit 3")
        service.run(RESTARTING, "sh", "-c", "exit 1", restart="always")
        time.sleep(1.5)
        yield service
    finally:
        service.stop()


def by_name(snapshot: list[ContainerState]) -> dict[str, ContainerState]:
    return {state.name: state for state in snapshot}


def snap(podman: PodmanService, **kwargs) -> dict[str, ContainerState]:
    return by_name(container_snapshot(base_url=podman.base_url, **kwargs))


def test_running_container_without_zombies(podman):
    state = snap(podman)[RUNNING]
    assert state.state == "running"
    assert state.status.startswith("Up")
    assert state.image == "localhost/faultcat-busybox:test"
    assert len(state.id) == 64
    assert state.restart_count == 0 and state.restart_policy is None
    assert state.started_at and state.finished_at is None
    assert state.zombie_probe == f"exec ps -o pid,ppid,stat,comm in {RUNNING}"
    assert state.zombie_probe_error is None
    assert state.zombies == []


def test_zombie_inside_a_container(podman):
    state = snap(podman)[ZOMBIE]
    assert state.state == "running"
    assert state.zombie_probe_error is None
    # The same zombie as the engine's own CLI shows: pid, parent (the container's init) and name.
    seen = podman.podman("exec", ZOMBIE, "ps", "-o", "pid,ppid,stat,comm").stdout
    expected = [line.split() for line in seen.splitlines()[1:] if line.split()[2].startswith("Z")]
    assert [[str(z.pid), str(z.ppid), "Z", z.command] for z in state.zombies] == expected
    assert len(state.zombies) == 1
    assert state.zombies[0].ppid == 1 and state.zombies[0].command == "sleep"


def test_exited_container(podman):
    state = snap(podman)[EXITED]
    assert state.state == "exited"
    assert state.exit_code == 3
    assert state.status.startswith("Exited (3)")
    assert state.started_at and state.finished_at
    assert state.zombie_probe is None and state.zombies == []


def test_restart_loop(podman):
    # podman 4.3 restarts at once (no back-off, ~10 restarts a second). Its State.Status then
    # alternates between "running" and "stopped" (never "restarting"; State.Restarting stays
    # false), and ExitCode is 1 when stopped, 0 again once restarted: the loop shows as a
    # RestartCount that climbs.
    first = snap(podman, exec_zombies=False)[RESTARTING]
    time.sleep(1)
    second = snap(podman, exec_zombies=False)[RESTARTING]
    assert first.restart_policy == second.restart_policy == "always"
    assert first.restart_count >= 2
    assert second.restart_count > first.restart_count
    for state in (first, second):
        assert state.state in {"running", "stopped", "restarting", "exited"}
        assert state.exit_code == (1 if state.state in ("stopped", "exited") else 0)


def test_name_pattern_is_a_full_match(podman):
    assert set(snap(podman, name_pattern="fc-(running|exited)")) == {RUNNING, EXITED}
    assert snap(podman, name_pattern="fc-run") == {}
    with pytest.raises(ValueError, match="invalid name_pattern"):
        container_snapshot(base_url=podman.base_url, name_pattern="fc-(")


def test_docker_connection_gives_the_base_url(podman, monkeypatch):
    conn = {"conn_type": "docker", "host": podman.base_url}
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_PODMAN", json.dumps(conn))
    assert RUNNING in by_name(container_snapshot("faultcat_podman", name_pattern="fc-.*"))

    registry = {"conn_type": "docker", "host": "registry.example.org", "login": "me"}
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_REGISTRY", json.dumps(registry))
    with pytest.raises(ValueError, match="no Docker API URL"):
        container_snapshot("faultcat_registry")
    with pytest.raises(ValueError, match="docker_conn_id or a base_url"):
        container_snapshot()


def test_snapshot_time(podman, capsys):
    container_snapshot(base_url=podman.base_url)  # warm: imports
    timings = []
    for _ in range(5):
        time.sleep(0.3)  # as a canary would: not back to back with the exec cleanups of the last
        started = time.perf_counter()
        snapshot = container_snapshot(base_url=podman.base_url)
        timings.append(time.perf_counter() - started)
    with capsys.disabled():
        print(
            f"\ncontainer_snapshot of {len(snapshot)} containers: "
            f"median {sorted(timings)[2] * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms"
        )


def test_failing_exec_is_recorded_on_the_container(podman, monkeypatch):
    monkeypatch.setattr(containers, "PS_COMMANDS", (("no-such-ps",), ("ps", "--no-such-flag")))
    state = snap(podman)[RUNNING]
    assert state.zombie_probe == f"exec no-such-ps in {RUNNING}"
    assert "exec no-such-ps in fc-running: RuntimeError: exit code" in state.zombie_probe_error
    assert "exec ps --no-such-flag in fc-running" in state.zombie_probe_error
    assert state.zombies == []


def test_hanging_exec_is_cut_at_the_timeout(podman, monkeypatch):
    monkeypatch.setattr(containers, "PS_COMMANDS", (("sleep", "5"),))
    started = time.monotonic()
    state = snap(podman, timeout=1, name_pattern=RUNNING)[RUNNING]
    assert time.monotonic() - started < 3
    assert state.zombie_probe_error == f"exec sleep 5 in {RUNNING}: no answer in 1 s"


def test_missing_socket_is_unavailable(tmp_path):
    url = f"unix://{tmp_path}/nobody.sock"
    with pytest.raises(ContainersUnavailable, match=f"container API at {url} unreachable"):
        container_snapshot(base_url=url)


def test_dead_socket_is_unavailable(tmp_path):
    # A socket file nobody accepts on (a stopped service): the hook's ping fails.
    path = tmp_path / "dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
        url = f"unix://{path}"
        with pytest.raises(ContainersUnavailable, match=f"container API at {url} unreachable"):
            container_snapshot(base_url=url, timeout=1)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        # busybox ps -o pid,ppid,stat,comm
        (
            "PID   PPID  STAT COMMAND\n    1     0 S    sleep\n    6     1 Z    sleep\n    7     0 R    ps\n",
            [ZombieProcess(pid=6, ppid=1, command="sleep")],
        ),
        # procps ps ax (no PPID column; the command holds spaces)
        (
            "    PID TTY      STAT   TIME COMMAND\n      1 ?        Ss     0:00 /sbin/init splash\n"
            "     42 ?        Z      0:00 [worker] <defunct>\n",
            [ZombieProcess(pid=42, ppid=None, command="[worker] <defunct>")],
        ),
        ("PID PPID STAT COMMAND\nnot a row\n  x 1 Z y\n", []),
    ],
)
def test_parse_ps(output, expected):
    assert parse_ps(output) == expected


@pytest.mark.parametrize("output", ["", "PID   USER     COMMAND\n    1 0        sleep 300\n"])
def test_parse_ps_needs_stat(output):
    with pytest.raises(ValueError, match="no PID and STAT"):
        parse_ps(output)


def test_container_state_forbids_unknown_fields():
    with pytest.raises(ValidationError):
        ContainerState(id="x", name="x", image="x", state="running", restarts=1)
