"""The sweep step of ``faultcat_sweep``: no failed TaskInstance is left without a recovery run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_faultcat import conf

#: How long the sweep's watermark is kept in Redis (seconds).
WATERMARK_TTL = 30 * 24 * 3600


class SweepFailuresOperator(BaseOperator):
    """Hand over the failed TaskInstances that no callback or listener did, and drain the spool.

    Lists the TaskInstances that failed since the last sweep (watermark in Redis) through the REST
    API and triggers the recovery DAG for each with the deterministic recovery run id (a failure
    handed over already is a 409, nothing more); the conf is marked ``captured_by: sweep``. Then
    sends what the spool on this worker holds. See :mod:`airflow_faultcat.sweep`. A manual run's
    conf may set ``settle_seconds`` (default 60): how long a failure is left to its callback.

    :param recovery_dag_id: the DAG to trigger (default ``[faultcat] recovery_dag_id``).
    :param dag_pattern: a regex of the dag_ids swept (default ``[faultcat] sweep_dag_pattern``).
    :param faultcat_api_conn_id: the ``faultcat_api`` connection.
    :param redis_conn_id: the Redis connection of the watermark (default ``[faultcat] redis_conn_id``).
    :return: ``{"start", "end", "failed", "triggered": [run ids], "already": [run ids], "errors",
        "spool_sent", "spool_kept"}``.
    :raises AirflowApiError: when the TaskInstances cannot be listed (the watermark stays).
    """

    template_fields: Sequence[str] = ("recovery_dag_id", "dag_pattern")

    def __init__(
        self,
        *,
        recovery_dag_id: str | None = None,
        dag_pattern: str | None = None,
        faultcat_api_conn_id: str = "faultcat_api_default",
        redis_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.recovery_dag_id = recovery_dag_id
        self.dag_pattern = dag_pattern
        self.faultcat_api_conn_id = faultcat_api_conn_id
        self.redis_conn_id = redis_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from datetime import timedelta

        from airflow_faultcat import spool
        from airflow_faultcat.core.shadow import parse_time
        from airflow_faultcat.hooks.airflow_api import AirflowApiHook
        from airflow_faultcat.hooks.state import FaultcatStateHook
        from airflow_faultcat.sweep import SETTLE, sweep

        # "Sweep now": a manual run may shorten the wait for callbacks ({"settle_seconds": 0}).
        run_conf = (context.get("dag_run") and context["dag_run"].conf) or {}
        settle = timedelta(seconds=float(run_conf.get("settle_seconds", SETTLE.total_seconds())))
        state = FaultcatStateHook(self.redis_conn_id or conf.get_str("redis_conn_id"))
        api = AirflowApiHook(self.faultcat_api_conn_id, timeout=30)
        try:
            result = sweep(
                api,
                recovery_dag_id=self.recovery_dag_id or conf.recovery_dag_id(),
                claims=state,
                settle=settle,
                watermark=parse_time(state.scan_watermark("sweep")),
                dag_pattern=self.dag_pattern or conf.get_str("sweep_dag_pattern") or ".*",
            )
            if not result.errors:
                state.set_scan_watermark(result.end.isoformat(), WATERMARK_TTL, "sweep")
            sent, kept = spool.replay(api)
        finally:
            api.close()
        self.log.info(
            "faultcat: sweep %s .. %s: %d failed TaskInstances, %d handed over now, %d already, "
            "%d errors; spool: %d sent, %d kept",
            result.start.isoformat(),
            result.end.isoformat(),
            result.failed,
            len(result.triggered),
            len(result.already),
            len(result.errors),
            len(sent),
            len(kept),
        )
        for run_id in result.triggered:
            self.log.info("faultcat: handed over by the sweep: %s", run_id)
        return {
            "start": result.start.isoformat(),
            "end": result.end.isoformat(),
            "failed": result.failed,
            "triggered": result.triggered,
            "already": result.already,
            "errors": result.errors,
            "spool_sent": sent,
            "spool_kept": [run_id for run_id, _ in kept],
        }
