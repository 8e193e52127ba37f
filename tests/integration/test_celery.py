"""faultcat on the CeleryExecutor: two workers that share no disk (each its own mount namespace,
AIRFLOW_HOME and evidence folder; the task logs, the database and the broker shared).

Worker ``w1`` takes the default queue: the failing task and most recovery steps. Worker ``w2``
takes the ``probes`` queue: the explore step (``[faultcat] explore_queue``). So explore always
runs where the collect step's copy of the log is not, and on another host than the failed try.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from airflow_faultcat.core.probes import HOST_LOCAL_KINDS
from airflow_faultcat.failures import recovery_run_id

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from airflow_stack import AirflowStack, local_postgres  # noqa: E402

from tests.integration.conftest import TEST_POLICY  # noqa: E402
from tests.integration.helpers import RECOVERY, trigger, wait_run  # noqa: E402

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def celery_stack(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to give each worker its own disk")
    db_url = local_postgres("faultcat_celery")
    if db_url is None:
        pytest.fail("the CeleryExecutor stack needs the PostgreSQL at 127.0.0.1:5432")
    home = tmp_path_factory.mktemp("celery-home")
    dags = home / "dags"
    dags.mkdir()
    for source in [*sorted((ROOT / "dags").glob("*.py")), *sorted((HERE / "dags").glob("*.py"))]:
        shutil.copy(source, dags / source.name)
    stack = AirflowStack(
        home,
        dags,
        db_url=db_url,
        celery_workers=2,
        celery_queues=["default", "probes"],
        extra_env={
            "AIRFLOW__FAULTCAT__RECOVERY_POLICY": json.dumps(TEST_POLICY),
            "AIRFLOW__FAULTCAT__EXPLORE_QUEUE": "probes",
            "AIRFLOW__FAULTCAT__SHADOW_SCAN_SCHEDULE": "none",
            "AIRFLOW__FAULTCAT__CANARY_SCHEDULE": "none",
            "AIRFLOW__FAULTCAT__SWEEP_SCHEDULE": "none",
            "PYTHONPATH": str(dags),
        },
    )
    stack.start(timeout=300)
    try:
        import demo

        with stack.client() as client:
            demo.wait_for_dags(client, ["it_log_only_default", RECOVERY], timeout=300)
        yield stack
    finally:
        stack.stop()


def _xcom(client, run_id: str, task_id: str) -> dict:
    path = f"/dags/{RECOVERY}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    response = client.get(path, params={"deserialize": "true"})
    assert response.status_code == 200, (task_id, response.text[:300])
    return response.json()["value"]


def test_a_log_only_failure_is_diagnosed_from_its_log_across_workers(celery_stack, monkeypatch):
    for key, value in celery_stack.env().items():
        if key.startswith(("AIRFLOW_CONN_", "AIRFLOW__FAULTCAT__")):
            monkeypatch.setenv(key, value)
    from airflow_faultcat.hooks.airflow_api import AirflowApiHook

    hook = AirflowApiHook(timeout=30)
    with celery_stack.client() as client:
        run_id = trigger(hook, "it_log_only_default")
        assert wait_run(hook, "it_log_only_default", run_id, timeout=300)["state"] == "failed"
        recovery = recovery_run_id("it_log_only_default", run_id, "load", -1, 1)
        final = wait_run(hook, RECOVERY, recovery, timeout=600)
        tis = {t["task_id"]: t for t in hook.list_task_instances(RECOVERY, recovery)}
        assert final["state"] == "success", {k: (t["state"], t.get("hostname")) for k, t in tis.items()}
        failed = hook.get_task_instance("it_log_only_default", run_id, "load")
        assert failed["hostname"] == "w1"
        assert tis["collect"]["hostname"] == "w1" and tis["explore"]["hostname"] == "w2"

        # explore (w2) could not see collect's copy (w1's private disk): it read the API.
        explored = _xcom(client, recovery, "explore")
        assert explored["host"] == "w2"
        diagnosis = _xcom(client, recovery, "diagnose")
        assert diagnosis["root_cause"] == "CREDENTIAL", diagnosis.get("diagnostics_gap")
        top = diagnosis["findings"][0]
        assert any(e["source"] == "log" and e["line"] for e in top["evidence"]), top["evidence"]
        assert "could not be read" not in (diagnosis.get("diagnostics_gap") or "")
        # Every probe names w2; a probe of w2's own state says nothing about w1: never a verdict.
        probe_texts = [
            e["text"] for f in diagnosis["findings"] for e in f["evidence"] if e["source"] == "probe"
        ]
        assert all(text.startswith("[on w2]") for text in probe_texts), probe_texts
        for probe in explored["probes"]:
            if probe["spec"]["kind"] in HOST_LOCAL_KINDS:
                cited = [t for t in probe_texts if probe["call"] in t]
                assert all("-> could_not_run" in t for t in cited), cited

        # The note names the diagnosis and the outcome, recorded on whichever worker ran it.
        ti = client.get(f"/dags/it_log_only_default/dagRuns/{run_id}/taskInstances/load").json()
        assert ti["note"].startswith("faultcat: CREDENTIAL"), ti["note"]
        assert "\nRecovery: " in ti["note"], ti["note"]
    hook.close()


def test_every_example_is_diagnosed_right_from_its_log_on_two_workers(celery_stack):
    import demo

    rows = demo.run_examples(celery_stack, timeout=900)
    assert {r.dag_id for r in rows} == set(demo.examples()), "an example has no recovery run"
    with celery_stack.client() as client:
        for dag_id in {r.dag_id for r in rows}:
            last = [r for r in rows if r.dag_id == dag_id][-1]
            url = f"/dags/{dag_id}/dagRuns/{last.run_id}/taskInstances/{last.task_id}"
            note = client.get(url).json()["note"]
            # The outcome reached the note wherever the steps ran, and the note says the evidence
            # store is one worker's disk (a local evidence_path under the CeleryExecutor).
            assert note.startswith(f"faultcat: {last.expected}") and "\nRecovery: " in note, note
            assert "one worker's disk" in note, note
    for row in rows:
        assert row.recovery_state == "success", row
        assert row.root_cause == row.expected, f"{row.dag_id}: {row.root_cause} != {row.expected}"
        top = row.diagnosis["findings"][0]
        assert any(e["source"] in ("log", "exception", "traceback") for e in top["evidence"]), row.dag_id
        assert "could not be read" not in (row.diagnosis.get("diagnostics_gap") or ""), row.dag_id
        # explore ran on w2, the failed try on w1: its probes are named and host-local ones never count.
        assert row.explored.get("host") == "w2", row.explored.get("error")


def test_a_sigkilled_task_and_a_spooled_failure_are_delivered_by_the_sweep(celery_stack, monkeypatch):
    for key, value in celery_stack.env().items():
        if key.startswith(("AIRFLOW_CONN_", "AIRFLOW__FAULTCAT__")):
            monkeypatch.setenv(key, value)
    from airflow_faultcat import spool
    from airflow_faultcat.core.models import FailureContext
    from airflow_faultcat.failures import dispatch
    from airflow_faultcat.hooks.airflow_api import AirflowApiHook

    hook = AirflowApiHook(timeout=30)
    with celery_stack.client() as client:
        killed_run = trigger(hook, "it_killed")
        assert wait_run(hook, "it_killed", killed_run, timeout=300)["state"] == "failed"
        killed = recovery_run_id("it_killed", killed_run, "crunch", -1, 1)
        # A failure whose callback found the API down (here: a closed port): spooled in Redis,
        # which the sweep drains from whichever worker it runs on.
        monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_API_DOWN", "faultcat-api://faultcat:x@127.0.0.1:9")
        spooled = FailureContext(
            dag_id="it_killed", run_id=killed_run, task_id="crunch", try_number=5, exception_type="OSError"
        )
        assert dispatch(spooled, recovery_dag_id=RECOVERY, conn_id="faultcat_api_down") == "spooled"
        assert spool.pending_redis()

        sweep_run = trigger(hook, "faultcat_sweep", {"settle_seconds": 0})
        assert wait_run(hook, "faultcat_sweep", sweep_run, timeout=300)["state"] == "success"
        swept = client.get(
            f"/dags/faultcat_sweep/dagRuns/{sweep_run}/taskInstances/sweep/xcomEntries/return_value",
            params={"deserialize": "true"},
        ).json()["value"]
        assert killed in swept["triggered"], swept
        spooled_run = recovery_run_id("it_killed", killed_run, "crunch", -1, 5)
        assert spooled_run in swept["spool_sent"], swept
        assert spool.pending_redis() == []
        assert wait_run(hook, RECOVERY, killed, timeout=600)["state"] == "success"
        assert wait_run(hook, RECOVERY, spooled_run, timeout=600)["state"] == "success"
        ti = client.get(f"/dags/it_killed/dagRuns/{killed_run}/taskInstances/crunch").json()
        assert ti["note"].startswith("faultcat: "), ti.get("note")
        runs = [r for r in hook.list_dag_runs(RECOVERY, limit=1000) if r["dag_run_id"] == killed]
        assert len(runs) == 1
    hook.close()


@pytest.mark.parametrize("dag_id", ["faultcat_canary", "faultcat_shadow_scan"])
def test_the_canary_and_the_shadow_scan_run_on_a_worker(celery_stack, monkeypatch, dag_id):
    for key, value in celery_stack.env().items():
        if key.startswith(("AIRFLOW_CONN_", "AIRFLOW__FAULTCAT__")):
            monkeypatch.setenv(key, value)
    from airflow_faultcat.hooks.airflow_api import AirflowApiHook

    hook = AirflowApiHook(timeout=30)
    with celery_stack.client() as client:
        run_id = trigger(hook, dag_id)
        assert wait_run(hook, dag_id, run_id, timeout=300)["state"] == "success"
        (ti,) = hook.list_task_instances(dag_id, run_id)
        assert ti["hostname"] in ("w1", "w2")
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/xcomEntries/return_value"
        report = client.get(path, params={"deserialize": "true"}).json()["value"]
    hook.close()
    if dag_id == "faultcat_canary":
        # The REST API and Redis are read from the worker; the checks that need them ran.
        assert not {"api", "redis"} & set(report["sources_unavailable"]), report["sources_unavailable"]
        assert report["checks_run"], report
    else:
        assert report["sources"].get("api", "ok") == "ok", report["sources"]
        assert report["dag_runs"] >= 0 and "coverage" in report
