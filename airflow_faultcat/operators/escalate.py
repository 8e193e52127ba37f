"""Escalate a failure to GitHub and Slack: once per storm, updating instead of duplicating."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseOperator

from airflow_faultcat import conf
from airflow_faultcat.core.models import Diagnosis, FailureContext, RecoveryOutcome, RecoveryPlan
from airflow_faultcat.known_secrets import scrubber_for
from airflow_faultcat.operators.recovery import load_planned, record_outcome, wait_then

#: How long (seconds, beyond the settle time) a storm's leader may take to escalate before
#: another run of the storm takes over.
LEAD_MARGIN_SECONDS = 300

#: How long an escalation is remembered, so that a later success of the task can resolve it.
ESCALATION_TTL = 30 * 24 * 3600


def ti_url(failure: FailureContext) -> str | None:
    """The failed TaskInstance in the Airflow UI (``[api] base_url``), or ``None`` if unknown."""
    try:
        from airflow.configuration import conf as airflow_conf

        base = (airflow_conf.get("api", "base_url", fallback="") or "").rstrip("/")
    except Exception:  # a misconfigured base_url must not stop an escalation
        return None
    if not base.startswith(("http://", "https://")):
        return None
    url = f"{base}/dags/{quote(failure.dag_id, safe='')}/runs/{quote(failure.run_id, safe='')}"
    url += f"/tasks/{quote(failure.task_id, safe='')}"
    return url + (f"/mapped/{failure.map_index}" if failure.map_index >= 0 else "")


def build_summary(
    *,
    failure: FailureContext,
    diagnosis: Diagnosis,
    plan: RecoveryPlan,
    dedup_key: str,
    decision: str,
    task_instances: list[str],
    bundle_location: str | None,
    history: dict[str, Any] | None = None,
    scrubber: Any = None,
) -> Any:
    """The scrubbed :class:`~airflow_faultcat.core.escalation.EscalationSummary` of a failure.

    :param scrubber: the run's :class:`~airflow_faultcat.core.scrub.Scrubber` (with the known
        values of the failure's connections); default: the format rules alone.
    """
    from airflow_faultcat.core.escalation import EscalationSummary
    from airflow_faultcat.core.plan import suggestions
    from airflow_faultcat.core.scrub import Scrubber

    scrubber = scrubber or Scrubber()
    scrub = scrubber.scrub
    top = diagnosis.findings[0] if diagnosis.findings else None
    evidence = top.evidence[0] if top and top.evidence else None
    where = None
    if evidence is not None:
        where = f"task log line {evidence.line}" if evidence.line else evidence.source
    members = task_instances or [f"{failure.run_id}/{failure.task_id}/{failure.map_index}"]
    return EscalationSummary(
        dedup_key=dedup_key,
        dag_id=failure.dag_id,
        task_id=failure.task_id,
        run_id=failure.run_id,
        map_index=failure.map_index,
        try_number=failure.try_number,
        root_cause=diagnosis.root_cause.value,
        confidence=diagnosis.confidence,
        pattern_id=top.pattern_id if top else None,
        title=top.title if top else diagnosis.summary[:200],
        top_evidence=scrubber.scrub_cut(" ".join(evidence.text.split()), 500) if evidence else None,
        evidence_location=where,
        suggestions=[scrub(s) for s in suggestions(diagnosis, plan)],
        decision=scrub(decision),
        count=max(1, len(members)),
        task_instances=members,
        ti_url=ti_url(failure),
        bundle_location=bundle_location,
        last_seen=datetime.now(timezone.utc),
        sev=(history or {}).get("sev"),
        fingerprint=diagnosis.fingerprint,
        regression=bool((history or {}).get("regression")),
    )


class EscalateFailureOperator(BaseOperator):
    """Escalate a failure to a GitHub issue and a Slack message, once per storm.

    Failures of one Dag with one root cause (the plan's dedup key) within the policy's
    ``storm_window_seconds`` are one storm. The first run that escalates leads it (for as long as
    it needs, so that a dead leader does not silence the storm): it waits
    ``storm_settle_seconds`` (deferred when a minute or more) for the rest to arrive, then escalates
    once with the count and the list of TaskInstances; later runs of the storm update that issue's
    count instead of opening another. GitHub (the github provider's hook, issues labelled
    ``faultcat``): the open issue carrying the dedup key's hidden marker gets a comment, a closed one
    is reopened, else one is opened. Slack (the slack provider's notifier): one short message per
    storm. Everything sent is the scrubbed summary, never the raw log. A target without a
    configured repository/channel is skipped and said so; if Redis is down the storm cannot be
    counted, and GitHub's marker still prevents a duplicate issue.

    :param collected: output of the collect task (templated / XComArg).
    :param diagnosis: output of the diagnose task.
    :param planned: output of the plan task.
    :param approval: output of the approval gate (to say why an approval fell back to escalation).
    :param github_conn_id: GitHub connection (default ``[faultcat] github_conn_id``).
    :param github_repository: ``owner/name`` (default ``[faultcat] github_repository``; empty: none).
    :param slack_conn_id: Slack API connection (default ``[faultcat] slack_conn_id``).
    :param slack_channel: channel (default ``[faultcat] slack_channel``; empty: none).
    :param faultcat_api_conn_id: the ``faultcat_api`` connection (for the note).
    :param redis_conn_id: the Redis connection (default ``[faultcat] redis_conn_id``).
    :return: ``{"status": "escalated"|"merged", "github": {...}, "slack": {...}, "count": int}``.
    """

    template_fields: Sequence[str] = (
        "collected",
        "diagnosis",
        "planned",
        "approval",
        "github_repository",
        "slack_channel",
    )

    def __init__(
        self,
        *,
        collected: Any = None,
        diagnosis: Any = None,
        planned: Any = None,
        approval: Any = None,
        github_conn_id: str | None = None,
        github_repository: str | None = None,
        slack_conn_id: str | None = None,
        slack_channel: str | None = None,
        faultcat_api_conn_id: str = "faultcat_api_default",
        redis_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.collected = collected
        self.diagnosis = diagnosis
        self.planned = planned
        self.approval = approval
        self.github_conn_id = github_conn_id
        self.github_repository = github_repository
        self.slack_conn_id = slack_conn_id
        self.slack_channel = slack_channel
        self.faultcat_api_conn_id = faultcat_api_conn_id
        self.redis_conn_id = redis_conn_id

    # -- flow --------------------------------------------------------------------------------

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_faultcat.hooks.state import GuardrailsUnavailable

        plan, policy = load_planned(self.planned)
        key = self.planned["dedup_key"]
        history = self.planned.get("history") or {}
        if history.get("quarantine_active"):
            return self._quarantined(plan, history)
        state = self._state()
        if not (plan.guardrails and plan.guardrails.available):
            return self._escalate(context, members=[], storm=False)
        try:
            escalated = state.storm_escalation(key)
            if escalated:
                return self._follow(key, escalated.get("run_id") or "?")
            # The lead lasts as long as the leader needs, not the whole window: if the leader dies,
            # the next failure of the storm escalates instead.
            lead_ttl = int(policy.storm_settle_seconds + LEAD_MARGIN_SECONDS)
            leader = state.storm_lead(key, context["dag_run"].run_id, lead_ttl)
            if leader is not None:
                return self._follow(key, leader)
        except GuardrailsUnavailable as exc:
            self.log.warning("faultcat: storm dedup unavailable (%s): escalating alone", exc)
            return self._escalate(context, members=[], storm=False)
        if policy.storm_settle_seconds > 0:
            self.log.info(
                "faultcat: leading storm %s; waiting %.0f s for it to settle",
                key,
                policy.storm_settle_seconds,
            )
            wait_then(self, policy.storm_settle_seconds, "execute_complete")
        return self._escalate(context, members=None, storm=True)

    def execute_complete(self, context: Any, event: Any = None) -> dict[str, Any]:
        return self._escalate(context, members=None, storm=True)

    def _quarantined(self, plan: RecoveryPlan, history: dict[str, Any]) -> dict[str, Any]:
        """A quarantined fingerprint: diagnosed and recorded, not escalated."""
        entry = history.get("quarantine") or {}
        rule = f"quarantine of {history.get('fingerprint')} until {entry.get('expires_at')}"
        record_outcome(
            collected=self.collected,
            outcome=RecoveryOutcome(
                status="quarantined",
                action=plan.decision.action if plan.decision else None,
                rule=rule,
                detail=f"not escalated: owner {entry.get('owner')}, reason {entry.get('reason')}",
            ),
            faultcat_api_conn_id=self.faultcat_api_conn_id,
            redis_conn_id=self.redis_conn_id,
            log=self.log,
        )
        return {"status": "quarantined", "rule": rule}

    # -- parts -------------------------------------------------------------------------------

    def _state(self) -> Any:
        from airflow_faultcat.hooks.state import FaultcatStateHook

        return FaultcatStateHook(self.redis_conn_id or conf.get_str("redis_conn_id"))

    def _targets(self) -> tuple[str, str]:
        repo = (
            self.github_repository
            if self.github_repository is not None
            else conf.get_str("github_repository")
        )
        channel = self.slack_channel if self.slack_channel is not None else conf.get_str("slack_channel")
        return (repo or "").strip(), (channel or "").strip()

    def _decision_text(self, plan: RecoveryPlan) -> str:
        decision = plan.decision
        if decision is None:
            text = "no plan"
        else:
            text = decision.rule if decision.mode == "escalate" else f"{decision.mode}: {decision.rule}"
        if isinstance(self.approval, dict) and self.approval.get("approval") in ("rejected", "timed_out"):
            who = self.approval.get("by") or "nobody (timeout)"
            text = f"approval {self.approval['approval'].replace('_', ' ')} by {who}; was: {text}"
        return text

    def _summary(self, members: list[str]) -> Any:
        plan, _ = load_planned(self.planned)
        failure = FailureContext.model_validate(self.collected["context"])
        bundle = f"{self.collected['evidence_folder'].rstrip('/')}/bundle.json"
        return build_summary(
            failure=failure,
            diagnosis=Diagnosis.model_validate(self.diagnosis),
            plan=plan,
            dedup_key=self.planned["dedup_key"],
            decision=self._decision_text(plan),
            task_instances=members,
            bundle_location=bundle,
            history=self.planned.get("history"),
            scrubber=scrubber_for(self.collected),
        )

    def _escalate(self, context: Any, members: list[str] | None, storm: bool) -> dict[str, Any]:
        from airflow_faultcat.hooks.state import GuardrailsUnavailable

        plan, policy = load_planned(self.planned)
        key = self.planned["dedup_key"]
        state = self._state()
        if members is None:
            try:
                members = state.storm_members(key)
            except GuardrailsUnavailable as exc:
                self.log.warning("faultcat: storm members unavailable: %s", exc)
                members = []
        summary = self._summary(members)
        repo, channel = self._targets()
        result: dict[str, Any] = {"status": "escalated", "count": summary.count}
        problems: list[str] = []
        if repo:
            try:
                from airflow_faultcat.hooks.github_issues import GithubIssuesHook

                issue = GithubIssuesHook(github_conn_id=self.github_conn_id or conf.get_str("github_conn_id"))
                result["github"] = issue.escalate(repo, summary)
            except Exception as exc:  # one target failing must not lose the other
                problems.append(f"GitHub: {exc}")
        if channel:
            try:
                from airflow_faultcat.notifications.escalation import notify_slack

                result["slack"] = notify_slack(
                    slack_conn_id=self.slack_conn_id or conf.get_str("slack_conn_id"),
                    channel=channel,
                    summary=summary,
                    context=context,
                )
            except Exception as exc:
                problems.append(f"Slack: {exc}")
        where = []
        if "github" in result:
            gh = result["github"]
            where.append(f"GitHub #{gh['number']} {gh['action']}")
        if "slack" in result:
            where.append(f"Slack {result['slack'].get('channel', channel)}")
        if not repo and not channel:
            where.append("no target configured ([faultcat] github_repository, slack_channel)")
        info = {
            "github": result.get("github"),
            "slack": result.get("slack"),
            "run_id": context["dag_run"].run_id,
        }
        try:
            if storm:
                state.set_storm_escalation(key, info, policy.storm_window_seconds)
            if result.get("github"):
                state.remember_escalation(key, {**info, "repository": repo}, ESCALATION_TTL)
                failure = FailureContext.model_validate(self.collected["context"])
                state.index_escalation(failure.dag_id, failure.task_id, key, ESCALATION_TTL)
        except GuardrailsUnavailable as exc:
            self.log.warning("faultcat: escalation not remembered in Redis: %s", exc)
        detail = "; ".join(where + problems)
        if summary.count > 1:
            detail += f" ({summary.count} TaskInstances with this root cause)"
        guard_note = "" if (plan.guardrails and plan.guardrails.available) else " [guardrails unavailable]"
        configured = bool(repo) + bool(channel)
        all_failed = configured > 0 and len(problems) == configured
        record_outcome(
            collected=self.collected,
            outcome=RecoveryOutcome(
                status="escalated"
                if not problems or len(problems) < bool(repo) + bool(channel)
                else "failed",
                action=plan.decision.action if plan.decision else None,
                rule=self._decision_text(plan) + guard_note,
                detail=detail,
                escalation={k: v for k, v in result.items() if k in ("github", "slack")},
            ),
            faultcat_api_conn_id=self.faultcat_api_conn_id,
            redis_conn_id=self.redis_conn_id,
            log=self.log,
        )
        if all_failed:
            from airflow_faultcat.exceptions import FaultcatError

            if storm:
                # Let the next failure of the storm escalate instead (best effort).
                with suppress(GuardrailsUnavailable):
                    state.release_storm_lead(key, context["dag_run"].run_id)

            raise FaultcatError("escalation failed: " + "; ".join(problems))
        return result

    def _follow(self, key: str, leader: str) -> dict[str, Any]:
        """Count this failure into the storm another run leads; refresh its issue if already open."""
        from airflow_faultcat.hooks.state import GuardrailsUnavailable

        plan, _ = load_planned(self.planned)
        state = self._state()
        try:
            escalation = state.storm_escalation(key)
            members = state.storm_members(key)
        except GuardrailsUnavailable:
            escalation, members = None, []
        detail = f"counted into the escalation of storm {key} led by {leader} ({len(members)} TaskInstances)"
        gh = (escalation or {}).get("github")
        repo, _ = self._targets()
        if gh and repo:
            try:
                from airflow_faultcat.hooks.github_issues import GithubIssuesHook

                hook = GithubIssuesHook(github_conn_id=self.github_conn_id or conf.get_str("github_conn_id"))
                hook.update_summary(repo, gh["number"], self._summary(members))
                detail = f"GitHub #{gh['number']} updated: {len(members)} TaskInstances with this root cause"
            except Exception as exc:
                self.log.warning("faultcat: could not update GitHub #%s: %s", gh.get("number"), exc)
        record_outcome(
            collected=self.collected,
            outcome=RecoveryOutcome(
                status="merged",
                action=plan.decision.action if plan.decision else None,
                rule=f"storm dedup: one escalation per root cause and Dag per {key}",
                detail=detail,
                escalation={"github": gh} if gh else {},
            ),
            faultcat_api_conn_id=self.faultcat_api_conn_id,
            redis_conn_id=self.redis_conn_id,
            log=self.log,
        )
        return {"status": "merged", "leader": leader, "count": len(members), "github": gh}


def resolve_escalation(
    failure: FailureContext, dedup_key: str, *, redis_conn_id: str | None, log: Any
) -> Any:
    """Close the GitHub issue of ``dedup_key`` once the failed task succeeded; forget it in Redis.

    :return: the hook's answer (``{"number", "url", "action": "closed"}``) or ``None``.
    """
    from airflow_faultcat.core.escalation import render_resolved_comment
    from airflow_faultcat.hooks.state import FaultcatStateHook, GuardrailsUnavailable

    state = FaultcatStateHook(redis_conn_id or conf.get_str("redis_conn_id"))
    try:
        remembered = state.open_escalation(dedup_key)
    except GuardrailsUnavailable as exc:
        log.warning("faultcat: cannot look up the escalation to resolve: %s", exc)
        return None
    if not remembered or not remembered.get("github"):
        return None
    from airflow_faultcat.hooks.github_issues import GithubIssuesHook

    comment = render_resolved_comment(
        failure.dag_id, failure.task_id, failure.run_id, map_index=failure.map_index, ti_url=ti_url(failure)
    )
    conn_id = remembered.get("github_conn_id") or conf.get_str("github_conn_id")
    answer = GithubIssuesHook(github_conn_id=conn_id).resolve(remembered["repository"], dedup_key, comment)
    # The issue is closed; a stale entry only costs a later no-op lookup.
    with suppress(GuardrailsUnavailable):
        state.forget_escalation(dedup_key, failure.dag_id, failure.task_id)
    return answer


class ResolveEscalationOperator(BaseOperator):
    """Close the open escalations of a task that succeeded (the ``faultcat_resolve`` DAG).

    Triggered by the success listener when a TaskInstance succeeds on a later try and Redis
    remembers an open escalation of its (dag_id, task_id): each such GitHub issue gets a comment
    with the successful TaskInstance and is closed.

    :param success_conf: the successful TaskInstance as a FailureContext dict (default: the
        DagRun's conf; only its ids are used).
    :param redis_conn_id: the Redis connection (default ``[faultcat] redis_conn_id``).
    :return: ``{"closed": [{"number", "url", "action"}], "dedup_keys": [...]}``.
    """

    template_fields: Sequence[str] = ("success_conf",)

    def __init__(
        self, *, success_conf: dict[str, Any] | None = None, redis_conn_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.success_conf = success_conf
        self.redis_conn_id = redis_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_faultcat.hooks.state import FaultcatStateHook
        from airflow_faultcat.operators.recovery import failure_from_conf

        raw = self.success_conf if self.success_conf is not None else dict(context["dag_run"].conf or {})
        succeeded = failure_from_conf({k: v for k, v in raw.items() if v not in (None, "")})
        state = FaultcatStateHook(self.redis_conn_id or conf.get_str("redis_conn_id"))
        keys = state.escalations_of(succeeded.dag_id, succeeded.task_id)
        closed = []
        for key in keys:
            answer = resolve_escalation(succeeded, key, redis_conn_id=self.redis_conn_id, log=self.log)
            if answer:
                closed.append(answer)
                self.log.info(
                    "faultcat: GitHub #%s closed: %s succeeded", answer["number"], succeeded.task_id
                )
        return {"closed": closed, "dedup_keys": keys}
