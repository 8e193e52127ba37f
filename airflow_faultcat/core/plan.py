"""Diagnosis -> RecoveryPlan: ranked recovery options, highest first.

A first, simple ranking: transient categories (network, timeout, service dependency) are worth a
wait and a retry; the others need a fix first, and a plain retry of the same input ranks last.
Nothing here executes anything: options carry steps as text.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_faultcat.core.models import (
    Category,
    Diagnosis,
    RecoveryAction,
    RecoveryOption,
    RecoveryPlan,
    Risk,
)

#: Categories whose failures often pass by themselves.
TRANSIENT = frozenset({Category.NETWORK, Category.TIMEOUT, Category.SERVICE_DEPENDENCY})
_RISK_WEIGHT = {Risk.LOW: 1.0, Risk.MEDIUM: 0.8, Risk.HIGH: 0.6}


def plan_recovery(diagnosis: Diagnosis) -> RecoveryPlan:
    """Rank recovery options for ``diagnosis``: by confidence that they fix it, times their safety.

    :param diagnosis: the Diagnosis of one failure.
    :return: the RecoveryPlan, options sorted highest first (ties: the safer one first).
    """
    root = diagnosis.root_cause
    top = diagnosis.findings[0] if diagnosis.findings and root is not Category.UNKNOWN else None
    confidence = diagnosis.confidence
    fix_steps = list(top.remediation) if top else []
    hint = top.recovery_hint if top else ""
    options: list[RecoveryOption] = []
    if root in TRANSIENT:
        options.append(
            RecoveryOption(
                action=RecoveryAction.WAIT_AND_RETRY,
                risk=Risk.LOW,
                confidence=round(0.85 * confidence, 3),
                expected_duration_seconds=300,
                steps=[
                    "Wait about 5 minutes (with jitter) for the dependency to recover.",
                    "Clear the failed TaskInstance.",
                ],
                preconditions=["The task is idempotent (a rerun does not duplicate its effects)."],
                rationale=f"{root.value} failures are often transient: wait before retrying, do not hammer.",
            )
        )
    if root is not Category.UNKNOWN:
        options.append(
            RecoveryOption(
                action=RecoveryAction.MANUAL_FIX,
                risk=Risk.LOW,
                confidence=round((0.55 if root in TRANSIENT else 0.9) * confidence, 3),
                expected_duration_seconds=1800,
                steps=[s for s in [hint, *fix_steps] if s],
                rationale="The diagnosis names a cause a human can fix; read-only checks come first.",
            )
        )
    options.append(
        RecoveryOption(
            action=RecoveryAction.RETRY,
            risk=Risk.MEDIUM,
            confidence=round((0.5 if root in TRANSIENT else 0.1) * max(confidence, 0.2), 3),
            expected_duration_seconds=60,
            steps=["Clear the failed TaskInstance now."],
            preconditions=["The task is idempotent."],
            rationale=(
                "An immediate retry helps only a transient failure."
                if root in TRANSIENT
                else "The same input will most likely fail the same way; retry after a fix."
            ),
        )
    )
    options.append(
        RecoveryOption(
            action=RecoveryAction.ESCALATE,
            risk=Risk.LOW,
            confidence=0.6 if root is Category.UNKNOWN else round(0.4 * (1 - confidence) + 0.2, 3),
            expected_duration_seconds=3600,
            steps=["Hand the evidence bundle to the owning team."],
            rationale=(
                "Nothing in the library explains the failure: a human must look."
                if root is Category.UNKNOWN
                else "If the fix is outside this team's reach, the owners need the evidence."
            ),
        )
    )
    order = {a: i for i, a in enumerate(RecoveryAction)}
    options.sort(key=lambda o: (-(o.confidence * _RISK_WEIGHT[o.risk]), order[o.action]))
    return RecoveryPlan(root_cause=root, options=options, created_at=datetime.now(timezone.utc))


def suggestions(diagnosis: Diagnosis, plan: RecoveryPlan) -> list[str]:
    """What a human should do next, best first: the top finding's hint and steps, then the plan."""
    out: list[str] = []
    if diagnosis.root_cause is not Category.UNKNOWN and diagnosis.findings:
        top = diagnosis.findings[0]
        out.extend(s for s in [top.recovery_hint, *top.remediation] if s)
    elif diagnosis.diagnostics_gap:
        out.append(f"Missing evidence: {diagnosis.diagnostics_gap}")
    if plan.options:
        best = plan.options[0]
        out.append(f"Recovery: {best.action.value} - {best.rationale}")
    return out
