"""End to end on a real Airflow 3 stack: failure -> faultcat_recovery -> diagnosis, bundle, note."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml

from airflow_faultcat.core.models import FailureContext, json_schema
from tests.standins.fixtures import GITHUB_REPOSITORY

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.stem for p in (ROOT / "dags").glob("example_*.py"))
SECRET = "hunter2-example-secret-0451"


def _row(rows, dag_id):
    found = [r for r in rows if r.dag_id == dag_id]
    assert found, f"no recovery run was found for {dag_id}"
    return found[0]


def _local(url: str) -> Path:
    return Path(url.removeprefix("file://"))


@pytest.mark.parametrize("dag_id", EXAMPLES)
def test_example_failure_is_diagnosed_end_to_end(example_rows, api, dag_id):
    row = _row(example_rows, dag_id)
    assert row.recovery_state == "success", row
    assert row.root_cause == row.expected, f"{dag_id}: {row.root_cause} != {row.expected} ({row.evidence})"
    assert row.evidence, "the diagnosis cites no evidence line"
    # The note on the TaskInstance names the diagnosis, the outcome and the bundle of its last try.
    last = [r for r in example_rows if r.dag_id == dag_id][-1]
    ti = api.get(f"/dags/{dag_id}/dagRuns/{row.run_id}/taskInstances/{row.task_id}").json()
    assert ti["note"].startswith(f"faultcat: {row.expected}")
    assert last.bundle in ti["note"]
    assert "\nRecovery: " in ti["note"]
    # The bundle is schema-valid, as JSON and as YAML.
    bundle = json.loads(_local(row.bundle).read_text())
    jsonschema.validate(bundle, json_schema("evidence-bundle"))
    assert yaml.safe_load(_local(row.bundle).with_suffix(".yaml").read_text()) == bundle
    assert bundle["findings"] and bundle["evidence"] and bundle["suggestions"]
    assert bundle["diagnosis"]["root_cause"] == row.expected
    assert bundle["context"]["dag_id"] == dag_id


@pytest.mark.parametrize("dag_id", EXAMPLES)
def test_explore_confirms_the_right_finding_and_rules_out_an_alternative(example_rows, dag_id):
    # Each failed try of each example: the probes raised the right finding's confidence and
    # ruled out at least one alternative, within the explore step's 10 s ceiling.
    rows = [r for r in example_rows if r.dag_id == dag_id]
    assert rows, f"no recovery run was found for {dag_id}"
    for row in rows:
        explored = row.explored
        assert explored and not explored.get("error"), explored
        assert explored["seconds"] < 10 and not explored.get("ceiling_note"), explored
        probes = [(p["spec"]["kind"], p["status"], p["output"][:80]) for p in explored["probes"]]
        top = row.diagnosis["findings"][0]
        assert top["category"] == row.expected, (row.try_number, probes)
        reason = top["confidence_reason"]
        assert "confirmed now by" in reason, (row.try_number, reason, probes)
        ruled = [r for r in top["alternatives_ruled_out"] if r["reason"].startswith("ruled out by probe")]
        assert ruled, (row.try_number, probes)


def test_failed_task_runs_end_as_expected(example_rows):
    states = {r.dag_id: r.dag_run_state for r in example_rows}
    assert states.pop("example_flaky_retry") == "success"  # failed once, then succeeded
    assert set(states.values()) == {"failed"}


def test_flaky_first_try_is_diagnosed_once(example_rows):
    rows = [r for r in example_rows if r.dag_id == "example_flaky_retry"]
    assert [(r.try_number, r.root_cause) for r in rows] == [(1, "NETWORK")]


def test_listener_diagnoses_a_dag_without_callback(example_rows):
    row = _row(example_rows, "example_listener")
    assert row.diagnosis["context"]["extra"] == {"captured_by": "listener"}


def test_timings_are_recorded(example_rows):
    # The figures themselves are measured by bench/recovery.py; here: every failure has them.
    assert all(r.latency_ms is not None for r in example_rows)
    assert all(r.notifier_ms is not None for r in example_rows)


def _seeded() -> dict[str, str]:
    sys.path.insert(0, str(ROOT / "dags"))
    try:
        import example_leaky_secrets
    finally:
        sys.path.pop(0)
    import base64

    from tests.integration.conftest import KNOWN_SECRET

    seeded = {**example_leaky_secrets.SEEDED, "example": SECRET, "known_value": KNOWN_SECRET}
    # Docker's config holds base64("user:password"): that is the text that must not leave.
    seeded["docker"] = base64.b64encode(f"ci:{seeded['docker']}".encode()).decode()
    return seeded


def _leaks(text: str, seeded: dict[str, str]) -> list[str]:
    """The forms whose secret (raw, URL-encoded or JSON-escaped) is in ``text``."""
    from urllib.parse import quote

    return [
        form
        for form, value in seeded.items()
        if any(v in text for v in {value, quote(value, safe=""), json.dumps(value)[1:-1]})
    ]


def test_no_secret_leaves_in_conf_xcom_bundle_note_or_escalation(
    example_rows, api, github_standin, slack_standin
):
    """The task logs a secret in each form people paste and fails with one in its message; none
    reaches the recovery DagRun's conf, any XCom of it, the bundle, the note, GitHub or Slack."""
    row = _row(example_rows, "example_leaky_secrets")
    seeded = _seeded()
    log = api.get(
        f"/dags/example_leaky_secrets/dagRuns/{row.run_id}/taskInstances/{row.task_id}/logs/1",
        headers={"Accept": "application/json"},
    ).text
    missing = [form for form, value in seeded.items() if form != "known_value" and value not in log]
    assert not missing, f"the example did not seed {missing} into its log"
    from urllib.parse import quote

    assert quote(seeded["known_value"], safe="") in log, "the known value is in the log only URL-encoded"
    outputs: dict[str, str] = {}
    run = api.get(f"/dags/faultcat_recovery/dagRuns/{row.recovery_run_id}").json()
    outputs["recovery DagRun conf"] = json.dumps(run["conf"])
    tis = api.get(f"/dags/faultcat_recovery/dagRuns/{row.recovery_run_id}/taskInstances").json()
    for ti in tis["task_instances"]:
        base = f"/dags/faultcat_recovery/dagRuns/{row.recovery_run_id}/taskInstances/{ti['task_id']}"
        entries = api.get(f"{base}/xcomEntries").json().get("xcom_entries", [])
        for entry in entries:
            value = api.get(f"{base}/xcomEntries/{entry['key']}", params={"map_index": entry["map_index"]})
            outputs[f"XCom {ti['task_id']}.{entry['key']}"] = value.text
    folder = _local(row.bundle).parent
    for name in ("bundle.json", "bundle.yaml"):
        outputs[name] = (folder / name).read_text()
    failed = f"/dags/example_leaky_secrets/dagRuns/{row.run_id}/taskInstances/{row.task_id}"
    outputs["note"] = api.get(failed).json()["note"] or ""
    issues = [i for i in github_standin.issues(GITHUB_REPOSITORY) if "in example_leaky_secrets." in i.title]
    assert issues, "the failure was not escalated to GitHub"
    for issue in issues:
        texts = [issue.title, issue.body or "", *(c.body for c in issue.comments)]
        outputs[f"GitHub #{issue.number}"] = "\n".join(texts)
    messages = [m for m in slack_standin.messages if "example_leaky_secrets." in m.get("text", "")]
    assert messages, "the failure was not escalated to Slack"
    outputs["Slack"] = json.dumps(messages)
    assert any(key.startswith("XCom collect") for key in outputs)
    leaked = {where: _leaks(text, seeded) for where, text in outputs.items() if _leaks(text, seeded)}
    assert not leaked
    assert row.root_cause == "NETWORK"


def test_a_hostile_log_is_read_in_bounded_time_and_leaks_nothing(example_rows, api):
    """A 4 MB line of a repeated phrase, JSON nested 5,000 deep, NULs, 20,000 traceback headers, a
    retry loop and a 1 MB password: each recovery task ends within two minutes, the diagnosis
    is the real one, and no part of the password reaches the note, the bundle or an XCom."""
    from datetime import datetime

    sys.path.insert(0, str(ROOT / "dags"))
    try:
        from example_hostile_log import PASSWORD
    finally:
        sys.path.pop(0)
    row = _row(example_rows, "example_hostile_log")
    assert (row.recovery_state, row.root_cause) == ("success", "NETWORK"), row
    tis = api.get(f"/dags/faultcat_recovery/dagRuns/{row.recovery_run_id}/taskInstances").json()
    seconds = {
        ti["task_id"]: (datetime.fromisoformat(ti["end_date"]) - datetime.fromisoformat(ti["start_date"]))
        .total_seconds()
        for ti in tis["task_instances"]
        if ti["start_date"] and ti["end_date"]
    }
    assert seconds and max(seconds.values()) < 120, seconds
    outputs = [(_local(row.bundle).parent / "bundle.json").read_text()]
    failed = f"/dags/example_hostile_log/dagRuns/{row.run_id}/taskInstances/{row.task_id}"
    outputs.append(api.get(failed).json()["note"] or "")
    for ti in tis["task_instances"]:
        base = f"/dags/faultcat_recovery/dagRuns/{row.recovery_run_id}/taskInstances/{ti['task_id']}"
        for entry in api.get(f"{base}/xcomEntries").json().get("xcom_entries", []):
            value = api.get(f"{base}/xcomEntries/{entry['key']}", params={"map_index": entry["map_index"]})
            outputs.append(value.text)
    pieces = {PASSWORD[i : i + 16] for i in range(0, len(PASSWORD) - 16, 65_536)}
    assert not [p for p in pieces if any(p in text for text in outputs)]


def test_a_repeated_trigger_makes_no_second_run(example_rows, stack_env):
    from airflow_faultcat.hooks.airflow_api import AirflowApiHook

    row = _row(example_rows, "example_disk_full")
    hook = AirflowApiHook()
    conf = {"dag_id": row.dag_id, "run_id": row.run_id, "task_id": row.task_id, "try_number": 1}
    assert hook.trigger_dag_run("faultcat_recovery", row.recovery_run_id, conf) is None
    runs = [
        r
        for r in hook.list_dag_runs("faultcat_recovery", limit=500)
        if (r.get("conf") or {}).get("dag_id") == row.dag_id and r["conf"].get("run_id") == row.run_id
    ]
    assert len(runs) == 1


def _wait_for_run(hook, dag_id, run_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            run = hook.get_dag_run(dag_id, run_id)
        except Exception:
            run = {}
        if run.get("state") in ("success", "failed"):
            return run
        time.sleep(1)
    raise AssertionError(f"{dag_id} {run_id} did not finish")


def test_api_down_spools_then_replays(example_rows, stack, stack_env, monkeypatch):
    from airflow_faultcat import spool
    from airflow_faultcat.failures import dispatch, recovery_run_id
    from airflow_faultcat.hooks.airflow_api import AirflowApiHook

    row = _row(example_rows, "example_missing_config")
    # The API "goes down" for the notifier: its connection points at a closed loopback port.
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_API_DOWN", "faultcat-api://faultcat:x@127.0.0.1:9")
    failure = FailureContext(
        dag_id=row.dag_id,
        run_id=row.run_id,
        task_id=row.task_id,
        map_index=-1,
        try_number=7,
        exception_type="FileNotFoundError",
        exception_message="[Errno 2] No such file or directory: '/etc/x.yaml'",
    )
    started = time.monotonic()
    outcome = dispatch(failure, recovery_dag_id="faultcat_recovery", conn_id="faultcat_api_down")
    assert outcome == "spooled"
    assert time.monotonic() - started < 2.5
    run_id = recovery_run_id(row.dag_id, row.run_id, row.task_id, -1, 7)
    # Spooled where every worker reads it (Redis), not on this host's disk.
    assert [e.dag_run_id for e in spool.pending_redis()] == [run_id]
    assert spool.pending() == []
    # Back up: `faultcat spool replay` sends it, and the recovery run diagnoses it.
    replay = subprocess.run(
        [sys.executable, "-m", "airflow_faultcat.cli", "spool", "replay"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert replay.returncode == 0, replay.stderr
    assert f"sent {run_id}" in replay.stdout
    assert spool.pending() == [] and spool.pending_redis() == []
    run = _wait_for_run(AirflowApiHook(), "faultcat_recovery", run_id)
    assert run["state"] == "success"


def test_recovery_run_drains_the_spool(example_rows, stack_env, monkeypatch):
    from airflow_faultcat import spool
    from airflow_faultcat.failures import recovery_run_id
    from airflow_faultcat.hooks.airflow_api import AirflowApiHook

    row = _row(example_rows, "example_dns_failure")
    run_id = recovery_run_id(row.dag_id, row.run_id, row.task_id, -1, 9)
    conf = {
        "dag_id": row.dag_id,
        "run_id": row.run_id,
        "task_id": row.task_id,
        "try_number": 9,
        "exception_type": "socket.gaierror",
        "exception_message": "[Errno -2] Name or service not known",
    }
    spool.write(spool.SpoolEntry("faultcat_recovery", run_id, conf))
    hook = AirflowApiHook()
    # Any recovery run drains the spool in its collect task.
    trigger_id = f"manual__drain_{int(time.time())}"
    trigger_conf = {"dag_id": row.dag_id, "run_id": row.run_id, "task_id": row.task_id, "try_number": 1}
    hook.trigger_dag_run("faultcat_recovery", trigger_id, trigger_conf)
    assert _wait_for_run(hook, "faultcat_recovery", trigger_id)["state"] == "success"
    assert spool.pending() == []
    assert _wait_for_run(hook, "faultcat_recovery", run_id)["state"] == "success"


def test_malformed_manual_trigger_fails_cleanly(example_rows, api, stack_env):
    from airflow_faultcat.hooks.airflow_api import AirflowApiHook

    # A wrong type is refused by the DAG's Params at trigger time, naming the field.
    bad_type = api.post(
        "/dags/faultcat_recovery/dagRuns",
        json={
            "dag_run_id": "manual__bad_type",
            "logical_date": None,
            "conf": {"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": "many"},
        },
    )
    assert bad_type.status_code == 400, bad_type.text
    assert "try_number" in bad_type.text or "many" in bad_type.text
    # A typo passes the form but fails `collect` with a message naming the field; nothing else runs.
    hook = AirflowApiHook()
    run_id = f"manual__typo_{int(time.time())}"
    hook.trigger_dag_run(
        "faultcat_recovery", run_id, {"dag_id": "d", "run_id": "r", "taks_id": "t", "try_number": 1}
    )
    assert _wait_for_run(hook, "faultcat_recovery", run_id)["state"] == "failed"
    states = {t["task_id"]: t["state"] for t in hook.list_task_instances("faultcat_recovery", run_id)}
    assert states["collect"] == "failed"
    downstream = ("explore", "diagnose", "plan", "publish", "approve", "retry", "verify", "escalate")
    assert {states[t] for t in downstream} == {"upstream_failed"}
    log = "\n".join(hook.iter_task_log("faultcat_recovery", run_id, "collect", 1))
    assert "conf field 'taks_id' is not a FailureContext field" in log
    # The listener skips faultcat's own DAGs: a failed recovery run starts no recovery of itself.
    own = [
        r
        for r in hook.list_dag_runs("faultcat_recovery", limit=500)
        if (r.get("conf") or {}).get("dag_id") == "faultcat_recovery"
    ]
    assert own == []


def test_hook_reads_tries_and_refreshes_its_token(example_rows, stack, stack_env):
    import jwt

    from airflow_faultcat.hooks.airflow_api import AirflowApiHook

    row = _row(example_rows, "example_flaky_retry")
    hook = AirflowApiHook()
    ok, message = hook.test_connection()
    assert ok, message
    tries = hook.get_task_instance_tries(row.dag_id, row.run_id, row.task_id)
    assert [t["try_number"] for t in tries] == [1, 2]
    assert [t["state"] for t in tries] == ["failed", "success"]
    # An expired token (signed with the stack's key): the API answers 401, the hook fetches a new one.
    claims = jwt.decode(hook._token, options={"verify_signature": False})
    claims.update(iat=int(time.time()) - 120, nbf=int(time.time()) - 120, exp=int(time.time()) - 60)
    hook._token = jwt.encode(
        claims, stack.state["jwt_secret"], algorithm="HS512", headers={"kid": "not-used"}
    )
    assert hook.get_task_instance(row.dag_id, row.run_id, row.task_id)["state"] == "success"
    assert jwt.decode(hook._token, options={"verify_signature": False})["exp"] > time.time()
