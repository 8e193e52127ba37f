"""The ``faultcat_shadow_scan`` DAG: shadow errors in the DagRuns that succeeded since the last scan."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow.sdk import DAG, Param

from airflow_faultcat import conf
from airflow_faultcat.operators.shadow import ShadowScanOperator

DOC = """
### faultcat_shadow_scan

Checks the postconditions of every DagRun that succeeded since the previous scan: the VMs its tasks
declared as `libvirt://<conn_id>/<domain>` outlets (or the postconditions file names) exist and run;
its OpenLineage run is in Marquez and complete (when the OpenLineage provider is enabled); no
TaskInstance failed without a trigger rule or teardown that allows it.

A source that cannot be read is reported as unavailable, never as a violation. A violation alerts
once (the recovery DAG gets a STATE_MISMATCH FailureContext and writes its evidence bundle), is not
alerted again while it lasts, and clears when a later scan sees it fixed. The window and the open
violations live in Redis; a missed schedule is caught up by the next scan. The task log ends with a
summary table.
"""


def build_shadow_scan_dag(
    dag_id: str = "faultcat_shadow_scan",
    *,
    schedule: Any = None,
    faultcat_api_conn_id: str = "faultcat_api_default",
    redis_conn_id: str | None = None,
    marquez_conn_id: str | None = None,
    postconditions_path: str | None = None,
    lineage: bool | None = None,
    settle_seconds: float = 120,
    **dag_kwargs: Any,
) -> DAG:
    """Build the shadow-error scan DAG: one ``scan`` task.

    :param dag_id: its id.
    :param schedule: when it runs (default ``[faultcat] shadow_scan_schedule``: every 15 minutes;
        ``none`` there: only when triggered).
    :param faultcat_api_conn_id: the ``faultcat_api`` connection.
    :param redis_conn_id: the Redis connection (default ``[faultcat] redis_conn_id``).
    :param marquez_conn_id: the Marquez connection (default ``[faultcat] marquez_conn_id``).
    :param postconditions_path: the postconditions YAML (default ``[faultcat] shadow_postconditions``).
    :param lineage: whether lineage is expected (default ``[faultcat] shadow_lineage``).
    :param settle_seconds: DagRuns that ended less than this many seconds ago wait for the next scan.
    :param dag_kwargs: passed to :class:`~airflow.sdk.DAG`.
    """
    if schedule is None:
        schedule = conf.get_str("shadow_scan_schedule")
        schedule = None if schedule.lower() == "none" else schedule
    kwargs: dict[str, Any] = {
        "schedule": schedule,
        "params": {
            "dag_ids": Param(
                [],
                type="array",
                items={"type": "string"},
                title="Dag ids",
                description="Scan only these Dags (empty: all). A scan of some Dags has its own window.",
            ),
            "settle_seconds": Param(
                None,
                type=["null", "number"],
                minimum=0,
                title="Settle seconds",
                description="DagRuns that ended less than this long ago wait for the next scan.",
            ),
        },
        "start_date": datetime(2025, 1, 1, tzinfo=timezone.utc),
        "catchup": False,
        # One scan at a time: two would race for the window and fire the same violation twice.
        "max_active_runs": 1,
        "tags": ["faultcat"],
        "doc_md": DOC,
        "default_args": {"retries": 1},
    }
    kwargs.update(dag_kwargs)
    with DAG(dag_id, **kwargs) as dag:
        ShadowScanOperator(
            task_id="scan",
            faultcat_api_conn_id=faultcat_api_conn_id,
            redis_conn_id=redis_conn_id,
            marquez_conn_id=marquez_conn_id,
            postconditions_path=postconditions_path,
            lineage=lineage,
            settle_seconds=settle_seconds,
        )
    return dag
