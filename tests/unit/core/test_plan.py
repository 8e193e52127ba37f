from __future__ import annotations

from airflow_faultcat.core.models import Category, Diagnosis, Finding, RecoveryAction, Severity
from airflow_faultcat.core.plan import plan_recovery, suggestions


def _diagnosis(category: Category, confidence: float = 0.9) -> Diagnosis:
    findings = []
    if category is not Category.UNKNOWN:
        findings.append(
            Finding(
                category=category,
                pattern_id="x_001",
                title="t",
                severity=Severity.HIGH,
                confidence=confidence,
                confidence_reason="r",
                score=1.0,
                recovery_hint="Fix the thing.",
                remediation=["Look at it."],
            )
        )
    return Diagnosis(
        root_cause=category,
        confidence=confidence if findings else 0.0,
        confidence_reason="r",
        summary="s",
        findings=findings,
        diagnostics_gap=None if findings else "gap",
    )


def test_transient_failures_wait_and_retry_first():
    plan = plan_recovery(_diagnosis(Category.NETWORK))
    assert plan.options[0].action is RecoveryAction.WAIT_AND_RETRY
    assert plan.options[-1].action is not RecoveryAction.WAIT_AND_RETRY


def test_a_fix_comes_before_a_retry_of_the_same_input():
    plan = plan_recovery(_diagnosis(Category.CONFIGURATION))
    actions = [o.action for o in plan.options]
    assert actions[0] is RecoveryAction.MANUAL_FIX
    assert actions.index(RecoveryAction.RETRY) > actions.index(RecoveryAction.ESCALATE)
    assert plan.options[0].steps == ["Fix the thing.", "Look at it."]


def test_unknown_escalates_first_and_ranking_is_descending():
    plan = plan_recovery(_diagnosis(Category.UNKNOWN))
    assert plan.options[0].action is RecoveryAction.ESCALATE
    for category in Category:
        options = plan_recovery(_diagnosis(category)).options
        scores = [o.confidence * {"low": 1.0, "medium": 0.8, "high": 0.6}[o.risk.value] for o in options]
        assert scores == sorted(scores, reverse=True)


def test_suggestions_lead_with_the_fix():
    diagnosis = _diagnosis(Category.STORAGE)
    out = suggestions(diagnosis, plan_recovery(diagnosis))
    assert out[:2] == ["Fix the thing.", "Look at it."]
    assert out[-1].startswith("Recovery: MANUAL_FIX")
