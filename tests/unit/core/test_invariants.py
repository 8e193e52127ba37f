"""The canary invariants over hand-made snapshots: each fires on its case and holds otherwise."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_faultcat.core.containers import ContainerState, ZombieProcess
from airflow_faultcat.core.invariants import (
    REGISTRY,
    CanarySettings,
    ExpectedVm,
    Invariant,
    ProcessInfo,
    RedisKey,
    Snapshot,
    by_id,
    describe,
    run_checks,
    seconds,
)
from airflow_faultcat.core.models import DomainObservation, DomainSnapshot

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
S = CanarySettings(
    timeout_buffer_seconds=10,
    heartbeat_stale_seconds=30,
    queued_seconds=20,
    restart_count=3,
    zombie_grace_seconds=5,
)


def ago(secs: float) -> str:
    return (NOW - timedelta(seconds=secs)).isoformat()


def healthy_health() -> dict:
    return {
        "metadatabase": {"status": "healthy"},
        "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": ago(2)},
        "triggerer": {"status": "healthy", "latest_triggerer_heartbeat": ago(2)},
        "dag_processor": {"status": "healthy", "latest_dag_processor_heartbeat": ago(2)},
    }


def snap(**kw) -> Snapshot:
    base = {
        "taken_at": NOW,
        "hostname": "worker-1.example",
        "health": healthy_health(),
        "pools": [{"name": "default_pool", "slots": 8, "open_slots": 8}],
        "sources_not_configured": [],
    }
    base.update(kw)
    return Snapshot(**base)


def ti(task_id="t", **kw) -> dict:
    out = {
        "dag_id": "d",
        "dag_run_id": "r",
        "task_id": task_id,
        "map_index": -1,
        "try_number": 1,
        "state": "running",
        "hostname": "worker-1.example",
        "pid": 4242,
        "pool": "default_pool",
        "start_date": ago(5),
        "execution_timeout_seconds": None,
    }
    out.update(kw)
    return out


def ids(found) -> list[str]:
    return sorted({v.invariant_id for v in found})


def check(inv_id: str, s: Snapshot) -> list:
    return by_id(inv_id).check(s, S)


def test_registry_ids_unique_and_documented():
    seen = [inv.id for inv in REGISTRY]
    assert len(seen) == len(set(seen)) == 11
    for row in describe():
        assert row["description"] and row["runbook"] and row["sources"]
        assert row["severity"] in ("critical", "major", "minor")


def test_healthy_snapshot_has_no_violation():
    procs = [
        ProcessInfo(pid=4242, ppid=4200, name="python", status="sleeping", cmdline="airflow task runner")
    ]
    procs.append(
        ProcessInfo(pid=4200, ppid=1000, name="airflow", status="sleeping", cmdline="airflow scheduler")
    )
    report = run_checks(
        snap(running_task_instances=[ti(execution_timeout_seconds=60)], processes=procs), [], S
    )
    assert report.violations == []
    assert set(report.checks_run) == {inv.id for inv in REGISTRY}


def test_e01_stuck_past_execution_timeout_plus_buffer():
    inside = snap(running_task_instances=[ti(start_date=ago(15), execution_timeout_seconds=10)])
    assert check("E-01", inside) == []  # 15 s <= 10 s + 10 s buffer
    stuck = snap(running_task_instances=[ti(start_date=ago(25), execution_timeout_seconds=10)])
    [v] = check("E-01", stuck)
    assert v.subject == "d/r/t/-1"
    assert v.observed_state["running_seconds"] == pytest.approx(25)
    no_timeout = snap(running_task_instances=[ti(start_date=ago(99999))])
    assert check("E-01", no_timeout) == []


@pytest.mark.parametrize(
    ("proc_status", "parent_status", "fires"),
    [
        ("sleeping", "sleeping", False),
        ("stopped", "sleeping", True),
        ("sleeping", "stopped", True),
        (None, None, True),
    ],
)
def test_e02_running_without_live_process(proc_status, parent_status, fires):
    procs = []
    if proc_status:
        procs.append(ProcessInfo(pid=4242, ppid=4200, name="python", status=proc_status))
        procs.append(ProcessInfo(pid=4200, ppid=1, name="airflow", status=parent_status))
    found = check("E-02", snap(running_task_instances=[ti()], processes=procs))
    assert bool(found) is fires
    other_host = check("E-02", snap(running_task_instances=[ti(hostname="worker-2")], processes=[]))
    assert other_host == []


def test_e03_queued_needs_open_slots_and_stale_scheduler():
    queued = [ti(state="queued", queued_when=ago(60))]
    health = healthy_health()
    assert check("E-03", snap(queued_task_instances=queued, health=health)) == []
    health["scheduler"]["latest_scheduler_heartbeat"] = ago(90)
    [v] = check("E-03", snap(queued_task_instances=queued, health=health))
    assert v.observed_state["scheduler_heartbeat_age_seconds"] == pytest.approx(90)
    full = [{"name": "default_pool", "slots": 1, "open_slots": 0}]
    assert check("E-03", snap(queued_task_instances=queued, health=health, pools=full)) == []
    fresh = [ti(state="queued", queued_when=ago(5))]
    assert check("E-03", snap(queued_task_instances=fresh, health=health)) == []
    runs = [{"dag_id": "d", "dag_run_id": "r9", "state": "queued", "queued_at": ago(60)}]
    assert len(check("E-03", snap(queued_dag_runs=runs, health=health))) == 1


def test_e04_dag_run_past_timeout():
    run = {
        "dag_id": "d",
        "dag_run_id": "r",
        "state": "running",
        "start_date": ago(40),
        "dag_run_timeout_seconds": 20,
    }
    [v] = check("E-04", snap(running_dag_runs=[run]))
    assert v.subject == "d/r"
    assert check("E-04", snap(running_dag_runs=[{**run, "start_date": ago(25)}])) == []
    assert check("E-04", snap(running_dag_runs=[{**run, "dag_run_timeout_seconds": None}])) == []


@pytest.mark.parametrize(
    ("inv_id", "component", "field"),
    [
        ("E-05", "triggerer", "latest_triggerer_heartbeat"),
        ("E-06", "dag_processor", "latest_dag_processor_heartbeat"),
    ],
)
def test_e05_e06_stale_heartbeats(inv_id, component, field):
    health = healthy_health()
    assert check(inv_id, snap(health=health)) == []
    health[component][field] = ago(31)
    [v] = check(inv_id, snap(health=health))
    assert v.subject == component
    health[component] = {"status": None, field: None}  # never ran here: nothing went stale
    assert check(inv_id, snap(health=health)) == []


def test_e07_redis_keys_without_or_with_excessive_ttl():
    keys = [
        RedisKey(key="faultcat:ok", ttl=60),
        RedisKey(key="faultcat:lock", ttl=-1),
        RedisKey(key="faultcat:long", ttl=S.max_ttl_seconds + 1),
    ]
    found = check("E-07", snap(redis_keys=keys))
    assert sorted(v.subject for v in found) == ["faultcat:lock", "faultcat:long"]


def test_e08_zombie_of_airflow_past_grace_and_orphan_task_process():
    procs = [
        ProcessInfo(pid=10, ppid=9, name="sleep", status="zombie", parent_cmdline="airflow task runner d t"),
        ProcessInfo(pid=14, ppid=9, name="sleep", status="zombie", parent_cmdline="airflow worker -- x"),
        ProcessInfo(pid=11, ppid=8, name="sh", status="zombie", parent_cmdline="bash"),
        ProcessInfo(pid=12, ppid=1, name="python", status="sleeping", cmdline="airflow worker -- 0199a7b2"),
        ProcessInfo(pid=13, ppid=1, name="airflow", status="sleeping", cmdline="airflow scheduler"),
    ]
    seen = {
        "10@0.00": NOW - timedelta(seconds=S.zombie_grace_seconds + 1),
        "14@0.00": NOW - timedelta(seconds=1),
    }
    found = check("E-08", snap(processes=procs, zombies_first_seen=seen))
    # pid 14 has been a zombie for a moment only (the LocalExecutor reaps its workers on its next loop).
    assert sorted(v.subject for v in found) == ["pid:10", "pid:12"]


def _domains(state: str | None) -> DomainSnapshot:
    domains = {} if state is None else {"web-01": DomainObservation(name="web-01", state=state)}
    return DomainSnapshot(
        uri="test:///x", taken_at=NOW, query="virConnectGetAllDomainStats(STATE)", domains=domains
    )


@pytest.mark.parametrize(
    ("state", "fires"), [("running", False), ("paused", True), ("crashed", True), (None, True)]
)
def test_e09_expected_vm(state, fires):
    vms = [ExpectedVm(conn_id="kvm", domain="web-01", declared_by="outlet")]
    found = check("E-09", snap(expected_vms=vms, domains={"kvm": _domains(state)}))
    assert bool(found) is fires
    if fires:
        assert found[0].observed_state["state"] == (state or "missing")


def _container(**kw) -> ContainerState:
    base = {"id": "c1", "name": "web", "image": "busybox", "state": "running", "started_at": ago(1000)}
    base.update(kw)
    return ContainerState(**base)


def test_e10_restart_loop():
    assert check("E-10", snap(containers=[_container(restart_count=5)])) == []  # up 1000 s since
    assert len(check("E-10", snap(containers=[_container(restart_count=5, started_at=ago(2))]))) == 1
    assert (
        len(check("E-10", snap(containers=[_container(restart_count=3, state="exited", exit_code=1)]))) == 1
    )
    assert check("E-10", snap(containers=[_container(restart_count=2, state="exited")])) == []


def test_e11_zombies_in_container():
    z = [ZombieProcess(pid=7, ppid=1, command="sleep")]
    [v] = check("E-11", snap(containers=[_container(zombies=z, zombie_probe="exec ps in web")]))
    assert v.signal_query == "exec ps in web"


def test_unavailable_source_skips_its_checks_and_keeps_open_violations():
    keys = [RedisKey(key="faultcat:lock", ttl=-1)]
    first = run_checks(snap(redis_keys=keys), [], S)
    assert [v.key for v in first.transitions.fired] == ["E-07|faultcat:lock"]
    opened = [v.key for v in first.transitions.fired]
    again = run_checks(snap(redis_keys=keys), opened, S)
    assert again.transitions.fired == [] and again.transitions.still_open == opened
    down = run_checks(snap(sources_unavailable={"redis": "ConnectionError"}), opened, S)
    assert "E-07" not in down.checks_run
    assert [s.invariant_id for s in down.checks_skipped] == ["E-07", "E-08"]  # E-08 keeps zombie ages there
    assert down.violations == [] and down.transitions.undecided == opened and down.transitions.cleared == []
    fixed = run_checks(snap(redis_keys=[RedisKey(key="faultcat:lock", ttl=30)]), opened, S)
    assert fixed.transitions.cleared == opened


def test_api_down_skips_everything_that_reads_it():
    report = run_checks(snap(sources_unavailable={"api": "ConnectError", "health": "ConnectError"}), [], S)
    skipped = {s.invariant_id for s in report.checks_skipped}
    assert {"E-01", "E-02", "E-03", "E-04", "E-05", "E-06"} <= skipped
    assert report.violations == []


def test_one_libvirt_connection_down_leaves_its_vms_undecided():
    vms = [
        ExpectedVm(conn_id="a", domain="web-01", declared_by="outlet"),
        ExpectedVm(conn_id="b", domain="db-01", declared_by="outlet"),
    ]
    s = snap(
        expected_vms=vms, domains={"a": _domains("running")}, sources_unavailable={"libvirt:b": "refused"}
    )
    report = run_checks(s, ["E-09|b/db-01", "E-09|a/web-01"], S)
    assert report.transitions.undecided == ["E-09|b/db-01"]
    assert report.transitions.cleared == ["E-09|a/web-01"]
    all_down = snap(expected_vms=vms, sources_unavailable={"libvirt:a": "x", "libvirt:b": "y"})
    assert "E-09" in {c.invariant_id for c in run_checks(all_down, [], S).checks_skipped}


def test_not_configured_source_is_skipped_not_unavailable():
    report = run_checks(snap(sources_not_configured=["containers"]), [], S)
    reasons = {s.invariant_id: s.reason for s in report.checks_skipped}
    assert reasons == {"E-10": "containers: not configured", "E-11": "containers: not configured"}
    assert report.sources_unavailable == {}


def test_adding_an_invariant_is_one_class():
    class AlwaysOne(Invariant):
        id = "X-99"
        name = "example"
        description = "example"
        runbook = "none"
        sources = ("health",)

        def check(self, snap, settings):
            return [self.violation("one", "seen", {}, "q")]

    report = run_checks(snap(), [], S, registry=(AlwaysOne(),))
    assert [v.key for v in report.transitions.fired] == ["X-99|one"]


def test_seconds_of_rest_timedelta():
    assert seconds({"__type": "TimeDelta", "days": 1, "seconds": 30, "microseconds": 0}) == 86430
    assert seconds(None) is None and seconds(5) == 5.0
    assert seconds("PT3S") == 3.0 and seconds("P1DT1H") == 90000.0 and seconds("soon") is None
