"""The REST API calls a shadow-error scan makes, against the real API server: batch lists, tasks."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_successful_dag_runs_come_in_pages_with_their_task_instances(example_rows, stack_env):
    from airflow_faultcat.hooks.airflow_api import AirflowApiHook

    hook = AirflowApiHook(timeout=30)
    pages = list(hook.iter_dag_runs_batch(states=["success"], page_limit=5))
    runs = [r for page in pages for r in page]
    assert len(pages) >= 2 and all(len(p) <= 5 for p in pages), "paged by the API, not one call per DagRun"
    assert {r["state"] for r in runs} == {"success"}
    assert len({(r["dag_id"], r["dag_run_id"]) for r in runs}) == len(runs), "no DagRun twice"
    ends = [r["end_date"] for r in runs]
    assert ends == sorted(ends)
    flaky = next(r for r in runs if r["dag_id"] == "example_flaky_retry")
    later = list(hook.iter_dag_runs_batch(states=["success"], end_date_gte=flaky["end_date"]))
    assert all(r["end_date"] >= flaky["end_date"] for page in later for r in page)
    # The TaskInstances of many DagRuns in one paged call.
    ids = [r["dag_run_id"] for r in runs[:10]]
    tis = [t for page in hook.iter_task_instances_batch(ids, page_limit=7) for t in page]
    assert {t["dag_run_id"] for t in tis} <= set(ids) and len(tis) >= len(ids)
    tasks = hook.list_tasks("faultcat_recovery")
    assert set(tasks["approve"]["downstream_task_ids"]) == {"escalate", "retry"}
    assert tasks["verify"]["trigger_rule"] == "all_success"
