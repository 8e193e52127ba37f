"""Failure callback that hands a failed task to the ``faultcat_recovery`` DAG."""

from __future__ import annotations

import time
from typing import Any, Literal

from airflow.sdk import BaseNotifier

from airflow_faultcat.failures import dispatch, failure_context, is_retry


class RecoveryDagNotifier(BaseNotifier):
    """Trigger the recovery DAG with the failure's FailureContext as conf.

    Use it as a task's (or the DAG's ``default_args``) ``on_failure_callback``; for a diagnosis of
    every try, also as ``on_retry_callback`` with ``tries="every"``. The recovery run's
    ``dag_run_id`` is derived from (dag_id, run_id, task_id, map_index, try_number), so a repeated
    callback is a no-op. It never raises into the task and gives up within ``timeout`` seconds;
    when the API server cannot be reached the failure is written to the spool
    (``[faultcat] spool_dir``), which the recovery DAG drains on its next run.

    :param recovery_dag_id: the DAG to trigger (templated).
    :param faultcat_api_conn_id: the ``faultcat_api`` connection to the API server.
    :param tries: ``"last"`` (default): only a failure that is not retried; ``"every"``: every
        failed try (needs ``on_retry_callback`` too, since Airflow calls ``on_failure_callback``
        only for the last one).
    :param extra_conf: more values passed to the recovery DAG as ``extra`` (templated).
    :param timeout: seconds the callback may spend at most (default 2).

    .. seealso:: :func:`send_to_recovery_dag`, the function-style alias.
    """

    template_fields = ("recovery_dag_id", "extra_conf")

    def __init__(
        self,
        *,
        recovery_dag_id: str = "faultcat_recovery",
        faultcat_api_conn_id: str = "faultcat_api_default",
        tries: Literal["last", "every"] = "last",
        extra_conf: dict[str, Any] | None = None,
        timeout: float = 2.0,
    ) -> None:
        super().__init__()
        self.recovery_dag_id = recovery_dag_id
        self.faultcat_api_conn_id = faultcat_api_conn_id
        self.tries = tries
        self.extra_conf = extra_conf
        self.timeout = timeout

    def notify(self, context: dict[str, Any]) -> None:
        """Capture the failure in ``context`` and trigger (or spool) its recovery run."""
        started = time.monotonic()
        try:
            ti = context["ti"]
            if self.tries == "last" and is_retry(ti):
                return
            failure = failure_context(ti, context.get("exception"), extra=self.extra_conf)
            dispatch(
                failure,
                recovery_dag_id=self.recovery_dag_id,
                conn_id=self.faultcat_api_conn_id,
                timeout=self.timeout,
                started=started,
            )
        except Exception:
            # A failure callback must never fail the worker.
            self.log.exception("faultcat: could not hand the failure to %s", self.recovery_dag_id)


send_to_recovery_dag = RecoveryDagNotifier
