"""Shadow-error checks: declarations, the tri-state verdicts, and which rule decided."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow_faultcat.core.models import DomainObservation, DomainSnapshot
from airflow_faultcat.core.shadow import (
    Postcondition,
    PostconditionFileError,
    PostconditionRule,
    check_lineage,
    check_tasks,
    check_vm,
    coverage,
    load_postcondition_rules,
    parse_libvirt_asset,
    postconditions_for,
    render_name,
)

RUN = {
    "dag_id": "provision_web",
    "dag_run_id": "manual__1",
    "state": "success",
    "conf": {"vm_name": "web-01"},
}


def _snapshot(**states: str) -> DomainSnapshot:
    return DomainSnapshot(
        uri="test:///node.xml",
        taken_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        query="virConnectGetAllDomainStats(VIR_DOMAIN_STATS_STATE)",
        domains={n: DomainObservation(name=n, state=s) for n, s in states.items()},
    )


def _vm(name: str) -> Postcondition:
    return Postcondition(kind="vm_running", dag_id="d", run_id="r", conn_id="libvirt_default", target=name)


@pytest.mark.parametrize(
    ("states", "status", "violation"),
    [
        ({"web-01": "running"}, "PASS", None),
        ({"other": "running"}, "VIOLATION", "vm_not_created"),
        ({"web-01": "shutoff"}, "VIOLATION", "vm_not_running"),
        ({"web-01": "paused"}, "VIOLATION", "vm_not_running"),
        ({"web-01": "crashed"}, "VIOLATION", "vm_not_running"),
    ],
)
def test_vm_checks(states, status, violation):
    result = check_vm(_vm("web-01"), _snapshot(**states))
    assert (result.status, result.violation) == (status, violation)
    assert result.query == "virConnectGetAllDomainStats(VIR_DOMAIN_STATS_STATE) on test:///node.xml"
    if violation == "vm_not_running":
        assert result.observed_state["state"] == states["web-01"]


def test_unreachable_libvirt_is_unavailable_never_a_verdict():
    result = check_vm(_vm("web-01"), None, "Failed to connect socket to '/var/run/libvirt/libvirt-sock'")
    assert result.status == "UNAVAILABLE" and result.violation is None
    assert "libvirt-sock" in result.reason


TASKS = {
    "create": {"trigger_rule": "all_success", "downstream_task_ids": ["report"]},
    "report": {"trigger_rule": "all_done", "downstream_task_ids": []},
    "load": {"trigger_rule": "all_success", "downstream_task_ids": []},
    "cleanup": {"trigger_rule": "all_done_setup_success", "downstream_task_ids": []},
}


def _tis(**states):
    return [{"task_id": t, "map_index": -1, "state": s} for t, s in states.items()]


def _healthy():
    return Postcondition(kind="tasks_healthy", dag_id="d", run_id="r")


def test_state_mismatch_without_a_rule_that_allows_it():
    result = check_tasks(_healthy(), {"state": "success"}, _tis(load="failed", create="success"), TASKS)
    assert result.status == "VIOLATION" and result.violation == "state_mismatch"
    assert "load failed and no trigger rule or teardown allows it" in result.reason


def test_a_failed_teardown_is_legitimate_and_says_so():
    result = check_tasks(_healthy(), {"state": "success"}, _tis(load="success", cleanup="failed"), TASKS)
    assert result.status == "PASS"
    assert result.observed_state["allowed_by"] == {
        "cleanup": "a teardown task; teardowns do not fail the DagRun"
    }


def test_a_failure_followed_by_an_all_done_task_is_legitimate():
    result = check_tasks(_healthy(), {"state": "success"}, _tis(create="failed", report="success"), TASKS)
    assert result.status == "PASS"
    assert "downstream report ran with trigger_rule all_done" in result.reason


def test_tasks_unreadable_or_run_not_success():
    assert check_tasks(_healthy(), {"state": "success"}, None, None, "HTTP 503").status == "UNAVAILABLE"
    assert check_tasks(_healthy(), {"state": "failed"}, _tis(load="failed"), TASKS).status == "PASS"


def test_lineage_checks():
    pc = Postcondition(kind="lineage", dag_id="d", run_id="r")
    q = "GET /api/v1/jobs/runs/0190-..."
    assert check_lineage(pc, None, query=q).violation == "lineage_missing"
    assert check_lineage(pc, {"id": "x", "state": "RUNNING"}, query=q).violation == "lineage_incomplete"
    partial = check_lineage(
        pc, {"id": "x", "state": "COMPLETED"}, task_runs={"a": {"state": "COMPLETED"}, "b": None}
    )
    assert partial.violation == "lineage_incomplete" and "no task run for b" in partial.reason
    assert check_lineage(pc, {"id": "x", "state": "COMPLETED"}, task_runs={"a": {}}).status == "PASS"
    down = check_lineage(pc, None, query=q, error="Connection refused")
    assert down.status == "UNAVAILABLE" and down.violation is None


def test_coverage_counts_what_was_decided():
    results = [
        check_vm(_vm("a"), _snapshot(a="running")),
        check_vm(_vm("b"), _snapshot(a="running")),
        check_vm(_vm("c"), None, "down"),
    ]
    cov = coverage(results)
    assert (cov.checked, cov.passed, cov.violations, cov.unavailable) == (3, 1, 1, 1)
    assert cov.ratio == pytest.approx(2 / 3, abs=1e-4)
    assert coverage([]).ratio == 1.0


def test_outlet_uri():
    assert parse_libvirt_asset("libvirt://libvirt_default/web-01") == ("libvirt_default", "web-01")
    for bad in ["http://x/y", "libvirt:///web-01", "libvirt://conn/", "libvirt://conn/a/b"]:
        with pytest.raises(ValueError):
            parse_libvirt_asset(bad)


def test_name_templates_render_from_conf_and_refuse_undefined():
    assert render_name("{{ params.vm_name }}", {"vm_name": "web-01"}) == "web-01"
    assert render_name("{{ dag_run.dag_run_id }}-db", {}, RUN) == "manual__1-db"
    with pytest.raises(ValueError, match="has no attribute .missing."):
        render_name("{{ params.missing }}", {})
    with pytest.raises(ValueError):
        render_name("{{ ''.__class__.__mro__ }}", {})  # the sandbox refuses it


def test_postconditions_from_outlets_rules_and_defaults():
    rules = [
        PostconditionRule(dag_id="provision_.*", vms=[{"name": "{{ params.vm_name }}"}], lineage=True),
        PostconditionRule(dag_id="other", vms=[{"name": "x"}]),
        PostconditionRule(dag_id="provision_web", vms=[{"name": "{{ params.nope }}"}]),
    ]
    outlets = [
        ("create_vm", "libvirt://libvirt_default/web-01"),
        ("x", "s3://bucket/key"),
        ("y", "libvirt://c/"),
    ]
    pcs, problems = postconditions_for(RUN, rules, outlets=outlets)
    kinds = [(p.kind, p.target, p.declared_by) for p in pcs]
    assert kinds == [
        ("tasks_healthy", "all TaskInstances", "default"),
        ("vm_running", "web-01", "outlet"),
        ("lineage", None, "default"),
    ], "the YAML rule's web-01 is the outlet's: checked once"
    assert any("outlet" in p for p in problems) and any("nope" in p for p in problems)
    pcs, _ = postconditions_for({**RUN, "dag_id": "elsewhere"}, rules, lineage_default=True)
    assert [p.kind for p in pcs] == ["tasks_healthy", "lineage"]


def test_broken_rules_file_names_every_problem(tmp_path):
    path = tmp_path / "postconditions.yaml"
    path.write_text("- dag_id: '('\n- vms: []\n- dag_id: ok\n  vms: [{name: a, color: red}]\n")
    with pytest.raises(PostconditionFileError) as err:
        load_postcondition_rules(path)
    text = str(err.value)
    assert "rule 0: dag_id '(' is not a valid pattern" in text
    assert "rule 1: dag_id: Field required" in text
    assert "rule 2: vms.0.color: Extra inputs are not permitted" in text
    path.write_text("- dag_id: 'provision_.*'\n  vms: [{name: '{{ params.vm_name }}'}]\n  lineage: false\n")
    (rule,) = load_postcondition_rules(path)
    assert rule.vms[0].conn_id == "libvirt_default" and rule.lineage is False


def test_a_violation_fires_once_over_three_scans_and_clears_after_the_fix():
    from airflow_faultcat.core.shadow import check_key, transitions

    pc = _vm("web-01")
    broken, fixed = _snapshot(**{"web-01": "shutoff"}), _snapshot(**{"web-01": "running"})
    open_keys: set[str] = set()
    fired_total = 0
    for snapshot in (broken, broken, None, broken, fixed):
        result = check_vm(pc, snapshot, "libvirt down")
        step = transitions(open_keys, [result])
        fired_total += len(step.fired)
        open_keys |= {check_key(r) for r in step.fired}
        open_keys -= set(step.cleared)
        if snapshot is None:
            assert step.undecided == [check_key(result)], "unavailable neither confirms nor clears"
    assert fired_total == 1
    assert open_keys == set()


def test_check_vms_reads_each_host_once_and_an_unreadable_host_is_unavailable():
    from airflow_faultcat.core.shadow import check_vms

    reads = []

    def snapshot_of(conn_id: str) -> DomainSnapshot:
        reads.append(conn_id)
        if conn_id == "kvm2":
            raise ConnectionError("Failed to connect socket to '/var/run/libvirt/libvirt-sock'")
        return _snapshot(**{"web-01": "running", "web-02": "shutoff"})

    pcs = [_vm("web-01"), _vm("web-02"), _vm("web-03"), _vm("web-01").model_copy(update={"conn_id": "kvm2"})]
    sources: dict[str, str] = {}
    results = check_vms(pcs, snapshot_of, sources)
    assert sorted(reads) == sorted({pc.conn_id for pc in pcs})
    assert [(r.status, r.violation) for r in results] == [
        ("PASS", None),
        ("VIOLATION", "vm_not_running"),
        ("VIOLATION", "vm_not_created"),
        ("UNAVAILABLE", None),
    ]
    assert sources[f"libvirt:{pcs[0].conn_id}"] == "ok"
    assert "libvirt-sock" in sources["libvirt:kvm2"] and "libvirt-sock" in results[3].reason
