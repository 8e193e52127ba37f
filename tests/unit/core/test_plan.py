"""RecoveryPlanner: the ranking per category and policy, the blocks, and the decision."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from airflow_faultcat.core.handlers import RecoveryHandler
from airflow_faultcat.core.models import (
    Category,
    Diagnosis,
    Finding,
    GuardrailState,
    RecoveryAction,
    RecoveryOption,
    Severity,
)
from airflow_faultcat.core.plan import RecoveryPlanner, backoff_seconds, plan_recovery, suggestions
from airflow_faultcat.core.policy import RecoveryPolicy, override_from_tags, resolve_policy

A = RecoveryAction


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


def _plan(category, confidence=0.9, policy=None, guard=None, handlers=None):
    return RecoveryPlanner(policy, handlers, rng=random.Random(7)).plan(
        _diagnosis(category, confidence), guard
    )


# The ranking each category gets under the default policy, confident diagnosis, fresh budget.
DEFAULT_RANKING = {
    Category.NETWORK: ([A.WAIT_AND_RETRY, A.MANUAL_FIX, A.RETRY, A.ESCALATE], "execute"),
    Category.TIMEOUT: ([A.WAIT_AND_RETRY, A.MANUAL_FIX, A.RETRY, A.ESCALATE], "execute"),
    Category.SERVICE_DEPENDENCY: ([A.WAIT_AND_RETRY, A.MANUAL_FIX, A.RETRY, A.ESCALATE], "execute"),
    Category.RESOURCE_EXHAUSTION: ([A.MANUAL_FIX, A.WAIT_AND_RETRY, A.ESCALATE, A.RETRY], "escalate"),
    Category.VIRTUALIZATION: ([A.MANUAL_FIX, A.RETRY, A.ESCALATE], "escalate"),
    Category.STORAGE: ([A.MANUAL_FIX, A.ESCALATE, A.RETRY], "escalate"),
    Category.STATE_MISMATCH: ([A.MANUAL_FIX, A.ESCALATE, A.RETRY], "escalate"),
    Category.CREDENTIAL: ([A.MANUAL_FIX, A.ESCALATE, A.RETRY], "escalate"),
    Category.CONFIGURATION: ([A.MANUAL_FIX, A.ESCALATE, A.RETRY], "escalate"),
    Category.UNKNOWN: ([A.ESCALATE, A.RETRY], "escalate"),
}


@pytest.mark.parametrize("category", list(Category))
def test_default_ranking_per_category(category):
    plan = _plan(category)
    ranking, mode = DEFAULT_RANKING[category]
    assert [o.action for o in plan.options] == ranking
    assert plan.decision.mode == mode
    allowed = [o.score for o in plan.options if o.blocked_by is None]
    assert allowed == sorted(allowed, reverse=True), "highest first"


def test_transient_retry_runs_without_a_human_and_says_by_which_rule():
    plan = _plan(Category.NETWORK)
    assert plan.decision.action is A.WAIT_AND_RETRY
    assert plan.decision.rule.startswith("policy: NETWORK retry=auto")
    assert plan.options[0].wait_seconds == pytest.approx(30, rel=0.21)


@pytest.mark.parametrize("category", [Category.CREDENTIAL, Category.CONFIGURATION])
def test_credentials_and_config_are_never_retried(category):
    plan = _plan(category)
    retry = next(o for o in plan.options if o.action is A.RETRY)
    assert retry.blocked_by == f"policy: {category.value} retry=never"
    assert plan.options[-1] is retry, "blocked options rank after the allowed ones"
    assert plan.decision.mode == "escalate"
    assert "retry=never" in plan.decision.rule


def test_an_unsure_transient_diagnosis_needs_approval():
    plan = _plan(Category.TIMEOUT, confidence=0.3)
    assert plan.decision.mode == "approval"
    assert "auto_min_confidence" in plan.decision.rule


def test_dag_tag_makes_a_retry_wait_for_approval():
    policy = resolve_policy(tags=["faultcat", "faultcat:retry=approval"])
    plan = _plan(Category.NETWORK, policy=policy)
    assert plan.decision.mode == "approval"
    assert plan.decision.action is A.WAIT_AND_RETRY
    assert plan.decision.rule == "policy: NETWORK retry=approval"
    assert plan.policy_sources == ["defaults", "dag tags"]
    # It asks a human where faultcat would have retried alone; it never loosens "never".
    assert policy.for_category(Category.CREDENTIAL).retry == "never"
    assert policy.for_category(Category.VIRTUALIZATION).retry == "approval"
    loose = resolve_policy(tags=["faultcat:retry=auto"])
    assert loose.for_category(Category.VIRTUALIZATION).retry == "auto"
    assert loose.for_category(Category.CONFIGURATION).retry == "never"
    assert resolve_policy(tags=["faultcat:retry=never"]).for_category(Category.NETWORK).retry == "never"


def test_config_can_allow_what_defaults_forbid_and_params_win_over_tags():
    policy = resolve_policy(
        config={"categories": {"CREDENTIAL": {"retry": "auto"}}},
        tags=["faultcat:retry.CREDENTIAL=approval"],
        params={"categories": {"CREDENTIAL": {"retry": "never"}}},
    )
    assert policy.for_category(Category.CREDENTIAL).retry == "never"
    assert policy.sources == ["defaults", "config", "dag tags", "dag params"]
    policy = resolve_policy(config={"categories": {"CREDENTIAL": {"retry": "auto"}}})
    plan = _plan(Category.CREDENTIAL, policy=policy)
    assert not next(o for o in plan.options if o.action is A.RETRY).blocked_by


def test_budget_exhausted_blocks_retries_and_escalates():
    guard = GuardrailState(retries_used=3, retry_budget=3, budget_window_seconds=3600)
    plan = _plan(Category.NETWORK, guard=guard)
    assert plan.decision.mode == "escalate"
    assert plan.decision.rule.startswith("retry budget: 3 of 3")
    assert {o.action for o in plan.options if o.blocked_by} == {A.WAIT_AND_RETRY, A.RETRY}


def test_open_circuit_blocks_retries():
    until = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    guard = GuardrailState(retry_budget=3, circuit_open=True, circuit_failures=3, circuit_open_until=until)
    plan = _plan(Category.SERVICE_DEPENDENCY, guard=guard)
    assert plan.decision.mode == "escalate"
    assert plan.decision.rule == "circuit open until 2026-01-01T12:00:00Z: 3 failed recoveries of this Dag"


def test_no_guardrails_means_no_automatic_retry():
    guard = GuardrailState(available=False, error="Connection refused", retry_budget=3)
    plan = _plan(Category.NETWORK, guard=guard)
    assert plan.decision.mode == "escalate"
    assert "guardrails unavailable (Connection refused)" in plan.decision.rule


def test_an_already_handled_failure_is_skipped():
    guard = GuardrailState(retry_budget=3, already_handled_by="faultcat__x")
    plan = _plan(Category.NETWORK, guard=guard)
    assert plan.decision.mode == "skip"
    assert "faultcat__x" in plan.decision.reason


def test_backoff_doubles_per_retry_with_bounded_jitter():
    policy = RecoveryPolicy(backoff_base_seconds=10, backoff_max_seconds=60, backoff_jitter=0.2)
    rng = random.Random(1)
    for used, expected in [(0, 10), (1, 20), (2, 40), (3, 60), (10, 60)]:
        for _ in range(20):
            assert expected * 0.8 <= backoff_seconds(policy, used, rng) <= expected * 1.2
    assert backoff_seconds(RecoveryPolicy(backoff_jitter=0), 1) == 60


class _Restart(RecoveryHandler):
    name = "restart_vm"

    def propose(self, diagnosis):
        if diagnosis.root_cause is not Category.VIRTUALIZATION:
            return None
        return RecoveryOption(action=A.CUSTOM, confidence=0.95, steps=["virsh start"], rationale="r")

    def run(self, failure, diagnosis, context):
        return {"detail": "started", "cleared": False}


def test_custom_handler_runs_only_when_allowed_by_name():
    handlers = {"restart_vm": _Restart()}
    plan = _plan(Category.VIRTUALIZATION, handlers=handlers)
    custom = next(o for o in plan.options if o.action is A.CUSTOM)
    assert custom.blocked_by == "policy: handler 'restart_vm' is not in allowed_handlers"
    assert plan.decision.action is A.MANUAL_FIX
    policy = resolve_policy(tags=["faultcat:handler=restart_vm"])
    plan = _plan(Category.VIRTUALIZATION, policy=policy, handlers=handlers)
    assert plan.options[0].handler == "restart_vm"
    assert plan.decision.mode == "execute" and plan.decision.handler == "restart_vm"
    assert _plan(Category.NETWORK, policy=policy, handlers=handlers).decision.handler is None


def test_invalid_overrides_are_reported_not_raised():
    policy = resolve_policy(
        config={"retry_budget": -1},
        tags=["faultcat:retry=sometimes", "faultcat:bogus=1", "faultcat:retry_budget=x"],
        params="not an object",
    )
    assert policy.retry_budget == 3
    assert policy.for_category(Category.NETWORK).retry == "auto"
    text = "\n".join(policy.warnings)
    for needle in [
        "config: retry_budget",
        "retry=sometimes",
        "bogus",
        "retry_budget must be an integer",
        "dag params: a policy override must be an object",
    ]:
        assert needle in text


def test_override_from_tags_shapes():
    override, problems = override_from_tags(["faultcat:retry.timeout=never", "faultcat:retry_budget=9", "x"])
    assert override == {"categories": {"TIMEOUT": {"retry": "never"}}, "retry_budget": 9}
    assert problems == []


def test_plan_recovery_and_suggestions_for_the_cli():
    diagnosis = _diagnosis(Category.NETWORK)
    plan = plan_recovery(diagnosis)
    out = suggestions(diagnosis, plan)
    assert out[0] == "Fix the thing."
    assert out[-1].startswith("Recovery: execute - WAIT_AND_RETRY ranks first")
