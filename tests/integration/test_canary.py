"""The canary on the real stack: each invariant provoked, seen to fire once, reverted, seen to clear;
each source made unreachable shows up in ``sources_unavailable`` with no violation.

Most cycles run in this process (``run_cycle``, the code the DAG's task runs) with short thresholds,
against the stack's API server, its Redis, this host's processes, the libvirt test node and a
private podman. ``test_canary_dag_alerts_once_and_clears`` runs the ``faultcat_canary`` DAG itself
and reads the Slack stand-in.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import psutil
import pytest

from airflow_faultcat.core.invariants import CanarySettings
from tests.integration.conftest import NODE_DOMAINS
from tests.integration.helpers import api_hook, trigger, wait_run

CANARY = "faultcat_canary"
#: Thresholds short enough to provoke each invariant within seconds.
FAST = CanarySettings(
    timeout_buffer_seconds=2,
    heartbeat_stale_seconds=30,
    queued_seconds=2,
    restart_count=2,
    restart_window_seconds=60,
    zombie_grace_seconds=2,
)
CANARY_VM = "it-canary-vm"


@pytest.fixture(scope="module")
def podman(tmp_path_factory):
    """A private podman and its Docker-compatible API, or a skip saying why it cannot run here."""
    from tests.podman import PodmanService, PodmanUnavailable

    try:
        service = PodmanService(tmp_path_factory.mktemp("podman")).start()
    except PodmanUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def canary_node(stack):
    """The libvirt test node with the canary's VM running; restored when the module ends."""
    stack.libvirt_node.write({**NODE_DOMAINS, CANARY_VM: 1})
    yield stack.libvirt_node
    stack.libvirt_node.write(NODE_DOMAINS)


@pytest.fixture
def env(stack_env, monkeypatch, stack, podman, canary_node):
    """This process pointed at the stack, plus connections that lead nowhere."""
    closed = _closed_port()
    monkeypatch.setenv("AIRFLOW_CONN_DOCKER_IT", json.dumps({"conn_type": "docker", "host": podman.base_url}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_DOCKER_DOWN",
        json.dumps({"conn_type": "docker", "host": f"unix://{stack.home / 'no-such-podman.sock'}"}),
    )
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DOWN", f"redis://127.0.0.1:{closed}/0")
    api = os.environ["AIRFLOW_CONN_FAULTCAT_API_DEFAULT"]
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_API_DOWN", re.sub(r":\d+$", f":{closed}", api))
    yield os.environ


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cycle(settings: CanarySettings = FAST, **kwargs):
    """One cycle here, recorded in the stack's Redis, without Slack."""
    from airflow_faultcat.operators.canary import run_cycle

    kwargs.setdefault("docker_conn_id", "docker_it")
    report, _ = run_cycle(settings=settings, alert=False, **kwargs)
    return report


#: The shipped thresholds, for the cycles that must see a healthy stack (FAST's 30 s heartbeat
#: would call a busy dag-processor stale).
DEFAULT = CanarySettings()


def fired(report) -> set[str]:
    return {v.key for v in report.transitions.fired}


def _running_ti(hook, dag_id: str, run_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tis = hook.list_task_instances(dag_id, run_id)
        if tis and tis[0].get("state") == "running" and tis[0].get("pid"):
            return tis[0]
        time.sleep(0.5)
    raise AssertionError(f"{dag_id} {run_id}: no running TaskInstance with a pid after {timeout} s")


def _subject(ti: dict) -> str:
    return f"{ti['dag_id']}/{ti['dag_run_id']}/{ti['task_id']}/{ti.get('map_index', -1)}"


def _until(predicate, timeout: float = 60, step: float = 1.0):
    """Run cycles until ``predicate(report)`` holds; return every report seen."""
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(cycle())
        if predicate(seen[-1], seen):
            return seen
        time.sleep(step)
    last = seen[-1].model_dump_json()[:3000]
    raise AssertionError(f"condition not met after {timeout} s; last report: {last}")


def _cleared(key: str, timeout: float = 20, step: float = 1.0) -> None:
    """Run cycles until ``key`` clears (a cycle that fails to see it fixed fails the test)."""
    _until(lambda r, _: key in r.transitions.cleared, timeout=timeout, step=step)


def _ever(attr: str, reports) -> set[str]:
    """Keys fired (``attr="fired"``) or cleared over several reports."""
    if attr == "fired":
        return set().union(*(fired(r) for r in reports))
    return set().union(*(set(r.transitions.cleared) for r in reports))


def test_healthy_stack_cycle_has_every_check_and_no_violation(env, podman):
    report = cycle(DEFAULT)
    assert report.sources_unavailable == {}
    assert report.checks_skipped == []
    assert len(report.checks_run) == 11
    assert report.violations == [], [v.message for v in report.violations]
    assert report.cycle_duration_ms > 0
    print(f"healthy cycle: cycle_duration_ms={report.cycle_duration_ms} snapshot_ms={report.snapshot_ms}")


def test_redis_key_without_ttl_fires_once_and_clears(env, stack):
    import redis

    client = redis.Redis.from_url(stack.redis.url)
    key = "faultcat:it:orphan-lock"
    client.set(key, "worker-7")
    try:
        first, second = cycle(), cycle()
        assert f"E-07|{key}" in fired(first)
        [v] = [v for v in first.violations if v.invariant_id == "E-07"]
        assert v.observed_state == {"key": key, "ttl": -1}
        assert v.signal_query == "SCAN MATCH faultcat:* + TTL per key"
        assert fired(second) == set() and f"E-07|{key}" in second.transitions.still_open
        client.expire(key, 60)
        assert f"E-07|{key}" in cycle().transitions.cleared
    finally:
        client.delete(key)


def test_stuck_task_and_stopped_supervisor(env, tmp_path):
    hook = api_hook()
    release = tmp_path / "release"
    run_id = trigger(hook, "it_canary_stuck", {"release": str(release)})
    try:
        ti = _running_ti(hook, "it_canary_stuck", run_id)
        key1 = f"E-01|{_subject(ti)}"
        seen = _until(lambda r, _: key1 in fired(r), timeout=30)
        assert key1 in fired(seen[-1])
        assert key1 in cycle().transitions.still_open
        # The supervisor (the task process's parent) heartbeats for it: freeze it.
        supervisor = psutil.Process(ti["pid"]).ppid()
        key2 = f"E-02|{_subject(ti)}"
        os.kill(supervisor, signal.SIGSTOP)
        try:
            frozen = _until(lambda r, _: key2 in fired(r), timeout=10, step=0.2)[-1]
            [v] = [v for v in frozen.violations if v.invariant_id == "E-02"]
            assert v.observed_state["supervisor_status"] == "stopped"
        finally:
            os.kill(supervisor, signal.SIGCONT)
        _cleared(key2, timeout=10, step=0.2)
        release.touch()
        wait_run(hook, "it_canary_stuck", run_id, timeout=120)
        assert key1 in cycle().transitions.cleared
    finally:
        release.touch()


def test_stopped_scheduler_triggerer_and_dag_processor(env, stack, tmp_path):
    hook = api_hook()
    release = tmp_path / "release"
    slow = trigger(hook, "it_canary_slow_run", {"release": str(release)})
    _running_ti(hook, "it_canary_slow_run", slow)
    pids = {name: stack.procs[name].pid for name in ("scheduler", "triggerer", "dag-processor")}
    wanted = {"E-03|scheduler", f"E-04|it_canary_slow_run/{slow}", "E-05|triggerer", "E-06|dag_processor"}
    # A busy stack can leave a heartbeat stale for a moment: start from none of them open.
    _until(lambda r, _: not wanted & {v.key for v in r.violations}, timeout=90)
    for pid in pids.values():
        os.kill(pid, signal.SIGSTOP)
    try:
        # Work that nobody picks up: a DagRun queued while the scheduler is frozen.
        trigger(hook, "it_canary_zombie", {"release": str(release)})
        seen = _until(lambda r, all_: wanted <= _ever("fired", all_), timeout=60)
        every = [v for r in seen for v in r.transitions.fired]
        assert sorted(v.key for v in every if v.key in wanted) == sorted(wanted)  # each fired once
        e03 = next(v for v in every if v.invariant_id == "E-03")
        assert e03.observed_state["queued"] and e03.observed_state["scheduler_heartbeat_age_seconds"] >= 30
    finally:
        for pid in pids.values():
            os.kill(pid, signal.SIGCONT)
        release.touch()
    _until(lambda r, all_: wanted <= _ever("cleared", all_), timeout=90)
    assert wait_run(hook, "it_canary_slow_run", slow)["state"] == "failed"  # the dagrun_timeout, late


def test_zombie_task_process(env, tmp_path):
    hook = api_hook()
    release = tmp_path / "release"
    run_id = trigger(hook, "it_canary_zombie", {"release": str(release)})
    try:
        ti = _running_ti(hook, "it_canary_zombie", run_id)

        def mine(report) -> list:
            # A busy LocalExecutor may have a zombie worker of its own past the test's 2 s grace.
            return [
                v
                for v in report.transitions.fired
                if v.invariant_id == "E-08" and v.observed_state["ppid"] == ti["pid"]
            ]

        seen = _until(lambda r, _: bool(mine(r)), timeout=30)
        [v] = mine(seen[-1])
        assert v.observed_state["status"] == "zombie" and v.observed_state["zombie_seconds"] >= 2
        release.touch()
        wait_run(hook, "it_canary_zombie", run_id, timeout=120)
        _cleared(v.key)
    finally:
        release.touch()


def test_paused_vm_that_an_asset_expects_running(env, canary_node):
    hook = api_hook()
    run_id = trigger(hook, "it_canary_vm")
    assert wait_run(hook, "it_canary_vm", run_id)["state"] == "success"
    key = f"E-09|libvirt_it/{CANARY_VM}"
    assert key not in {v.key for v in cycle().violations}
    canary_node.write({**NODE_DOMAINS, CANARY_VM: 3})
    try:
        report = cycle()
        assert key in fired(report)
        [v] = [v for v in report.violations if v.key == key]
        assert v.observed_state["state"] == "paused"
        assert v.signal_query.startswith("virConnectGetAllDomainStats")
        assert key in cycle().transitions.still_open
    finally:
        canary_node.write({**NODE_DOMAINS, CANARY_VM: 1})
    assert key in cycle().transitions.cleared


def test_container_restart_loop_and_zombies(env, podman):
    podman.run("it-loop", "sh", "-c", "exit 1", restart="always")
    podman.run("it-zombies", "sh", "-c", "sleep 1 & exec sleep 300")
    loop, zombies = "E-10|container:it-loop", "E-11|container:it-zombies"
    try:
        seen = _until(lambda r, all_: {loop, zombies} <= _ever("fired", all_), timeout=60)
        every = {v.key: v for r in seen for v in r.transitions.fired}
        assert every[loop].observed_state["restart_count"] >= FAST.restart_count
        assert every[zombies].observed_state["zombies"][0]["command"] == "sleep"
        # The engine unreachable: the loop is neither confirmed nor cleared.
        down = cycle(docker_conn_id="docker_down")
        assert "containers" in down.sources_unavailable
        assert {loop, zombies} <= set(down.transitions.undecided)
        assert not [v for v in down.violations if v.invariant_id in ("E-10", "E-11")]
    finally:
        podman.rm("it-loop")
        podman.rm("it-zombies")
    assert {loop, zombies} <= set(cycle().transitions.cleared)


def test_each_source_unreachable_is_unavailable_never_a_violation(env):
    hook = api_hook()
    run_id = trigger(hook, "it_canary_vm_down")
    assert wait_run(hook, "it_canary_vm_down", run_id)["state"] == "success"
    cases = {
        "api": dict(faultcat_api_conn_id="faultcat_api_down"),
        "redis": dict(redis_conn_id="redis_down"),
        "containers": dict(docker_conn_id="docker_down"),
        "libvirt:libvirt_down": {},
    }
    for source, kwargs in cases.items():
        report = cycle(DEFAULT, **kwargs)
        assert source in report.sources_unavailable, (source, report.sources_unavailable)
        assert report.violations == [], (source, [v.message for v in report.violations])
    api_down = cycle(DEFAULT, faultcat_api_conn_id="faultcat_api_down")
    skipped = {s.invariant_id for s in api_down.checks_skipped}
    assert {"E-01", "E-02", "E-03", "E-04", "E-05", "E-06", "E-09"} <= skipped
    assert {"E-07", "E-08", "E-10", "E-11"} <= set(api_down.checks_run)


def test_canary_dag_alerts_once_and_clears(env, stack, api, slack_standin):
    import redis

    client = redis.Redis.from_url(stack.redis.url)
    key = "faultcat:it:dag-lock"
    before = len(slack_standin.messages)

    def run_dag() -> dict:
        hook = api_hook()
        run_id = trigger(hook, CANARY)
        assert wait_run(hook, CANARY, run_id, timeout=180)["state"] == "success"
        response = api.get(f"/dags/{CANARY}/dagRuns/{run_id}/taskInstances/canary/xcomEntries/return_value")
        response.raise_for_status()
        value = response.json()["value"]
        return json.loads(value) if isinstance(value, str) else value

    client.set(key, "held")
    try:
        first = run_dag()
        fired_now = [f"{v['invariant_id']}|{v['subject']}" for v in first["transitions"]["fired"]]
        assert f"E-07|{key}" in fired_now
        assert first["cycle_duration_ms"] > 0 and "E-07" in first["checks_run"]
        texts = [m["text"] for m in slack_standin.messages[before:]]
        assert len([t for t in texts if key in t]) == 1
        assert "Runbook:" in texts[-1] and "E-07" in texts[-1]
        second = run_dag()
        assert f"E-07|{key}" in second["transitions"]["still_open"]
        assert len([m for m in slack_standin.messages[before:] if key in m["text"]]) == 1
    finally:
        client.delete(key)
    third = run_dag()
    assert f"E-07|{key}" in third["transitions"]["cleared"]
    cleared = [m["text"] for m in slack_standin.messages[before:] if "cleared" in m["text"]]
    assert len(cleared) == 1 and "E-07" in cleared[0]


def test_cli_canary_run_prints_the_report(env, stack):
    import subprocess
    import sys

    faultcat = Path(sys.executable).with_name("faultcat")
    done = subprocess.run(
        [str(faultcat), "canary", "run", "--json", "--no-alert", "--docker-conn-id", ""],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert report["cycle_duration_ms"] > 0 and len(report["checks_run"]) >= 9
