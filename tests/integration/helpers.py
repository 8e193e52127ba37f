"""Helpers the integration tests share: trigger a Dag, wait for a DagRun, find recovery runs and
their evidence bundles."""

from __future__ import annotations

import json
import time
from pathlib import Path

RECOVERY = "faultcat_recovery"
TERMINAL = ("success", "failed")


def api_hook():
    """An AirflowApiHook on the stack (the ``stack_env`` fixture points the connection at it)."""
    from airflow_faultcat.hooks.airflow_api import AirflowApiHook

    return AirflowApiHook(timeout=30)


def trigger(hook, dag_id: str, conf: dict | None = None) -> str:
    """Trigger a DagRun with a fresh run id; return it."""
    run_id = f"it__{dag_id}__{time.time_ns()}"
    hook.trigger_dag_run(dag_id, run_id, conf or {})
    return run_id


def wait_run(hook, dag_id: str, run_id: str, states=TERMINAL, timeout: float = 300) -> dict:
    """Wait until the DagRun is in one of ``states``; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    run: dict = {}
    while time.monotonic() < deadline:
        try:
            run = hook.get_dag_run(dag_id, run_id)
        except Exception:
            run = {}
        if run.get("state") in states:
            return run
        time.sleep(1)
    raise AssertionError(f"{dag_id} {run_id} still {run.get('state')} after {timeout} s")


def recoveries(hook, dag_id: str, run_id: str) -> list[dict]:
    """The recovery runs of a DagRun's failures, by try number and map index."""
    runs = hook.list_dag_runs(RECOVERY, limit=1000)
    mine = [
        r for r in runs if (r.get("conf") or {}).get("dag_id") == dag_id and r["conf"].get("run_id") == run_id
    ]
    return sorted(mine, key=lambda r: (r["conf"].get("try_number") or 0, r["conf"].get("map_index", -1)))


def bundle_of(conf: dict) -> dict:
    """The evidence bundle of the failure a recovery run's conf names."""
    from airflow_faultcat.core.models import FailureContext
    from airflow_faultcat.operators.recovery import evidence_folder

    failure = FailureContext.model_validate(
        {k: conf[k] for k in ("dag_id", "run_id", "task_id", "try_number") if k in conf}
        | {"map_index": conf.get("map_index", -1)}
    )
    path = Path(str(evidence_folder(failure) / "bundle.json").removeprefix("file://"))
    return json.loads(path.read_text())
