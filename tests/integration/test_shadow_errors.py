"""Shadow errors on the real stack: successful DagRuns whose postconditions were broken.

VMs are domains of a libvirt test-driver node (``conftest.LibvirtNode``), rewritten between scans
to define, start or stop them. Lineage is what the stack's OpenLineage provider really sent to the
stand-in Marquez (``tests/standins/marquez_api.py``), whose answers are checked against Marquez's
OpenAPI description here. Each test scans only its own Dags (``faultcat_shadow_scan`` triggered
with ``dag_ids``), so each has its own window and open violations in Redis.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.conftest import NODE_DOMAINS, OL_NAMESPACE
from tests.integration.helpers import RECOVERY
from tests.integration.helpers import api_hook as _hook
from tests.integration.helpers import trigger as _trigger
from tests.integration.helpers import wait_run as _wait_run

pytestmark = pytest.mark.integration

SCAN = "faultcat_shadow_scan"


# -- helpers ---------------------------------------------------------------------------------


def _run_all(hook, dags: dict[str, dict | None], states=("success",)) -> dict[str, str]:
    """Trigger each Dag (with its conf) at once, then wait for each; returns dag_id -> run_id."""
    runs = {dag_id: _trigger(hook, dag_id.split("#")[0], conf) for dag_id, conf in dags.items()}
    for key, run_id in runs.items():
        run = _wait_run(hook, key.split("#")[0], run_id)
        assert run["state"] in states, f"{key} ended {run['state']}"
    return runs


def _wait_lineage(marquez_standin, dag_id: str, run_id: str, timeout: float = 60) -> None:
    """Wait until the scheduler's COMPLETE event for the DagRun reached Marquez."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in marquez_standin.job_runs(OL_NAMESPACE, dag_id):
            facet = (run.facets.get("airflowDagRun") or {}).get("dagRun") or {}
            if facet.get("run_id") == run_id and run.state == "COMPLETED":
                return
        time.sleep(1)
    raise AssertionError(f"no COMPLETED lineage for {dag_id} {run_id} in Marquez after {timeout} s")


def _scan(hook, api, dag_ids: list[str]) -> dict:
    """One scan of ``dag_ids``; returns the scan task's report (its XCom)."""
    run_id = _trigger(hook, SCAN, {"dag_ids": dag_ids, "settle_seconds": 0})
    run = _wait_run(hook, SCAN, run_id, timeout=180)
    assert run["state"] == "success", f"the scan failed: {run}"
    response = api.get(f"/dags/{SCAN}/dagRuns/{run_id}/taskInstances/scan/xcomEntries/return_value")
    response.raise_for_status()
    value = response.json()["value"]
    return json.loads(value) if isinstance(value, str) else value


def _verdicts(report: dict, dag_id: str) -> dict[str, dict]:
    """This Dag's verdicts in a scan report, by postcondition kind (and target)."""
    out = {}
    for r in report["results"]:
        pc = r["postcondition"]
        if pc["dag_id"] == dag_id:
            out[pc["kind"] + (f":{pc['target']}" if pc["kind"] == "vm_running" else "")] = r
    return out


def _fired(report: dict, dag_id: str) -> list[dict]:
    return [f for f in report["fired"] if f["dag_id"] == dag_id]


def _keys_of(report_list: list[str], dag_id: str) -> list[str]:
    return [k for k in report_list if f"|{dag_id}|" in k]


# -- VMs, lineage, fire once, clear after the fix --------------------------------------------


def test_vm_postconditions_fire_once_over_three_scans_and_clear_after_the_fix(
    stack, stack_env, api, marquez_standin
):
    hook = _hook()
    dags = ["it_shadow_vm_running", "it_shadow_vm_absent", "it_shadow_vm_off", "it_shadow_yaml"]
    runs = _run_all(
        hook,
        {
            "it_shadow_vm_running": None,
            "it_shadow_vm_absent": None,
            "it_shadow_vm_off": None,
            "it_shadow_yaml": {"vm_name": "it-paused"},
        },
    )
    for dag_id, run_id in runs.items():
        _wait_lineage(marquez_standin, dag_id, run_id)

    first = _scan(hook, api, dags)
    assert first["dag_runs"] == 4
    ok = _verdicts(first, "it_shadow_vm_running")
    assert ok["vm_running:it-running"]["status"] == "PASS"
    assert ok["vm_running:it-running"]["postcondition"]["declared_by"] == "outlet"
    assert ok["lineage"]["status"] == "PASS", ok["lineage"]
    assert ok["tasks_healthy"]["status"] == "PASS"

    absent = _verdicts(first, "it_shadow_vm_absent")["vm_running:it-absent"]
    assert (absent["status"], absent["violation"]) == ("VIOLATION", "vm_not_created")
    assert absent["observed_state"]["exists"] is False
    assert "virConnectGetAllDomainStats" in absent["query"]
    off = _verdicts(first, "it_shadow_vm_off")["vm_running:it-off"]
    assert (off["status"], off["violation"]) == ("VIOLATION", "vm_not_running")
    assert off["observed_state"]["state"] == "shutoff"
    # The postconditions file names the VM from the DagRun conf: {{ params.vm_name }} -> it-paused.
    paused = _verdicts(first, "it_shadow_yaml")["vm_running:it-paused"]
    assert (paused["violation"], paused["observed_state"]["state"]) == ("vm_not_running", "paused")
    assert paused["postcondition"]["declared_by"] == "yaml"
    fired = {f["dag_id"] for f in first["fired"]}
    assert fired == {"it_shadow_vm_absent", "it_shadow_vm_off", "it_shadow_yaml"}
    assert first["coverage"]["unavailable"] == 0

    # Scans two and three see the same violations and alert nothing new.
    for _ in range(2):
        again = _scan(hook, api, dags)
        assert again["fired"] == []
        assert len(_keys_of(again["still_open"], "it_shadow_vm_off")) == 1
        assert len(_keys_of(again["still_open"], "it_shadow_vm_absent")) == 1
        assert again["cleared"] == []

    # The fix: the missing VM is defined and the stopped ones started.
    stack.libvirt_node.write({**NODE_DOMAINS, "it-off": 1, "it-paused": 1, "it-absent": 1})
    try:
        fixed = _scan(hook, api, dags)
    finally:
        stack.libvirt_node.write(NODE_DOMAINS)
    assert fixed["fired"] == []
    for dag_id in ("it_shadow_vm_absent", "it_shadow_vm_off", "it_shadow_yaml"):
        assert len(_keys_of(fixed["cleared"], dag_id)) == 1, fixed["cleared"]
    assert fixed["still_open"] == []


def test_a_new_violation_reaches_the_recovery_dag_as_a_state_mismatch(stack, stack_env, api):
    """The recovery run of a fired violation diagnoses STATE_MISMATCH and writes its bundle."""
    from airflow_faultcat.core.models import FailureContext
    from airflow_faultcat.operators.recovery import evidence_folder

    hook = _hook()
    runs = _run_all(hook, {"it_shadow_vm_off": None})
    report = _scan(hook, api, ["it_shadow_vm_off"])
    # Its window is its own: the run above, and earlier ones of this Dag, are new to it.
    mine = [f for f in _fired(report, "it_shadow_vm_off") if f["run_id"] == runs["it_shadow_vm_off"]]
    assert len(mine) == 1 and mine[0]["violation"] == "vm_not_running"
    recovery_run_id = mine[0]["recovery_run_id"]
    recovery = _wait_run(hook, RECOVERY, recovery_run_id, timeout=300)
    conf = recovery["conf"]
    assert conf["exception_type"] == "airflow_faultcat.exceptions.ShadowError"
    assert conf["exception_message"].startswith("ShadowError: vm_not_running:")
    assert conf["task_id"] == "provision"
    fields = FailureContext.model_fields
    failure = FailureContext.model_validate({k: v for k, v in conf.items() if k in fields})
    bundle_path = Path(str(evidence_folder(failure) / "bundle.json").removeprefix("file://"))
    deadline = time.monotonic() + 60
    while not bundle_path.exists() and time.monotonic() < deadline:
        time.sleep(1)
    bundle = json.loads(bundle_path.read_text())
    diagnosis = bundle["diagnosis"]
    assert diagnosis["root_cause"] == "STATE_MISMATCH"
    assert diagnosis["findings"][0]["pattern_id"] == "shadow_002"
    # A successful DagRun has nothing failed to clear: the plan escalates, it never retries.
    assert bundle["plan"]["decision"]["mode"] == "escalate"


# -- lineage -------------------------------------------------------------------------------


def test_lineage_present_missing_and_incomplete(stack_env, api, marquez_standin):
    from tests.standins.marquez_api import response_errors

    hook = _hook()
    runs = _run_all(hook, {"it_shadow_nolineage": None, "it_shadow_partial_lineage": None})
    _wait_lineage(marquez_standin, "it_shadow_partial_lineage", runs["it_shadow_partial_lineage"])
    report = _scan(hook, api, ["it_shadow_nolineage", "it_shadow_partial_lineage"])

    missing = _verdicts(report, "it_shadow_nolineage")["lineage"]
    assert (missing["status"], missing["violation"]) == ("VIOLATION", "lineage_missing")
    assert missing["query"].startswith("GET /api/v1/namespaces/faultcat_it/jobs/it_shadow_nolineage/runs")
    partial = _verdicts(report, "it_shadow_partial_lineage")["lineage"]
    assert (partial["status"], partial["violation"]) == ("VIOLATION", "lineage_incomplete")
    assert partial["observed_state"]["state"] == "COMPLETED"
    assert partial["observed_state"]["tasks_missing"] == ["publish_rows"]

    # What Marquez (the stand-in) answered is what Marquez's OpenAPI description allows.
    from tests.standins.marquez_api import operation_of

    answered = [r for r in marquez_standin.requests if r.method == "GET" and r.status == 200]
    assert answered
    for request in answered:
        operation = operation_of("GET", request.path)
        assert response_errors(operation, request.status, request.response) == [], request.path


# -- state mismatch --------------------------------------------------------------------------


def test_state_mismatch_with_and_without_legitimate_rules(stack_env, api):
    hook = _hook()
    mismatch = _trigger(hook, "it_shadow_mismatch")
    teardown = _trigger(hook, "it_shadow_teardown")
    all_done = _trigger(hook, "it_shadow_all_done")
    assert _wait_run(hook, "it_shadow_mismatch", mismatch)["state"] == "failed"
    # Marked success by hand, as in the UI: its failed TaskInstance stays failed.
    response = api.patch(f"/dags/it_shadow_mismatch/dagRuns/{mismatch}", json={"state": "success"})
    response.raise_for_status()
    assert _wait_run(hook, "it_shadow_teardown", teardown)["state"] == "success"
    assert _wait_run(hook, "it_shadow_all_done", all_done)["state"] == "success"

    report = _scan(hook, api, ["it_shadow_mismatch", "it_shadow_teardown", "it_shadow_all_done"])
    bad = [
        r
        for r in report["results"]
        if r["postcondition"]["dag_id"] == "it_shadow_mismatch" and r["postcondition"]["run_id"] == mismatch
    ][0]
    assert (bad["status"], bad["violation"]) == ("VIOLATION", "state_mismatch")
    assert bad["observed_state"]["failed"] == [{"task_id": "load", "state": "failed"}]
    assert "load failed" in bad["reason"]
    assert "/taskInstances" in bad["query"]

    td = _verdicts(report, "it_shadow_teardown")["tasks_healthy"]
    assert td["status"] == "PASS" and "teardown" in td["observed_state"]["allowed_by"]["drop_scratch"]
    ad = _verdicts(report, "it_shadow_all_done")["tasks_healthy"]
    assert ad["status"] == "PASS"
    assert "trigger_rule all_done" in ad["observed_state"]["allowed_by"]["fetch"]
    assert not _fired(report, "it_shadow_teardown") and not _fired(report, "it_shadow_all_done")


# -- unreachable sources ---------------------------------------------------------------------


def test_unreachable_libvirt_and_marquez_are_unavailable_never_violations(stack_env, api, marquez_standin):
    hook = _hook()
    runs = _run_all(hook, {"it_shadow_libvirt_down": None, "it_shadow_nolineage": None})
    _wait_lineage(marquez_standin, "it_shadow_libvirt_down", runs["it_shadow_libvirt_down"])
    dags = ["it_shadow_libvirt_down", "it_shadow_nolineage"]

    # libvirt: the connection's node file does not exist.
    first = _scan(hook, api, dags)
    vm = _verdicts(first, "it_shadow_libvirt_down")["vm_running:it-running"]
    assert vm["status"] == "UNAVAILABLE" and vm["violation"] is None
    assert "libvirt" in vm["reason"]
    assert first["sources"]["libvirt:libvirt_down"] != "ok"
    assert not [f for f in first["fired"] if f["violation"].startswith("vm_")]
    # The lineage of the Dag without it fired once.
    assert len(_fired(first, "it_shadow_nolineage")) >= 1

    # Marquez down: the open lineage violation is neither confirmed nor cleared.
    marquez_standin.down()
    try:
        second = _scan(hook, api, dags)
    finally:
        marquez_standin.up()
    lineage = [r for r in second["results"] if r["postcondition"]["kind"] == "lineage"]
    assert lineage and all(r["status"] == "UNAVAILABLE" for r in lineage)
    assert "503" in lineage[0]["reason"]
    assert second["fired"] == [] and second["cleared"] == []
    assert _keys_of(second["undecided"], "it_shadow_nolineage")
    assert second["coverage"]["violations"] == 0

    # Back up: the violation is still open, not alerted again.
    third = _scan(hook, api, dags)
    assert third["fired"] == []
    assert _keys_of(third["still_open"], "it_shadow_nolineage")


# -- the sensor ------------------------------------------------------------------------------


def _ti(hook, dag_id: str, run_id: str, task_id: str) -> dict:
    return hook.get_task_instance(dag_id, run_id, task_id, -1)


def test_sensor_passes_fails_and_soft_fails(stack_env):
    hook = _hook()
    runs = {
        d: _trigger(hook, d)
        for d in (
            "it_shadow_sensor_ok",
            "it_shadow_sensor_off",
            "it_shadow_sensor_soft",
            "it_shadow_sensor_poke",
            "it_shadow_sensor_poke_off",
        )
    }
    ended = {d: _wait_run(hook, d, r)["state"] for d, r in runs.items()}
    assert ended["it_shadow_sensor_ok"] == "success"
    assert ended["it_shadow_sensor_poke"] == "success"
    assert ended["it_shadow_sensor_off"] == "failed"
    assert ended["it_shadow_sensor_poke_off"] == "failed"
    assert _ti(hook, "it_shadow_sensor_soft", runs["it_shadow_sensor_soft"], "verify")["state"] == "skipped"

    # The failure names each violation, with what was observed.
    log = "\n".join(hook.iter_task_log("it_shadow_sensor_off", runs["it_shadow_sensor_off"], "verify", 1, -1))
    assert "ShadowError" in log
    assert "vm_not_running it-off" in log and "vm_not_created it-absent" in log
    poke_log = "\n".join(
        hook.iter_task_log("it_shadow_sensor_poke_off", runs["it_shadow_sensor_poke_off"], "verify", 1, -1)
    )
    assert "vm_not_running it-paused" in poke_log and "is paused" in poke_log


def test_a_vm_undefined_after_its_dagrun_passed_is_caught_for_the_next_dagrun(
    stack, stack_env, api, marquez_standin
):
    """The domain disappears from the host (undefined) between two provisioning runs."""
    hook = _hook()
    dag_id = "it_shadow_vm_running"
    before = _run_all(hook, {dag_id: None})[dag_id]
    _wait_lineage(marquez_standin, dag_id, before)
    scope = [dag_id]
    first = _scan(hook, api, scope)
    assert [r["status"] for r in first["results"] if r["postcondition"]["run_id"] == before] == ["PASS"] * 3
    stack.libvirt_node.write({k: v for k, v in NODE_DOMAINS.items() if k != "it-running"})
    try:
        after = _run_all(hook, {dag_id: None})[dag_id]
        _wait_lineage(marquez_standin, dag_id, after)
        second = _scan(hook, api, scope)
    finally:
        stack.libvirt_node.write(NODE_DOMAINS)
    # Only the new DagRun is in the window: the earlier one passed when it was checked.
    assert {r["postcondition"]["run_id"] for r in second["results"]} == {after}
    (fired,) = second["fired"]
    assert (fired["run_id"], fired["violation"]) == (after, "vm_not_created")
