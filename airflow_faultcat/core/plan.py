"""Diagnosis + policy + guardrail state -> RecoveryPlan: ranked options and the decision taken.

Each option's score is the chance that it fixes the failure times its safety; options the policy
or a guardrail blocks keep their place in the list with ``blocked_by`` and rank after the
allowed ones. The decision is the best allowed option: a retry or custom handler is executed (or
first approved by a human), a manual fix or escalation goes to humans. Nothing here executes
anything: options carry steps as text.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timezone

from airflow_faultcat.core.handlers import RecoveryHandler
from airflow_faultcat.core.models import (
    Category,
    Diagnosis,
    GuardrailState,
    RecoveryAction,
    RecoveryDecision,
    RecoveryOption,
    RecoveryPlan,
    Risk,
)
from airflow_faultcat.core.policy import RecoveryPolicy

#: Categories whose failures often pass by themselves.
TRANSIENT = frozenset({Category.NETWORK, Category.TIMEOUT, Category.SERVICE_DEPENDENCY})
_SAFETY = {Risk.LOW: 1.0, Risk.MEDIUM: 0.8, Risk.HIGH: 0.6}
#: Actions the recovery DAG carries out itself; the others hand the failure to humans.
AUTOMATIC = frozenset({RecoveryAction.RETRY, RecoveryAction.WAIT_AND_RETRY, RecoveryAction.CUSTOM})
_ORDER = {a: i for i, a in enumerate(RecoveryAction)}


def backoff_seconds(policy: RecoveryPolicy, retries_used: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with jitter: ``base * 2**retries_used``, capped, +/- ``backoff_jitter``.

    :param policy: supplies base, cap and jitter (seconds, fraction).
    :param retries_used: automatic retries of the task already made in the budget window.
    :param rng: the random source (a seeded one in tests).
    """
    wait = min(policy.backoff_max_seconds, policy.backoff_base_seconds * (2 ** min(retries_used, 20)))
    jitter = (rng or random).uniform(-policy.backoff_jitter, policy.backoff_jitter)
    return round(max(0.0, wait * (1 + jitter)), 1)


class RecoveryPlanner:
    """Rank recovery options for a Diagnosis under a policy and the guardrails' state.

    :param policy: the resolved :class:`~airflow_faultcat.core.policy.RecoveryPolicy`.
    :param handlers: custom handlers by name (see :func:`airflow_faultcat.core.handlers.load_handlers`).
    :param rng: random source of the backoff jitter.
    """

    def __init__(
        self,
        policy: RecoveryPolicy | None = None,
        handlers: Mapping[str, RecoveryHandler] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or RecoveryPolicy()
        self.handlers = dict(handlers or {})
        self.rng = rng

    def plan(self, diagnosis: Diagnosis, guardrails: GuardrailState | None = None) -> RecoveryPlan:
        """Rank the options for ``diagnosis`` and decide.

        :param diagnosis: the Diagnosis of one failure.
        :param guardrails: budgets, circuit and idempotency state (``None``: no history, e.g. the CLI).
        :return: the RecoveryPlan, options highest first, with its decision.
        """
        state = guardrails or GuardrailState(
            retry_budget=self.policy.retry_budget,
            budget_window_seconds=self.policy.retry_budget_window_seconds,
        )
        options = self._options(diagnosis, state)
        options.sort(key=lambda o: (o.blocked_by is not None, -o.score, _ORDER[o.action]))
        plan = RecoveryPlan(
            root_cause=diagnosis.root_cause,
            options=options,
            created_at=datetime.now(timezone.utc),
            guardrails=state,
            policy_sources=list(self.policy.sources),
            policy_warnings=list(self.policy.warnings),
        )
        plan.decision = self._decide(diagnosis, plan, state)
        return plan

    # -- options -----------------------------------------------------------------------------

    def _options(self, diagnosis: Diagnosis, state: GuardrailState) -> list[RecoveryOption]:
        root = diagnosis.root_cause
        cat = self.policy.for_category(root)
        confidence = diagnosis.confidence if root is not Category.UNKNOWN else 0.0
        top = diagnosis.findings[0] if diagnosis.findings and root is not Category.UNKNOWN else None
        # A rerun fixes a failure of this category with this prior, when the diagnosis is right;
        # an unsure diagnosis halves the difference.
        retry_p = cat.retry_success_prior * (0.5 + 0.5 * confidence)
        retry_block = self._retry_blocked(root, cat.retry, state)
        approval = self._approval(root, cat.retry, confidence)
        options: list[RecoveryOption] = []
        if cat.wait:
            wait = backoff_seconds(self.policy, state.retries_used, self.rng)
            options.append(
                RecoveryOption(
                    action=RecoveryAction.WAIT_AND_RETRY,
                    risk=Risk.LOW,
                    confidence=round(retry_p, 3),
                    expected_duration_seconds=wait + 60,
                    wait_seconds=wait,
                    steps=[
                        f"Wait {wait:g} s (backoff {self.policy.backoff_base_seconds:g} s x 2^"
                        f"{state.retries_used}, +/-{self.policy.backoff_jitter:.0%} jitter).",
                        "Clear the failed TaskInstance (only failed, with its failed downstream tasks).",
                        "Verify that the rerun succeeded.",
                    ],
                    preconditions=[
                        "The task is idempotent (a rerun does not duplicate its effects).",
                        f"Retry budget left ({state.retries_used} of {state.retry_budget} used).",
                    ],
                    rationale=(
                        f"{root.value} failures often pass by themselves "
                        f"(prior {cat.retry_success_prior:.2f}); waiting first spares the dependency."
                    ),
                    requires_approval=approval is not None,
                    approval_reason=approval,
                    blocked_by=retry_block,
                )
            )
        options.append(
            RecoveryOption(
                action=RecoveryAction.RETRY,
                risk=Risk.MEDIUM,
                # Retrying at once is what waiting is for: worth less when waiting is advised.
                confidence=round(retry_p * (0.6 if cat.wait else 1.0), 3),
                expected_duration_seconds=60,
                steps=[
                    "Clear the failed TaskInstance now (only failed, with its failed downstream tasks).",
                    "Verify that the rerun succeeded.",
                ],
                preconditions=["The task is idempotent.", f"Retry budget left ({state.retries_used} used)."],
                rationale=(
                    "An immediate retry, before the dependency had time to recover."
                    if cat.wait
                    else f"A rerun fixes {root.value} failures only sometimes "
                    f"(prior {cat.retry_success_prior:.2f}); the same input usually fails the same way."
                ),
                requires_approval=approval is not None,
                approval_reason=approval,
                blocked_by=retry_block,
            )
        )
        if top is not None:
            steps = [s for s in [top.recovery_hint, *top.remediation] if s]
            options.append(
                RecoveryOption(
                    action=RecoveryAction.MANUAL_FIX,
                    risk=Risk.LOW,
                    confidence=round((0.55 if cat.wait else 0.9) * confidence, 3),
                    expected_duration_seconds=1800,
                    steps=steps or [f"Fix the {root.value.lower()} problem named by {top.pattern_id}."],
                    preconditions=["Someone who owns the failing dependency is reachable."],
                    rationale=(
                        f"The diagnosis names a cause a human can fix ({top.pattern_id}); "
                        "the commands shown are read-only checks, never executed by faultcat."
                    ),
                )
            )
        options.append(
            RecoveryOption(
                action=RecoveryAction.ESCALATE,
                risk=Risk.LOW,
                confidence=0.6 if top is None else round(0.2 + 0.4 * (1 - confidence), 3),
                expected_duration_seconds=3600,
                steps=["Open or update the escalation (GitHub issue, Slack) with the evidence bundle."],
                rationale=(
                    "Nothing in the library explains the failure: a human must look."
                    if top is None
                    else "If the fix is outside this team's reach, the owners need the evidence."
                ),
            )
        )
        for name, handler in sorted(self.handlers.items()):
            try:
                option = handler.propose(diagnosis)
            except Exception as exc:  # third-party code must not stop the plan
                self.policy.warnings.append(f"handler {name!r}: propose() raised {type(exc).__name__}: {exc}")
                continue
            if option is None:
                continue
            block = retry_block if retry_block and retry_block.startswith("guardrails") else None
            if name not in self.policy.allowed_handlers:
                block = f"policy: handler {name!r} is not in allowed_handlers"
            elif block is None and state.circuit_open:
                block = self._circuit_text(state)
            options.append(
                option.model_copy(
                    update={"action": RecoveryAction.CUSTOM, "handler": name, "blocked_by": block}
                )
            )
        for option in options:
            option.score = round(option.confidence * _SAFETY[option.risk], 4)
        return options

    def _retry_blocked(self, root: Category, mode: str, state: GuardrailState) -> str | None:
        """The first rule that forbids an automatic retry, as text, or ``None``."""
        if mode == "never":
            return f"policy: {root.value} retry=never"
        if not state.available:
            return f"guardrails unavailable ({state.error or 'Redis unreachable'}): no automatic retry"
        if state.circuit_open:
            return self._circuit_text(state)
        if state.retries_used >= state.retry_budget:
            return (
                f"retry budget: {state.retries_used} of {state.retry_budget} retries of this task "
                f"used in the last {state.budget_window_seconds} s"
            )
        return None

    @staticmethod
    def _circuit_text(state: GuardrailState) -> str:
        until = f" until {state.circuit_open_until:%Y-%m-%dT%H:%M:%SZ}" if state.circuit_open_until else ""
        return f"circuit open{until}: {state.circuit_failures} failed recoveries of this Dag"

    def _approval(self, root: Category, mode: str, confidence: float) -> str | None:
        if mode == "approval":
            return f"policy: {root.value} retry=approval"
        if confidence < self.policy.auto_min_confidence:
            return (
                f"policy: confidence {confidence:.2f} below auto_min_confidence "
                f"{self.policy.auto_min_confidence:.2f}"
            )
        return None

    # -- decision ----------------------------------------------------------------------------

    def _decide(self, diagnosis: Diagnosis, plan: RecoveryPlan, state: GuardrailState) -> RecoveryDecision:
        if state.already_handled_by:
            return RecoveryDecision(
                mode="skip",
                rule="idempotency: one recovery per failed try",
                reason=f"This failure was already handled by recovery run {state.already_handled_by}.",
            )
        for index, option in enumerate(plan.options):
            if option.blocked_by is not None:
                continue
            blocked = [f"{o.action.value}: {o.blocked_by}" for o in plan.options if o.blocked_by]
            why_not = f" Not taken: {'; '.join(blocked)}." if blocked else ""
            if option.action in AUTOMATIC:
                cat = self.policy.for_category(diagnosis.root_cause)
                name = option.handler or option.action.value
                if option.requires_approval:
                    return RecoveryDecision(
                        mode="approval",
                        option=index,
                        action=option.action,
                        handler=option.handler,
                        rule=option.approval_reason or "policy: approval required",
                        reason=f"{name} ranks first (score {option.score:.2f}) and waits for a human "
                        f"approval; without one it falls back to ESCALATE.{why_not}",
                    )
                rule = (
                    f"policy: handler {option.handler!r} allowed"
                    if option.handler
                    else f"policy: {diagnosis.root_cause.value} retry={cat.retry}"
                )
                return RecoveryDecision(
                    mode="execute",
                    option=index,
                    action=option.action,
                    handler=option.handler,
                    rule=f"{rule}; budget {state.retries_used} of {state.retry_budget} used",
                    reason=f"{name} ranks first (score {option.score:.2f}).{why_not}",
                )
            # The rule that decided: the block on a better-scored option, else the ranking itself.
            outranking = [o.blocked_by for o in plan.options if o.blocked_by and o.score > option.score]
            return RecoveryDecision(
                mode="escalate",
                option=index,
                action=option.action,
                rule=outranking[0]
                if outranking
                else "; ".join([f"ranking: {option.action.value} scores highest", *blocked[:1]]),
                reason=f"{option.action.value} ranks first among allowed options: humans take over.{why_not}",
            )
        return RecoveryDecision(mode="escalate", rule="no option allowed", reason="Every option is blocked.")


def plan_recovery(diagnosis: Diagnosis, policy: RecoveryPolicy | None = None) -> RecoveryPlan:
    """Plan with the default (or given) policy and no guardrail history, e.g. for the CLI.

    :param diagnosis: the Diagnosis of one failure.
    :param policy: the policy (default: built-in defaults).
    """
    return RecoveryPlanner(policy).plan(diagnosis)


def suggestions(diagnosis: Diagnosis, plan: RecoveryPlan) -> list[str]:
    """What a human should do next, best first: the top finding's hint and steps, then the plan."""
    out: list[str] = []
    if diagnosis.root_cause is not Category.UNKNOWN and diagnosis.findings:
        top = diagnosis.findings[0]
        out.extend(s for s in [top.recovery_hint, *top.remediation] if s)
    elif diagnosis.diagnostics_gap:
        out.append(f"Missing evidence: {diagnosis.diagnostics_gap}")
    if plan.decision is not None:
        out.append(f"Recovery: {plan.decision.mode} - {plan.decision.reason}")
    elif plan.options:
        best = plan.options[0]
        out.append(f"Recovery: {best.action.value} - {best.rationale}")
    return out
