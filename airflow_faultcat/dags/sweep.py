"""The ``faultcat_sweep`` DAG: no failed TaskInstance is left without a diagnosis."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG

from airflow_faultcat import conf
from airflow_faultcat.operators.sweep import SweepFailuresOperator

DOC = """
### faultcat_sweep

Every few minutes: the TaskInstances that failed since the last sweep and have no recovery run
yet (a task killed by SIGKILL or the OOM killer runs no callback; a worker that died; a callback
that could not reach the API) are handed to `faultcat_recovery`, marked `captured_by: sweep`. The
recovery run id is the one the callback and the listener use, so nothing is diagnosed twice. Then
the spool of the worker it runs on is sent. The watermark lives in Redis.
"""


def build_sweep_dag(
    dag_id: str = "faultcat_sweep",
    *,
    schedule: Any = None,
    recovery_dag_id: str | None = None,
    faultcat_api_conn_id: str = "faultcat_api_default",
    redis_conn_id: str | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """Build the sweep DAG: one ``sweep`` task.

    :param dag_id: its id.
    :param schedule: when it runs (default ``[faultcat] sweep_schedule``: every 5 minutes; ``none``
        there: only when triggered).
    :param recovery_dag_id: the DAG failures are handed to (default ``[faultcat] recovery_dag_id``).
    :param faultcat_api_conn_id: the ``faultcat_api`` connection.
    :param redis_conn_id: the Redis connection of the watermark (default ``[faultcat] redis_conn_id``).
    :param dag_kwargs: passed to :class:`~airflow.sdk.DAG`.
    """
    kwargs: dict[str, Any] = {
        "schedule": schedule if schedule is not None else conf.schedule("sweep_schedule"),
        "start_date": datetime(2025, 1, 1, tzinfo=timezone.utc),
        "catchup": False,
        # Two sweeps at once would only race to the same 409s; one is enough.
        "max_active_runs": 1,
        "tags": ["faultcat"],
        "doc_md": DOC,
        "dagrun_timeout": timedelta(minutes=4),
    }
    kwargs.update(dag_kwargs)
    with DAG(dag_id, **kwargs) as dag:
        SweepFailuresOperator(
            task_id="sweep",
            recovery_dag_id=recovery_dag_id,
            faultcat_api_conn_id=faultcat_api_conn_id,
            redis_conn_id=redis_conn_id,
            execution_timeout=timedelta(minutes=3),
        )
    return dag
