"""The Airflow side of shadow errors: the libvirt:// asset, the trigger and sensor, the recovery hand-off.

The trigger runs against libvirt's own test driver (``tests/data/libvirt/testnode.xml``) and the
Marquez stand-in over loopback; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airflow_faultcat.core.models import FailureContext
from airflow_faultcat.core.shadow import CheckResult, Postcondition, check_key, transitions
from airflow_faultcat.exceptions import ShadowError
from airflow_faultcat.operators.shadow import (
    shadow_failure,
    shadow_message,
    shadow_recovery_run_id,
    subject_task,
    summary_table,
)

NODE = Path(__file__).resolve().parents[2] / "data" / "libvirt" / "testnode.xml"


def _pc(**kw) -> Postcondition:
    return Postcondition(**{"kind": "vm_running", "dag_id": "provision", "run_id": "manual__1", **kw})


def _violation(**kw) -> CheckResult:
    return CheckResult(
        postcondition=_pc(conn_id="libvirt_default", target="web-01", declared_by="outlet", task_id="create"),
        status="VIOLATION",
        violation="vm_not_running",
        observed_state={"exists": True, "state": "shutoff"},
        query="virConnectGetAllDomainStats(VIR_DOMAIN_STATS_STATE) on qemu:///system",
        reason="'web-01' exists but is shutoff",
        **kw,
    )


# -- the asset scheme ------------------------------------------------------------------------


def test_libvirt_asset_uri_is_checked_when_the_asset_is_made():
    from airflow.sdk import Asset

    from airflow_faultcat.assets.libvirt import create_asset

    assert Asset("libvirt://libvirt_default/web-01/").uri == "libvirt://libvirt_default/web-01"
    assert create_asset(domain="web 01", conn_id="kvm1").uri == "libvirt://kvm1/web%2001"
    with pytest.raises(ValueError, match="must name one domain"):
        Asset("libvirt://libvirt_default/a/b")
    with pytest.raises(ValueError, match="must name a connection"):
        Asset("libvirt:///web-01")


# -- the recovery hand-off -------------------------------------------------------------------


def test_a_violation_becomes_a_shadow_error_failure_context():
    tis = [
        {"task_id": "create", "map_index": -1, "try_number": 2, "end_date": "2026-01-01T00:00:01Z"},
        {"task_id": "report", "map_index": -1, "try_number": 1, "end_date": "2026-01-01T00:00:09Z"},
    ]
    result = _violation()
    failure = shadow_failure(result, tis)
    assert (failure.task_id, failure.try_number) == ("create", 2)
    assert failure.exception_type == "airflow_faultcat.exceptions.ShadowError"
    assert failure.exception_message.startswith("ShadowError: vm_not_running: 'web-01' exists but is shutoff")
    assert "declared outlet by task create" in failure.exception_message
    assert failure.extra["shadow_key"] == check_key(result)
    # The conf survives the recovery DAG's validation (FailureContext, JSON).
    FailureContext.model_validate(json.loads(failure.model_dump_json(exclude_none=True)))
    # Lineage has no declaring task: the task that ended last, whose log shows how the run ended.
    lineage = CheckResult(
        postcondition=_pc(kind="lineage", conn_id="marquez_default"),
        status="VIOLATION",
        violation="lineage_missing",
        reason="Marquez has no OpenLineage run for this DagRun",
    )
    assert subject_task(lineage, tis)["task_id"] == "report"


def test_a_state_mismatch_points_at_the_failed_task_not_the_allowed_one():
    result = CheckResult(
        postcondition=_pc(kind="tasks_healthy"),
        status="VIOLATION",
        violation="state_mismatch",
        observed_state={
            "failed": [{"task_id": "drop", "state": "failed"}, {"task_id": "load", "state": "failed"}],
            "allowed_by": {"drop": "a teardown task"},
        },
        reason="the DagRun is success while load failed",
    )
    tis = [{"task_id": "drop", "try_number": 1}, {"task_id": "load", "try_number": 3}]
    assert subject_task(result, tis)["task_id"] == "load"


def test_recovery_run_id_is_stable_per_violation_and_shadow_failures_have_their_own_keys(tmp_path):
    from airflow_faultcat.hooks.state import failure_key
    from airflow_faultcat.operators.recovery import evidence_folder

    a, b = _violation(), _violation()
    assert shadow_recovery_run_id(a) == shadow_recovery_run_id(b)
    assert shadow_recovery_run_id(a).startswith("faultcat__shadow.vm_not_running.provision__")
    other = a.model_copy(update={"postcondition": a.postcondition.model_copy(update={"target": "web-02"})})
    assert shadow_recovery_run_id(other) != shadow_recovery_run_id(a)

    shadow = shadow_failure(a, [{"task_id": "create", "try_number": 1}])
    plain = FailureContext(dag_id="provision", run_id="manual__1", task_id="create", try_number=1)
    assert failure_key(shadow) != failure_key(plain)
    shadow_folder = str(evidence_folder(shadow, str(tmp_path)))
    assert shadow_folder.startswith(str(evidence_folder(plain, str(tmp_path))))
    assert "/shadow-vm_not_running-" in shadow_folder


def test_summary_table_lists_violations_first_with_their_transition():
    ok = CheckResult(postcondition=_pc(kind="tasks_healthy"), status="PASS", reason="no TaskInstance failed")
    bad = _violation()
    table = summary_table([ok, bad], transitions([], [ok, bad]))
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["STATUS", "CHECK"]
    assert lines[1].startswith("VIOLATION") and "fired" in lines[1] and "web-01" in lines[1]
    assert lines[2].startswith("PASS")
    assert shadow_message(bad) in shadow_failure(bad, []).exception_message


# -- the trigger -----------------------------------------------------------------------------


@pytest.fixture
def libvirt_conn(monkeypatch):
    pytest.importorskip("libvirt")
    monkeypatch.setenv(
        "AIRFLOW_CONN_LIBVIRT_UNIT", json.dumps({"conn_type": "libvirt", "extra": {"uri": f"test://{NODE}"}})
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_LIBVIRT_GONE",
        json.dumps({"conn_type": "libvirt", "extra": {"uri": "test:///nonexistent/node.xml"}}),
    )
    return "libvirt_unit"


@pytest.fixture
def marquez(monkeypatch):
    from tests.standins.marquez_api import MarquezApiStandin

    with MarquezApiStandin() as standin:
        conn = {
            "conn_type": "marquez",
            "host": "127.0.0.1",
            "port": standin.port,
            "extra": {"namespace": "unit"},
        }
        monkeypatch.setenv("AIRFLOW_CONN_MARQUEZ_UNIT", json.dumps(conn))
        yield standin


def _events(trigger) -> list:
    async def collect():
        return [event async for event in trigger.run()]

    return asyncio.run(collect())


def _task_event(standin, state: str) -> None:
    import httpx

    facets = {
        "airflow": {
            "_producer": "https://github.com/apache/airflow/tree/providers-openlineage/2.20.3",
            "_schemaURL": "https://openlineage.io/spec/facets/1-0-0/AirflowRunFacet.json",
            "dagRun": {"dag_id": "provision", "run_id": "manual__1"},
            "taskInstance": {"try_number": 1, "map_index": None},
        }
    }
    event = {
        "eventType": state,
        "eventTime": datetime.now(timezone.utc).isoformat(),
        "run": {"runId": str(uuid.uuid4()), "facets": facets},
        "job": {"namespace": "unit", "name": "provision.create", "facets": {}},
        "inputs": [],
        "outputs": [],
        "producer": "https://github.com/apache/airflow/tree/providers-openlineage/2.20.3",
        "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
    }
    httpx.post(f"{standin.url}/api/v1/lineage", json=event, timeout=5).raise_for_status()


def _trigger(pcs, seconds=0.0):
    from airflow_faultcat.triggers.shadow import ShadowErrorTrigger

    timeout_at = (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()
    return ShadowErrorTrigger(
        [p.model_dump(mode="json") for p in pcs],
        marquez_conn_id="marquez_unit",
        poke_interval=0.2,
        timeout_at=timeout_at,
    )


def test_trigger_passes_when_vm_runs_and_task_lineage_is_complete(libvirt_conn, marquez):
    _task_event(marquez, "COMPLETE")
    pcs = [
        _pc(conn_id=libvirt_conn, target="vm-running", declared_by="sensor"),
        _pc(kind="lineage", conn_id="marquez_unit", target="create", task_id="create", declared_by="sensor"),
    ]
    trigger = _trigger(pcs, seconds=30)
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_faultcat.triggers.shadow.ShadowErrorTrigger"
    (event,) = _events(type(trigger)(**kwargs))
    assert event.payload["status"] == "pass"
    assert [r["status"] for r in event.payload["results"]] == ["PASS", "PASS"]


def test_trigger_times_out_with_violations_and_unavailable_sources(libvirt_conn, marquez):
    _task_event(marquez, "START")
    pcs = [
        _pc(conn_id=libvirt_conn, target="vm-shutoff"),
        _pc(conn_id=libvirt_conn, target="vm-missing"),
        _pc(conn_id="libvirt_gone", target="vm-running"),
        _pc(kind="lineage", conn_id="marquez_unit", target="create", task_id="create"),
    ]
    (event,) = _events(_trigger(pcs, seconds=0.5))
    assert event.payload["status"] == "timeout"
    got = [(r["status"], r["violation"]) for r in event.payload["results"]]
    assert got == [
        ("VIOLATION", "vm_not_running"),
        ("VIOLATION", "vm_not_created"),
        ("UNAVAILABLE", None),
        ("VIOLATION", "lineage_incomplete"),
    ]
    marquez.down()
    (event,) = _events(_trigger(pcs[3:], seconds=0))
    assert event.payload["results"][0]["status"] == "UNAVAILABLE"


# -- the sensor ------------------------------------------------------------------------------


def _sensor(**kw):
    from airflow_faultcat.sensors.shadow import ShadowErrorSensor

    return ShadowErrorSensor(task_id="verify", **{"vms": ["web-01"], "lineage_tasks": ["create"], **kw})


def test_sensor_declares_its_postconditions_and_follows_default_deferrable():
    from types import SimpleNamespace

    from airflow.configuration import conf as airflow_conf

    sensor = _sensor(marquez_conn_id="marquez_prod")
    assert sensor.deferrable is airflow_conf.getboolean("operators", "default_deferrable", fallback=False)
    pcs = sensor.postconditions({"dag": SimpleNamespace(dag_id="provision"), "run_id": "manual__1"})
    assert [(p.kind, p.target, p.conn_id, p.declared_by) for p in pcs] == [
        ("vm_running", "web-01", "libvirt_default", "sensor"),
        ("lineage", "create", "marquez_prod", "sensor"),
    ]
    with pytest.raises(ValueError, match="lists of names"):
        _sensor(vms="web-01").postconditions({"dag": SimpleNamespace(dag_id="d"), "run_id": "r"})


def test_deferrable_sensor_checks_before_it_defers_and_never_resumes_within_seconds(libvirt_conn, marquez):
    from types import SimpleNamespace

    from airflow.sdk.exceptions import TaskDeferred

    _task_event(marquez, "COMPLETE")
    context = {"dag": SimpleNamespace(dag_id="provision"), "run_id": "manual__1"}
    kw = {"libvirt_conn_id": libvirt_conn, "marquez_conn_id": "marquez_unit", "deferrable": True}
    # Everything holds at the first check: done in the worker, no deferral.
    done = _sensor(vms=["vm-running"], **kw).execute(context)
    assert [r["status"] for r in done] == ["PASS", "PASS"]
    # Not yet: the trigger takes over and waits before its first check.
    with pytest.raises(TaskDeferred) as deferred:
        _sensor(vms=["vm-shutoff"], poke_interval=2, **kw).execute(context)
    _, kwargs = deferred.value.trigger.serialize()
    assert kwargs["first_check_after"] >= 10
    assert deferred.value.method_name == "execute_complete"


def test_sensor_fails_with_the_violations_or_skips_when_soft_fail():
    from airflow.sdk.exceptions import AirflowSkipException

    event = {"status": "timeout", "results": [_violation().model_dump(mode="json")]}
    with pytest.raises(ShadowError, match="VIOLATION vm_not_running web-01: 'web-01' exists but is shutoff"):
        _sensor().execute_complete({}, event)
    with pytest.raises(AirflowSkipException, match="vm_not_running web-01"):
        _sensor(soft_fail=True).execute_complete({}, event)
    passed = {"status": "pass", "results": []}
    assert _sensor().execute_complete({}, passed) == []


def test_lineage_expected_follows_the_setting(monkeypatch):
    from airflow_faultcat import conf

    monkeypatch.setenv("AIRFLOW__FAULTCAT__SHADOW_LINEAGE", "false")
    assert conf.shadow_lineage_expected() is False
    monkeypatch.setenv("AIRFLOW__FAULTCAT__SHADOW_LINEAGE", "true")
    assert conf.shadow_lineage_expected() is True
    monkeypatch.setenv("AIRFLOW__FAULTCAT__SHADOW_LINEAGE", "sometimes")
    with pytest.raises(ValueError, match="shadow_lineage"):
        conf.shadow_lineage_expected()
