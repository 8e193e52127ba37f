"""Production shape: no recovery step relies on a file another step left on its worker's disk.

``it_recovery_fresh_host`` deletes the failure's evidence folder after ``collect`` and after
``publish`` (a pod per task, or another Celery worker). The failure's cause is only in its log.
"""

from __future__ import annotations

from pathlib import Path

from airflow_faultcat.failures import recovery_run_id
from tests.integration.helpers import api_hook, trigger, wait_run

FRESH = "it_recovery_fresh_host"


def _xcom(api, run_id: str, task_id: str) -> dict:
    path = f"/dags/{FRESH}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    response = api.get(path, params={"deserialize": "true"})
    assert response.status_code == 200, (task_id, response.text[:300])
    return response.json()["value"]


def _task_log(hook, run_id: str, task_id: str) -> str:
    return "\n".join(hook.iter_task_log(FRESH, run_id, task_id, 1))


def test_steps_on_a_fresh_worker_read_the_log_and_record_the_outcome(stack, api, stack_env):
    hook = api_hook()
    try:
        run_id = trigger(hook, "it_log_only")
        assert wait_run(hook, "it_log_only", run_id)["state"] == "failed"
        recovery = recovery_run_id("it_log_only", run_id, "load", -1, 1)
        final = wait_run(hook, FRESH, recovery, timeout=420)
        states = {t["task_id"]: t["state"] for t in hook.list_task_instances(FRESH, recovery)}
        assert final["state"] == "success", states

        collected = _xcom(api, recovery, "collect")
        assert collected["log_lines"] > 0
        # The evidence folder is gone: what diagnose read came through the REST API.
        assert not Path(collected["evidence_folder"].removeprefix("file://")).exists()
        # The step that reads the log (explore; diagnose takes its diagnosis) read it again.
        reader = "explore" if "explore" in states else "diagnose"
        assert "through the REST API" in _task_log(hook, recovery, reader)

        diagnosis = _xcom(api, recovery, "diagnose")
        assert diagnosis["root_cause"] == "CREDENTIAL", diagnosis.get("diagnostics_gap")
        cited = [e for f in diagnosis["findings"][:1] for e in f["evidence"] if e["source"] == "log"]
        assert cited and cited[0]["line"], diagnosis["findings"][0]
        assert "could not be read" not in (diagnosis.get("diagnostics_gap") or "")

        # The outcome reached the note although bundle.json was deleted after publish.
        ti = api.get(f"/dags/it_log_only/dagRuns/{run_id}/taskInstances/load").json()
        assert ti["note"].startswith("faultcat: CREDENTIAL"), ti["note"]
        assert "\nRecovery: " in ti["note"], ti["note"]
        # ...and the bundle copy that later steps read (Redis) has it too.
        from airflow_faultcat.core.models import FailureContext
        from airflow_faultcat.hooks.state import FaultcatStateHook

        failure = FailureContext.model_validate(collected["context"])
        kept = FaultcatStateHook(stack_env.get("AIRFLOW__FAULTCAT__REDIS_CONN_ID", "redis_default"))
        bundle, location = kept.get_bundle(failure)
        assert bundle["outcome"] and bundle["outcome"]["status"], bundle.get("outcome")
        assert bundle["diagnosis"]["root_cause"] == "CREDENTIAL"
        assert location.endswith("bundle.json") or " on " in location
    finally:
        hook.close()
