"""Carry out a recovery plan's retry (or custom handler) in the ``faultcat_recovery`` DAG."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from airflow_faultcat.core.models import Diagnosis, FailureContext, RecoveryAction, RecoveryOutcome
from airflow_faultcat.exceptions import FaultcatError
from airflow_faultcat.operators.recovery import load_planned, record_outcome, wait_then


class RetryFailedTaskOperator(BaseOperator):
    """Retry the failed TaskInstance as the plan decided: wait, then clear it.

    ``WAIT_AND_RETRY`` first waits the option's ``wait_seconds`` (backoff with jitter; a wait of a
    minute or more is deferred, so no worker slot is held), then ``RETRY`` clears the exact
    TaskInstance (dag_run_id, task_id, map_index) through
    ``POST /dags/{dag_id}/clearTaskInstances`` with ``dry_run: false`` and ``only_failed: true``;
    a TaskInstance that is no longer failed (someone cleared it already) is left alone. ``CUSTOM``
    runs the registered handler the policy allowed.

    :param collected: output of the collect task (templated / XComArg).
    :param diagnosis: output of the diagnose task.
    :param planned: output of :class:`~airflow_faultcat.operators.recovery.PlanRecoveryOperator`.
    :param faultcat_api_conn_id: the ``faultcat_api`` connection.
    :param redis_conn_id: the Redis connection (default ``[faultcat] redis_conn_id``).
    :return: ``{"action": str, "cleared": [task ids], "detail": str}``.
    :raises FaultcatError: when the clear or the handler fails (the outcome says so first).
    """

    template_fields: Sequence[str] = ("collected", "diagnosis", "planned")

    def __init__(
        self,
        *,
        collected: Any = None,
        diagnosis: Any = None,
        planned: Any = None,
        faultcat_api_conn_id: str = "faultcat_api_default",
        redis_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.collected = collected
        self.diagnosis = diagnosis
        self.planned = planned
        self.faultcat_api_conn_id = faultcat_api_conn_id
        self.redis_conn_id = redis_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        plan, _ = load_planned(self.planned)
        option = plan.options[plan.decision.option]
        if option.action is RecoveryAction.WAIT_AND_RETRY and option.wait_seconds:
            self.log.info("faultcat: waiting %.1f s before the retry (backoff)", option.wait_seconds)
            wait_then(self, option.wait_seconds, "execute_complete")
        return self._act(context)

    def execute_complete(self, context: Any, event: Any = None) -> dict[str, Any]:
        return self._act(context)

    def _act(self, context: Any) -> dict[str, Any]:
        from airflow_faultcat.hooks.airflow_api import AirflowApiError, AirflowApiHook

        plan, _ = load_planned(self.planned)
        decision = plan.decision
        option = plan.options[decision.option]
        failure = FailureContext.model_validate(self.collected["context"])
        rule = decision.rule
        try:
            if option.action is RecoveryAction.CUSTOM:
                result = self._run_handler(option.handler, failure, context)
                cleared = [failure.task_id] if result.get("cleared") else []
                detail = f"handler {option.handler!r}: {result.get('detail', 'done')}"
            else:
                hook = AirflowApiHook(self.faultcat_api_conn_id, timeout=30)
                try:
                    tis = hook.clear_task_instance(
                        failure.dag_id, failure.run_id, failure.task_id, failure.map_index
                    )
                finally:
                    hook.close()
                cleared = sorted({f"{t.get('task_id')}[{t.get('map_index', -1)}]" for t in tis})
                detail = (
                    f"cleared {', '.join(cleared)} (try {failure.try_number} failed)"
                    if cleared
                    else "nothing to clear: the TaskInstance is no longer failed"
                )
        except (AirflowApiError, FaultcatError) as exc:
            record_outcome(
                collected=self.collected,
                outcome=RecoveryOutcome(status="failed", action=option.action, rule=rule, detail=str(exc)),
                faultcat_api_conn_id=self.faultcat_api_conn_id,
                redis_conn_id=self.redis_conn_id,
                log=self.log,
            )
            raise FaultcatError(f"{option.action.value} of {failure.task_id} failed: {exc}") from exc
        record_outcome(
            collected=self.collected,
            outcome=RecoveryOutcome(
                status="retried"
                if cleared
                else ("handled" if option.action is RecoveryAction.CUSTOM else "skipped"),
                action=option.action,
                rule=rule,
                detail=detail,
            ),
            faultcat_api_conn_id=self.faultcat_api_conn_id,
            redis_conn_id=self.redis_conn_id,
            log=self.log,
        )
        return {"action": option.action.value, "cleared": cleared, "detail": detail}

    def _run_handler(self, name: str | None, failure: FailureContext, context: Any) -> dict[str, Any]:
        from airflow_faultcat.core.handlers import load_handlers

        handlers, _ = load_handlers()
        if name not in handlers:
            raise FaultcatError(f"recovery handler {name!r} is not installed")
        _, policy = load_planned(self.planned)
        if name not in policy.allowed_handlers:
            raise FaultcatError(f"recovery handler {name!r} is not allowed by the policy")
        try:
            result = handlers[name].run(failure, Diagnosis.model_validate(self.diagnosis), context)
        except Exception as exc:  # third-party code: report it as the action's failure
            raise FaultcatError(f"{type(exc).__name__}: {exc}") from exc
        return result if isinstance(result, dict) else {"detail": str(result)}
