"""No failure lost: a task killed by SIGKILL runs no callback; the sweep hands it over, once."""

from __future__ import annotations

from airflow_faultcat.failures import recovery_run_id
from tests.integration.helpers import RECOVERY, api_hook, trigger, wait_run

SWEEP = "faultcat_sweep"


def _xcom(api, dag_id: str, run_id: str, task_id: str) -> dict:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    response = api.get(path, params={"deserialize": "true"})
    assert response.status_code == 200, (task_id, response.text[:300])
    return response.json()["value"]


def _runs_for(hook, run_id: str) -> list[dict]:
    runs = hook.list_dag_runs(RECOVERY, limit=1000)
    return [r for r in runs if (r.get("conf") or {}).get("run_id") == run_id]


def test_a_sigkilled_task_is_swept_into_one_recovery_run(stack, api, stack_env):
    hook = api_hook()
    try:
        run_id = trigger(hook, "it_killed")
        assert wait_run(hook, "it_killed", run_id)["state"] == "failed"
        recovery = recovery_run_id("it_killed", run_id, "crunch", -1, 1)
        # Killed: neither its callback nor the listener handed it over.
        assert _runs_for(hook, run_id) == []

        sweep_run = trigger(hook, SWEEP, {"settle_seconds": 0})
        assert wait_run(hook, SWEEP, sweep_run, timeout=180)["state"] == "success"
        swept = _xcom(api, SWEEP, sweep_run, "sweep")
        final = wait_run(hook, RECOVERY, recovery, timeout=420)
        assert final["state"] == "success"
        assert recovery in swept["triggered"], swept
        assert final["conf"]["extra"]["captured_by"] == "sweep"

        # A second sweep over the same window hands nothing over again.
        again = trigger(hook, SWEEP, {"settle_seconds": 0})
        assert wait_run(hook, SWEEP, again, timeout=180)["state"] == "success"
        assert recovery not in _xcom(api, SWEEP, again, "sweep")["triggered"]
        assert len(_runs_for(hook, run_id)) == 1

        # Diagnosed from what the supervisor recorded of the kill, with the note on the TaskInstance.
        diagnosis = _xcom(api, RECOVERY, recovery, "diagnose")
        assert diagnosis["root_cause"] != "UNKNOWN", diagnosis.get("diagnostics_gap")
        top = diagnosis["findings"][0]
        assert "SIGKILL" in top["title"], top["title"]
        assert any("signal" in e["text"].lower() and e["line"] for e in top["evidence"]), top["evidence"]
        ti = api.get(f"/dags/it_killed/dagRuns/{run_id}/taskInstances/crunch").json()
        assert ti["note"].startswith("faultcat: "), ti.get("note")
    finally:
        hook.close()
