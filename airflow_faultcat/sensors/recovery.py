"""Verify that a TaskInstance faultcat retried ran again, and how that ended."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseSensorOperator

from airflow_faultcat import conf
from airflow_faultcat.core.models import FailureContext, RecoveryOutcome
from airflow_faultcat.operators.recovery import load_planned, record_outcome

#: States in which a rerun has ended.
_DONE = frozenset({"success", "failed", "upstream_failed", "skipped", "removed"})


class RecoveryRerunSensor(BaseSensorOperator):
    """Wait until the retried TaskInstance has rerun; record success or failure of the recovery.

    Reads ``GET .../taskInstances/{task_id}[/{map_index}]`` every 2 s for up to ``inline_wait``
    seconds, then (in the default ``reschedule`` mode, no worker slot held) again every
    ``poke_interval`` seconds, until a try newer than the failed one has ended. A quick rerun is
    seen within the first poke; the long interval after it keeps clear of an Airflow race in which
    a sensor rescheduled for seconds later is failed as "state changed externally"
    (apache/airflow#66374). A success resets the
    Dag's circuit breaker and closes the GitHub issue escalated for this failure, if any; a failure
    counts towards the circuit breaker. Either way this task succeeds: the recovery did its work,
    its outcome says how the rerun ended, and a rerun that failed gets its own recovery run.

    :param collected: output of the collect task (templated / XComArg).
    :param planned: output of the plan task.
    :param retried: output of the retry task (nothing to verify when it cleared nothing).
    :param faultcat_api_conn_id: the ``faultcat_api`` connection.
    :param redis_conn_id: the Redis connection (default ``[faultcat] redis_conn_id``).
    :param inline_wait: seconds each poke waits for the rerun before giving the slot back.
    """

    template_fields: Sequence[str] = ("collected", "planned", "retried")

    def __init__(
        self,
        *,
        collected: Any = None,
        planned: Any = None,
        retried: Any = None,
        faultcat_api_conn_id: str = "faultcat_api_default",
        redis_conn_id: str | None = None,
        inline_wait: float = 30.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", 60)
        kwargs.setdefault("timeout", 6 * 3600)
        super().__init__(**kwargs)
        self.inline_wait = inline_wait
        self.collected = collected
        self.planned = planned
        self.retried = retried
        self.faultcat_api_conn_id = faultcat_api_conn_id
        self.redis_conn_id = redis_conn_id

    def poke(self, context: Any) -> bool:
        from airflow_faultcat.hooks.airflow_api import AirflowApiError, AirflowApiHook

        if not (self.retried or {}).get("cleared"):
            self.log.info("faultcat: nothing was cleared, nothing to verify")
            return True
        failure = FailureContext.model_validate(self.collected["context"])
        hook = AirflowApiHook(self.faultcat_api_conn_id, timeout=15)
        deadline = time.monotonic() + self.inline_wait
        try:
            while True:
                try:
                    ti = hook.get_task_instance(
                        failure.dag_id, failure.run_id, failure.task_id, failure.map_index
                    )
                except AirflowApiError as exc:
                    self.log.info("faultcat: cannot read %s yet: %s", failure.task_id, exc)
                    ti = {}
                try_number, state = ti.get("try_number") or 0, ti.get("state")
                if try_number > (failure.try_number or 0) and state in _DONE:
                    break
                if time.monotonic() >= deadline:
                    self.log.info("faultcat: %s try %s is %s", failure.task_id, try_number, state)
                    return False
                time.sleep(2)
        finally:
            hook.close()
        self._conclude(failure, try_number, state)
        return True

    def _conclude(self, failure: FailureContext, try_number: int, state: str) -> None:
        from airflow_faultcat.hooks.state import FaultcatStateHook, GuardrailsUnavailable
        from airflow_faultcat.operators.escalate import resolve_escalation

        plan, policy = load_planned(self.planned)
        ok = state == "success"
        opened = False
        try:
            opened = FaultcatStateHook(
                self.redis_conn_id or conf.get_str("redis_conn_id")
            ).record_recovery_result(failure, ok, policy)
        except GuardrailsUnavailable as exc:
            self.log.warning("faultcat: recovery result not counted: %s", exc)
        detail = f"rerun try {try_number} ended {state}"
        escalation: dict[str, Any] = {}
        if ok:
            try:
                closed = resolve_escalation(
                    failure, self.planned["dedup_key"], redis_conn_id=self.redis_conn_id, log=self.log
                )
            except Exception as exc:  # the recovery worked; a closing comment failing must not hide it
                self.log.warning("faultcat: could not resolve the escalation: %s", exc)
                closed = None
            if closed:
                escalation = {"github": closed}
                detail += f"; GitHub #{closed['number']} closed"
        elif opened:
            detail += f"; circuit opened for {failure.dag_id}: no automatic retries for a while"
        record_outcome(
            collected=self.collected,
            outcome=RecoveryOutcome(
                status="retry_succeeded" if ok else "retry_failed",
                action=plan.decision.action if plan.decision else None,
                rule=plan.decision.rule if plan.decision else "",
                detail=detail,
                escalation=escalation,
            ),
            faultcat_api_conn_id=self.faultcat_api_conn_id,
            redis_conn_id=self.redis_conn_id,
            log=self.log,
        )
