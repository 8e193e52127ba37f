"""The ``faultcat_canary`` DAG: Airflow's own health, checked every few minutes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG

from airflow_faultcat import conf
from airflow_faultcat.operators.canary import CanaryOperator

DOC = """
### faultcat_canary

One cycle every few minutes: a snapshot of Airflow's REST API (running and queued TaskInstances and
DagRuns, pools, the scheduler, triggerer and dag-processor heartbeats), faultcat's Redis keys, this
worker's processes, the libvirt domains that `libvirt://` assets expect running and, when
`[faultcat] docker_conn_id` is set, the containers; then every canary invariant over it
(`faultcat canary list` prints them with their runbook hints).

A source that cannot be read is listed in `sources_unavailable` and the invariants that need it are
skipped: never green, never red. A violation is posted to Slack once when it fires and once when it
clears (`[faultcat] slack_channel`); the open ones live in Redis. The task log ends with the cycle
report and its `cycle_duration_ms`. Route the task to the worker you want watched with `queue`.
"""


def build_canary_dag(
    dag_id: str = "faultcat_canary",
    *,
    schedule: Any = None,
    faultcat_api_conn_id: str = "faultcat_api_default",
    redis_conn_id: str | None = None,
    docker_conn_id: str | None = None,
    slack_channel: str | None = None,
    queue: str | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """Build the canary DAG: one ``canary`` task.

    :param dag_id: its id.
    :param schedule: when it runs (default ``[faultcat] canary_schedule``: every 5 minutes;
        ``none`` there: only when triggered).
    :param faultcat_api_conn_id: the ``faultcat_api`` connection.
    :param redis_conn_id: the Redis connection (default ``[faultcat] redis_conn_id``).
    :param docker_conn_id: the container engine (default ``[faultcat] docker_conn_id``).
    :param slack_channel: where alerts go (default ``[faultcat] slack_channel``).
    :param queue: the executor queue of the worker whose processes are watched.
    :param dag_kwargs: passed to :class:`~airflow.sdk.DAG`.
    """
    kwargs: dict[str, Any] = {
        "schedule": schedule if schedule is not None else conf.schedule("canary_schedule"),
        "start_date": datetime(2025, 1, 1, tzinfo=timezone.utc),
        "catchup": False,
        # Two cycles at once would race on the open violations and alert twice.
        "max_active_runs": 1,
        "tags": ["faultcat"],
        "doc_md": DOC,
        # A late cycle is worthless: the next one is minutes away.
        "dagrun_timeout": timedelta(minutes=4),
    }
    kwargs.update(dag_kwargs)
    with DAG(dag_id, **kwargs) as dag:
        extra = {"queue": queue} if queue else {}
        CanaryOperator(
            task_id="canary",
            faultcat_api_conn_id=faultcat_api_conn_id,
            redis_conn_id=redis_conn_id,
            docker_conn_id=docker_conn_id,
            slack_channel=slack_channel,
            execution_timeout=timedelta(minutes=2),
            **extra,
        )
    return dag
