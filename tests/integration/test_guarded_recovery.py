"""Guarded recovery on the real stack and a real Redis: retries, approval, storms, circuit, fail-safe.

Escalations go to local GitHub and Slack stand-ins (tests/standins) that accept only what the
real APIs document. The test stack's policy (conftest.TEST_POLICY) has short waits and a retry
budget of 1; the Dags in tests/integration/dags set their own policy through tags.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from airflow_faultcat.core.escalation import dedup_key, find_marker
from tests.integration.helpers import RECOVERY, TERMINAL
from tests.integration.helpers import api_hook as _hook
from tests.integration.helpers import bundle_of as _bundle
from tests.integration.helpers import recoveries as _recoveries
from tests.integration.helpers import trigger as _trigger
from tests.integration.helpers import wait_run as _wait_run

pytestmark = pytest.mark.integration


# -- helpers ---------------------------------------------------------------------------------


def _wait_recoveries(hook, dag_id: str, run_id: str, at_least: int = 1, timeout: float = 600) -> list[dict]:
    """Wait until ``at_least`` recovery runs exist for the DagRun and all have ended, stably."""
    deadline = time.monotonic() + timeout
    calm_since, last = None, None
    while time.monotonic() < deadline:
        runs = _recoveries(hook, dag_id, run_id)
        done = len(runs) >= at_least and all(r["state"] in TERMINAL for r in runs)
        key = [(r["dag_run_id"], r["state"]) for r in runs]
        if done and key == last:
            if calm_since and time.monotonic() - calm_since > 8:
                return runs
        else:
            calm_since = time.monotonic() if done else None
        last = key
        time.sleep(2)
    raise AssertionError(
        f"recoveries of {dag_id} {run_id} not done: {[(r['dag_run_id'], r['state']) for r in runs]}"
    )


def _issues_for(github_standin, dag_id: str) -> list:
    from tests.standins.fixtures import GITHUB_REPOSITORY

    return [i for i in github_standin.issues(GITHUB_REPOSITORY) if f"in {dag_id}." in i.title]


def _slack_for(slack_standin, dag_id: str) -> list[dict]:
    return [m for m in slack_standin.messages if f"{dag_id}." in m.get("text", "")]


def _row(rows, dag_id):
    found = [r for r in rows if r.dag_id == dag_id]
    assert found, f"no recovery run was found for {dag_id}"
    return found


# -- the example DAGs (already run by the session fixture) -----------------------------------


def test_flaky_example_is_retried_by_faultcat_and_its_dagrun_succeeds(example_rows, api):
    (row,) = _row(example_rows, "example_flaky_retry")
    assert row.dag_run_state == "success"
    assert row.outcome["status"] == "retry_succeeded", row.outcome
    assert row.outcome["action"] == "WAIT_AND_RETRY"
    assert row.outcome["rule"].startswith("policy: NETWORK retry=auto")
    bundle = json.loads(Path(row.bundle.removeprefix("file://")).read_text())
    assert bundle["plan"]["decision"]["mode"] == "execute"
    assert bundle["plan"]["options"][0]["action"] == "WAIT_AND_RETRY"
    ti = api.get(f"/dags/{row.dag_id}/dagRuns/{row.run_id}/taskInstances/{row.task_id}").json()
    assert ti["try_number"] == 2 and ti["state"] == "success"
    assert "Recovery: retry succeeded - rerun try 2 ended success" in ti["note"]


def test_credential_failure_is_not_retried_and_escalated_once(
    example_rows, api, github_standin, slack_standin
):
    rows = _row(example_rows, "example_http_unauthorized")
    assert len(rows) == 1, "a CREDENTIAL failure is not retried, so there is no second try"
    row = rows[0]
    assert row.outcome["status"] == "escalated", row.outcome
    assert "policy: CREDENTIAL retry=never" in row.outcome["rule"]
    assert row.outcome["escalation"]["github"]["action"] == "opened"
    ti = api.get(f"/dags/{row.dag_id}/dagRuns/{row.run_id}/taskInstances/{row.task_id}").json()
    assert ti["try_number"] == 1
    assert f"GitHub #{row.outcome['escalation']['github']['number']} opened" in ti["note"]
    (issue,) = _issues_for(github_standin, row.dag_id)
    top = row.diagnosis["findings"][0]["pattern_id"]
    assert find_marker(issue.body) == dedup_key(row.dag_id, "CREDENTIAL", top)
    assert issue.comments == [] and issue.state == "open"
    assert len(_slack_for(slack_standin, row.dag_id)) == 1
    assert github_standin.rejected == [] and slack_standin.rejected == []


def test_second_recovery_run_for_the_same_failure_changes_nothing(
    example_rows, api, stack_env, github_standin, slack_standin
):
    (row,) = _row(example_rows, "example_http_unauthorized")
    hook = _hook()
    bundle_before = Path(row.bundle.removeprefix("file://")).read_text()
    note_before = api.get(f"/dags/{row.dag_id}/dagRuns/{row.run_id}/taskInstances/{row.task_id}").json()[
        "note"
    ]
    (issue,) = _issues_for(github_standin, row.dag_id)
    comments_before, slack_before = len(issue.comments), len(slack_standin.messages)
    run_id = f"manual__again_{int(time.time())}"
    conf = {"dag_id": row.dag_id, "run_id": row.run_id, "task_id": row.task_id, "try_number": row.try_number}
    hook.trigger_dag_run(RECOVERY, run_id, conf)
    assert _wait_run(hook, RECOVERY, run_id)["state"] == "success"
    states = {t["task_id"]: t["state"] for t in hook.list_task_instances(RECOVERY, run_id)}
    assert states["retry"] == states["escalate"] == "skipped"
    assert Path(row.bundle.removeprefix("file://")).read_text() == bundle_before
    ti = api.get(f"/dags/{row.dag_id}/dagRuns/{row.run_id}/taskInstances/{row.task_id}").json()
    assert ti["note"] == note_before and ti["try_number"] == 1
    assert len(_issues_for(github_standin, row.dag_id)) == 1
    assert len(issue.comments) == comments_before and len(slack_standin.messages) == slack_before
    log = "\n".join(hook.iter_task_log(RECOVERY, run_id, "publish", 1))
    assert "already handled by recovery run" in log


def test_custom_handler_is_offered_but_blocked_without_the_policy(example_rows):
    (row,) = _row(example_rows, "example_libvirt_unreachable")
    bundle = json.loads(Path(row.bundle.removeprefix("file://")).read_text())
    custom = [o for o in bundle["plan"]["options"] if o["action"] == "CUSTOM"]
    assert [(o["handler"], o["blocked_by"]) for o in custom] == [
        ("it_marker", "policy: handler 'it_marker' is not in allowed_handlers")
    ]


def test_no_secret_reaches_github_or_slack(example_rows, github_standin, slack_standin):
    secret = "hunter2-example-secret-0451"
    for issue in github_standin.issues("octo-org/pipelines"):
        assert secret not in issue.body and secret not in issue.title
        assert all(secret not in c.body for c in issue.comments)
    assert all(secret not in json.dumps(m) for m in slack_standin.messages)


# -- DAGs failed on purpose here ---------------------------------------------------------------


def test_custom_handler_runs_when_the_dag_allows_it(example_rows, stack, stack_env):
    hook = _hook()
    run_id = _trigger(hook, "it_handler")
    assert _wait_run(hook, "it_handler", run_id)["state"] == "failed"
    (recovery,) = _wait_recoveries(hook, "it_handler", run_id)
    bundle = _bundle(recovery["conf"])
    assert bundle["diagnosis"]["root_cause"] == "VIRTUALIZATION"
    assert bundle["plan"]["decision"]["handler"] == "it_marker"
    assert bundle["outcome"]["status"] == "handled"
    assert bundle["outcome"]["detail"] == "handler 'it_marker': wrote it_marker.json"
    marker = json.loads((stack.home / "it_marker.json").read_text())
    assert marker == {"dag_id": "it_handler", "task_id": "list_vms"}


def _scheduler_caught_up(hook, beats: int = 2, timeout: float = 90) -> None:
    """Wait until the scheduler has heartbeaten ``beats`` more times.

    A task paused for input is reported finished by its executor; an answer that re-queues it
    before the scheduler has processed that report races Airflow ("finished with state success,
    but the task instance's state attribute is queued") and fails the task. A person answers
    minutes later; a test must wait for the scheduler's next loops instead.
    """
    seen = {hook.health()["scheduler"]["latest_scheduler_heartbeat"]}
    deadline = time.monotonic() + timeout
    while len(seen) <= beats and time.monotonic() < deadline:
        time.sleep(0.5)
        seen.add(hook.health()["scheduler"]["latest_scheduler_heartbeat"])
    assert len(seen) > beats, f"the scheduler did not heartbeat {beats} times in {timeout} s"


def test_approval_gated_retry_waits_then_runs_after_approval(example_rows, api, stack_env):
    hook = _hook()
    run_id = _trigger(hook, "it_approval")
    assert _wait_run(hook, "it_approval", run_id)["state"] == "failed"
    deadline = time.monotonic() + 180
    recovery, approve = None, {}
    while time.monotonic() < deadline:
        runs = _recoveries(hook, "it_approval", run_id)
        if runs:
            recovery = runs[0]
            try:
                approve = hook.get_task_instance(RECOVERY, recovery["dag_run_id"], "approve")
            except Exception:
                approve = {}
            if approve.get("state") in ("awaiting_input", "deferred"):
                break
        time.sleep(1)
    assert approve.get("state") in ("awaiting_input", "deferred"), approve
    # It waits: nothing was retried, and the note and bundle say why.
    time.sleep(3)
    assert hook.get_task_instance("it_approval", run_id, "ping")["try_number"] == 1
    ti = hook.get_task_instance("it_approval", run_id, "ping")
    assert "Recovery: awaiting approval" in ti["note"] and "retry=approval" in ti["note"]
    detail = hook.get_hitl_detail(RECOVERY, recovery["dag_run_id"], "approve")
    assert detail["options"] == ["Approve", "Reject"] and "it_approval.ping" in detail["subject"]
    # A person answers minutes later; on a busy machine two heartbeats were not always enough
    # for the scheduler to have processed the paused task's exit (see _scheduler_caught_up).
    _scheduler_caught_up(hook, beats=5)
    hook.respond_hitl(RECOVERY, recovery["dag_run_id"], "approve", ["Approve"])
    finished = _wait_run(hook, RECOVERY, recovery["dag_run_id"])
    ran = {t["task_id"]: t["state"] for t in hook.list_task_instances(RECOVERY, recovery["dag_run_id"])}
    assert finished["state"] == "success", ran
    assert _wait_run(hook, "it_approval", run_id)["state"] == "success"
    bundle = _bundle(recovery["conf"])
    assert bundle["outcome"]["status"] == "retry_succeeded"
    states = {t["task_id"]: t["state"] for t in hook.list_task_instances(RECOVERY, recovery["dag_run_id"])}
    assert states["escalate"] == "skipped" and states["retry"] == states["verify"] == "success"


def test_unanswered_approval_escalates_and_a_later_success_closes_the_issue(
    example_rows, stack_env, github_standin
):
    hook = _hook()
    run_id = _trigger(hook, "it_approval_timeout")
    assert _wait_run(hook, "it_approval_timeout", run_id)["state"] == "failed"
    (recovery,) = _wait_recoveries(hook, "it_approval_timeout", run_id, timeout=300)
    bundle = _bundle(recovery["conf"])
    assert "dag params" in bundle["plan"]["policy_sources"]
    assert bundle["plan"]["decision"]["mode"] == "approval"
    assert bundle["outcome"]["status"] == "escalated"
    assert bundle["outcome"]["rule"].startswith("approval timed out by nobody (timeout)")
    states = {t["task_id"]: t["state"] for t in hook.list_task_instances(RECOVERY, recovery["dag_run_id"])}
    assert states["retry"] == "skipped" and states["escalate"] == "success"
    (issue,) = _issues_for(github_standin, "it_approval_timeout")
    assert issue.state == "open"
    # A human fixes it and clears the task: it succeeds, and faultcat closes the issue.
    hook.clear_task_instance("it_approval_timeout", run_id, "ping")
    assert _wait_run(hook, "it_approval_timeout", run_id)["state"] == "success"
    deadline = time.monotonic() + 120
    while issue.state != "closed" and time.monotonic() < deadline:
        time.sleep(1)
    assert issue.state == "closed" and issue.state_reason == "completed"
    assert f"`{run_id}`" in issue.comments[-1].body or run_id in issue.comments[-1].body


def test_mapped_storm_is_one_escalation_with_its_count(
    example_rows, stack_env, github_standin, slack_standin
):
    hook = _hook()
    run_id = _trigger(hook, "it_mapped_storm")
    _wait_run(hook, "it_mapped_storm", run_id, timeout=600)
    runs = _wait_recoveries(hook, "it_mapped_storm", run_id, at_least=50, timeout=1200)
    tis = hook.list_task_instances("it_mapped_storm", run_id, limit=100)
    retried = [t for t in tis if (t.get("try_number") or 0) > 1]
    assert len(retried) <= 3, "the (dag_id, task_id) budget of the Dag's tag is 3"
    assert len({r["conf"]["map_index"] for r in runs}) == 50
    outcomes = [_bundle(r["conf"]).get("outcome") or {} for r in runs]
    statuses = [o.get("status") for o in outcomes]
    assert statuses.count("escalated") == 1, statuses
    assert statuses.count("merged") >= 46, statuses
    (issue,) = _issues_for(github_standin, "it_mapped_storm")
    assert "**TaskInstances with this failure:** 50" in issue.body
    assert "and 30 more" in issue.body
    assert len(_slack_for(slack_standin, "it_mapped_storm")) == 1


def test_circuit_opens_after_repeated_failed_recoveries(example_rows, stack_env):
    from airflow_faultcat.hooks.state import FaultcatStateHook

    hook = _hook()
    run_id = _trigger(hook, "it_circuit")
    runs = _wait_recoveries(hook, "it_circuit", run_id, at_least=4, timeout=600)
    outcomes = [_bundle(r["conf"])["outcome"] for r in runs]
    assert [o["status"] for o in outcomes] == ["retry_failed", "retry_failed", "retry_failed", "escalated"]
    assert "circuit open until" in outcomes[-1]["rule"]
    assert "3 failed recoveries of this Dag" in outcomes[-1]["rule"]
    assert hook.get_task_instance("it_circuit", run_id, "always_down")["try_number"] == 4
    is_open, failures, _ = FaultcatStateHook().circuit("it_circuit")
    assert is_open and failures == 3


def test_redis_down_means_escalation_and_no_retry(example_rows, stack, stack_env, github_standin):
    hook = _hook()
    # Nothing of faultcat's may be running when its store goes away.
    deadline = time.monotonic() + 600
    while any(r["state"] not in TERMINAL for r in hook.list_dag_runs(RECOVERY, limit=1000)):
        assert time.monotonic() < deadline, "recovery runs did not settle"
        time.sleep(2)
    stack.redis.stop()
    try:
        run_id = _trigger(hook, "it_redis_down")
        assert _wait_run(hook, "it_redis_down", run_id)["state"] == "failed"
        (recovery,) = _wait_recoveries(hook, "it_redis_down", run_id)
    finally:
        stack.redis.start()
    bundle = _bundle(recovery["conf"])
    assert bundle["diagnosis"]["root_cause"] == "NETWORK"
    assert bundle["plan"]["guardrails"]["available"] is False
    assert bundle["plan"]["decision"]["mode"] == "escalate"
    assert bundle["plan"]["decision"]["rule"].startswith("guardrails unavailable (Redis")
    assert bundle["outcome"]["status"] == "escalated"
    assert "[guardrails unavailable]" in bundle["outcome"]["rule"]
    assert hook.get_task_instance("it_redis_down", run_id, "ping")["try_number"] == 1
    assert _wait_run(hook, "it_redis_down", run_id)["state"] == "failed"
    assert len(_issues_for(github_standin, "it_redis_down")) == 1
    assert os.environ["AIRFLOW_CONN_REDIS_DEFAULT"] == stack.redis.url
