"""The approval gate of the ``faultcat_recovery`` DAG, on Airflow's human-in-the-loop operator."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator

from airflow_faultcat.core.models import RecoveryOutcome
from airflow_faultcat.operators.recovery import load_planned, record_outcome


class RecoveryApprovalOperator(ApprovalOperator):
    """Route a recovery plan: execute it, ask a human first, or escalate.

    Placed between the plan and its two outcomes (``execute_task_id`` and ``escalate_task_id``,
    both directly downstream). By the plan's decision:

    - ``execute``: continue to the execute task at once (no human asked);
    - ``approval``: an Airflow human-in-the-loop request (``Approve`` / ``Reject``, answered in the
      UI or through ``PATCH .../hitlDetails``) with the plan as its body; ``Approve`` executes,
      ``Reject`` or no answer within the policy's ``approval_timeout_seconds`` escalates;
    - ``escalate``: continue to the escalate task;
    - ``skip`` (already handled): skip both.

    :param planned: output of :class:`~airflow_faultcat.operators.recovery.PlanRecoveryOperator`.
    :param collected: output of the collect task (for recording "awaiting approval").
    :param execute_task_id: the task that carries the option out.
    :param escalate_task_id: the task that escalates.
    :param faultcat_api_conn_id: the ``faultcat_api`` connection (for the failed TaskInstance's note).
    :param redis_conn_id: the Redis connection (default ``[faultcat] redis_conn_id``).
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "planned", "collected")

    def __init__(
        self,
        *,
        planned: Any = None,
        collected: Any = None,
        execute_task_id: str = "execute",
        escalate_task_id: str = "escalate",
        faultcat_api_conn_id: str = "faultcat_api_default",
        redis_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("subject", "faultcat: approve the recovery of a failed task")
        # No answer in time means Reject: the fallback is an escalation, never an unapproved retry.
        kwargs.setdefault("defaults", [ApprovalOperator.REJECT])
        super().__init__(**kwargs)
        self.planned = planned
        self.collected = collected
        self.execute_task_id = execute_task_id
        self.escalate_task_id = escalate_task_id
        self.faultcat_api_conn_id = faultcat_api_conn_id
        self.redis_conn_id = redis_conn_id

    def execute(self, context: Any) -> Any:
        plan, policy = load_planned(self.planned)
        decision = plan.decision
        mode = decision.mode if decision else "escalate"
        if mode == "approval":
            option = plan.options[decision.option]
            failure = self.collected["context"]
            self.response_timeout = timedelta(seconds=policy.approval_timeout_seconds)
            self.subject = (
                f"faultcat: {option.handler or option.action.value} {failure['dag_id']}.{failure['task_id']}"
                f" (try {failure['try_number']})?"
            )[:250]
            self.body = "\n".join(
                [
                    f"**Root cause:** {plan.root_cause.value}",
                    f"**Why a human:** {decision.rule}",
                    f"**Plan:** {decision.reason}",
                    "",
                    *[f"{i}. {step}" for i, step in enumerate(option.steps, 1)],
                    "",
                    f"Without an answer in {policy.approval_timeout_seconds} s this escalates.",
                ]
            )
            self.log.info("faultcat: waiting for approval: %s", decision.rule)
            return super().execute(context)
        follow = {"execute": [self.execute_task_id], "escalate": [self.escalate_task_id]}.get(mode, [])
        self.log.info("faultcat: %s, no approval needed (%s)", mode, decision.rule if decision else "-")
        return self._route(context, follow, {"approval": "not required", "mode": mode})

    def _route(self, context: Any, follow: list[str], result: dict[str, Any]) -> dict[str, Any]:
        """Push ``result`` as this task's XCom, then skip the outcome not taken.

        On Airflow 3 skipping raises (the task runner applies it), so the return value would be lost.
        """
        context["ti"].xcom_push(key="return_value", value=result)
        self.skip_all_except(context["ti"], follow)
        return result

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        # The parent skips every downstream task on Reject; here Reject routes to escalation.
        answer = HITLOperator.execute_complete(self, context=context, event=event)
        chosen = answer["chosen_options"][0]
        by = answer.get("responded_by_user")
        user = (by or {}).get("name") if isinstance(by, dict) else getattr(by, "name", None)
        approved = chosen == self.APPROVE
        timed_out = not approved and user is None
        plan, _ = load_planned(self.planned)
        result = {
            "approval": "approved" if approved else ("timed_out" if timed_out else "rejected"),
            "by": user,
            "mode": "execute" if approved else "escalate",
        }
        if not approved:
            why = "approval timed out" if timed_out else f"rejected by {user}"
            record_outcome(
                collected=self.collected,
                outcome=RecoveryOutcome(
                    status="rejected",
                    action=plan.decision.action if plan.decision else None,
                    rule=why,
                    detail=f"{why}: escalating instead",
                ),
                faultcat_api_conn_id=self.faultcat_api_conn_id,
                redis_conn_id=self.redis_conn_id,
                log=self.log,
            )
        return self._route(context, [self.execute_task_id if approved else self.escalate_task_id], result)
