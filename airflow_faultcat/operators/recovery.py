"""The parts of the ``faultcat_recovery`` DAG, usable in your own recovery DAGs.

collect (validate the conf, fetch the failed try's log, drain the spool) -> diagnose -> plan ->
publish (evidence bundle, TaskInstance note). Each operator is thin: it gathers through hooks,
calls :mod:`airflow_faultcat.core` and returns ``model_dump(mode="json")``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import yaml
from airflow.sdk import BaseOperator, ObjectStoragePath
from pydantic import ValidationError

from airflow_faultcat import conf
from airflow_faultcat.core.models import (
    Diagnosis,
    EvidenceBundle,
    FailureContext,
    RecoveryOutcome,
    RecoveryPlan,
)
from airflow_faultcat.core.policy import RecoveryPolicy
from airflow_faultcat.exceptions import FaultcatError
from airflow_faultcat.known_secrets import SecretRefs, scrubber_for

log = logging.getLogger(__name__)

#: TaskInstance states in which a try has not ended yet.
_RUNNING_STATES = frozenset({None, "running", "queued", "scheduled", "restarting", "deferred"})

#: How long a failed try stays claimed by its recovery run (seconds): longer than any retry storm.
IDEMPOTENCY_TTL = 7 * 24 * 3600

#: Fields the conf of a recovery run must have.
REQUIRED_FIELDS = ("dag_id", "run_id", "task_id", "try_number")


class InvalidRecoveryConf(FaultcatError, ValueError):
    """The recovery run's conf is not a FailureContext; the message names the field."""


def failure_from_conf(raw: dict[str, Any]) -> FailureContext:
    """Validate a recovery run's conf (from the notifier, the listener or a manual trigger).

    :param raw: the DagRun conf (Params merged).
    :raises InvalidRecoveryConf: naming the first wrong, missing or unknown field.
    """
    if not isinstance(raw, dict):
        raise InvalidRecoveryConf(f"conf must be a JSON object, got {type(raw).__name__}")
    known = set(FailureContext.model_fields)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidRecoveryConf(
            f"conf field {unknown[0]!r} is not a FailureContext field (known: {sorted(known)})"
        )
    missing = [f for f in REQUIRED_FIELDS if raw.get(f) in (None, "")]
    if missing:
        raise InvalidRecoveryConf(
            f"conf field {missing[0]!r} is required (dag_id, run_id, task_id, try_number)"
        )
    try:
        return FailureContext.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "conf"
        raise InvalidRecoveryConf(f"conf field {field!r}: {err['msg']} (got {err.get('input')!r})") from None


def evidence_folder(failure: FailureContext, base: str | None = None) -> ObjectStoragePath:
    """``<base>/<dag_id>/<run_id>/<task_id>/<map_index>/<try_number>/`` for one failed try.

    A shadow error gets its own sub-folder ``shadow-<violation>-<hash>`` there: it is not that
    try's failure, whose own bundle may be in the folder already.

    :param failure: the failure.
    :param base: a path or URL (``s3://...`` works where the provider is installed); default
        ``[faultcat] evidence_path``.
    """
    root = ObjectStoragePath(base or conf.evidence_path())
    folder = (
        root
        / failure.dag_id
        / failure.run_id
        / failure.task_id
        / str(failure.map_index)
        / str(failure.try_number)
    )
    shadow_key = failure.extra.get("shadow_key")
    if shadow_key:
        violation = (failure.extra.get("shadow") or {}).get("violation") or "violation"
        folder = folder / f"shadow-{violation}-{hashlib.sha256(shadow_key.encode()).hexdigest()[:12]}"
    return folder


class CollectFailureContextOperator(BaseOperator):
    """Validate the recovery conf, fetch the failed try's log through the REST API, drain the spool.

    The log (Airflow 3 structured records as JSON lines) is written to ``task.log`` in the
    failure's evidence folder, so that the next tasks stream it rather than pass it through XCom.

    :param failure_conf: the FailureContext as a dict (templated; default: the DagRun's conf).
    :param faultcat_api_conn_id: the ``faultcat_api`` connection.
    :param evidence_path: base of the evidence folders (default ``[faultcat] evidence_path``).
    :param log_wait_timeout: seconds to wait for the failed try to end before reading its log.
    :return: ``{"context": FailureContext, "evidence_folder": str, "log_path": str, "log_lines": int,
        "spool_sent": [...], "spool_kept": [...]}``.
    """

    template_fields: Sequence[str] = ("failure_conf", "evidence_path")

    def __init__(
        self,
        *,
        failure_conf: dict[str, Any] | None = None,
        faultcat_api_conn_id: str = "faultcat_api_default",
        evidence_path: str | None = None,
        log_wait_timeout: float = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.failure_conf = failure_conf
        self.faultcat_api_conn_id = faultcat_api_conn_id
        self.evidence_path = evidence_path
        self.log_wait_timeout = log_wait_timeout

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_faultcat import spool
        from airflow_faultcat.hooks.airflow_api import AirflowApiError, AirflowApiHook

        raw = self.failure_conf if self.failure_conf is not None else dict(context["dag_run"].conf or {})
        # Params fill in empty defaults for a manual trigger; they are not FailureContext values.
        raw = {k: v for k, v in raw.items() if v not in (None, "") or k in REQUIRED_FIELDS}
        failure = failure_from_conf(raw)
        hook = AirflowApiHook(self.faultcat_api_conn_id, timeout=30)
        ti = self._wait_for_try_to_end(hook, failure) or {}
        try:
            dag_run = hook.get_dag_run(failure.dag_id, failure.run_id)
        except AirflowApiError as exc:
            self.log.warning("faultcat: could not read the DagRun %s: %s", failure.run_id, exc)
            dag_run = {}
        folder = evidence_folder(failure, self.evidence_path)
        folder.mkdir(parents=True, exist_ok=True)
        log_path = folder / "task.log"
        lines = 0
        # Ids (never values) of the connections and variables the try used: later steps mask
        # their secrets as known values.
        refs = SecretRefs()
        for text in (failure.exception_message, failure.traceback):
            refs.feed(text or "")
        for name, value in (ti.get("rendered_fields") or {}).items():
            if str(name).endswith("conn_id") and isinstance(value, str):
                refs.feed(f"conn_id={value}")
        try:
            with log_path.open("w", encoding="utf-8") as out:
                for line in hook.iter_task_log(
                    failure.dag_id, failure.run_id, failure.task_id, failure.try_number, failure.map_index
                ):
                    out.write(line + "\n")
                    refs.feed(line)
                    lines += 1
        except AirflowApiError as exc:
            # Diagnose from the FailureContext alone rather than not at all.
            self.log.warning("faultcat: could not read the log of %s: %s", failure.task_id, exc)
        sent, kept = spool.replay(hook)
        if sent or kept:
            self.log.info("faultcat: spool drained: %d sent, %d kept", len(sent), len(kept))
        hook.close()
        scrubber = scrubber_for({"secret_refs": refs.as_dict()})
        # XCom is kept in Airflow's database: the failed DagRun's conf and a context that did not
        # come through the notifier (a manual trigger, an old spool file) are scrubbed here.
        return {
            "context": scrubber.scrub_obj(failure.model_dump(mode="json")),
            "evidence_folder": str(folder),
            "log_path": str(log_path),
            "log_lines": lines,
            "secret_refs": refs.as_dict(),
            "spool_sent": sent,
            "spool_kept": [run_id for run_id, _ in kept],
            # For replay commands and flake detection ("passed on retry with no change").
            "dag_run": scrubber.scrub_obj(
                {k: dag_run.get(k) for k in ("logical_date", "run_after", "conf", "run_type")}
            ),
            "dag_version": ((ti.get("dag_version") or {}).get("id")),
        }

    def _wait_for_try_to_end(self, hook: Any, failure: FailureContext) -> dict[str, Any] | None:
        """Wait until Airflow has finished the failed try, so that its whole log can be read;
        returns the TaskInstance as last read (None when it could not be).

        The callback triggers this run from inside the failing task, before the task's state is
        final; while a try is running the API server reads its log from the worker instead.
        """
        from airflow_faultcat.hooks.airflow_api import AirflowApiError

        deadline = time.monotonic() + self.log_wait_timeout
        ti = None
        while time.monotonic() < deadline:
            try:
                ti = hook.get_task_instance(
                    failure.dag_id, failure.run_id, failure.task_id, failure.map_index
                )
            except AirflowApiError as exc:
                self.log.info("faultcat: not waiting for %s: %s", failure.task_id, exc)
                return ti
            if (ti.get("try_number") or 0) > failure.try_number or ti.get("state") not in _RUNNING_STATES:
                return ti
            time.sleep(1)
        self.log.warning(
            "faultcat: try %s of %s still running; reading its log as it is",
            failure.try_number,
            failure.task_id,
        )
        return ti


def analyze_collected(
    collected: dict[str, Any],
    pattern_paths: list[str] | None = None,
    faultcat_api_conn_id: str = "faultcat_api_default",
    *,
    with_context_lines: bool = False,
) -> Any:
    """The pattern library's Diagnosis of a collected failure (its log and FailureContext).

    The log is read where this step can read it (:func:`~airflow_faultcat.log_source.collected_log`):
    the evidence store's copy, else the REST API; without either, the Diagnosis comes from the
    FailureContext alone and its ``diagnostics_gap`` says why.

    :param collected: the output of :class:`CollectFailureContextOperator`.
    :param pattern_paths: extra pattern files or folders (default ``[faultcat] pattern_paths``).
    :param faultcat_api_conn_id: the ``faultcat_api`` connection, for a log not on this host.
    :param with_context_lines: also return the log lines around the evidence lines (for probes).
    :return: the Diagnosis, or ``(Diagnosis, context lines)`` with ``with_context_lines``.
    """
    from airflow_faultcat.core.diagnose import Analyzer
    from airflow_faultcat.core.patterns.loader import load_library
    from airflow_faultcat.log_source import collected_log, with_gap

    failure = FailureContext.model_validate(collected["context"])
    library = load_library(pattern_paths if pattern_paths is not None else conf.pattern_paths())
    analyzer = Analyzer(
        library,
        min_score=conf.get_float("min_score"),
        evidence_per_pattern=conf.get_int("evidence_per_pattern"),
        scrubber=scrubber_for(collected),
    )
    lines: list[str] = []
    with collected_log(collected, faultcat_api_conn_id) as (stream, source, gap):
        diagnosis = with_gap(analyzer.diagnose(stream, context=failure), gap)
        if stream is not None:
            log.info("faultcat: log read from the %s", source)
            if with_context_lines:
                from airflow_faultcat.operators.explore import context_lines

                stream.seek(0)
                lines = context_lines(stream, diagnosis)
    return (diagnosis, lines) if with_context_lines else diagnosis


class DiagnoseFailureOperator(BaseOperator):
    """Diagnose a failure from its log and FailureContext with the pattern library.

    When the explore step ran, its probe results move the findings: a confirmed finding gains
    confidence, a contradicted one loses it and is listed among the top finding's alternatives
    ruled out, a probe that could not run is a diagnostics gap; each probe's call and output is
    evidence (source ``probe``) of the finding it tested.

    :param collected: the output of :class:`CollectFailureContextOperator` (templated / XComArg).
    :param explored: the output of :class:`~airflow_faultcat.operators.explore.ExploreOperator`,
        or ``None``.
    :param pattern_paths: extra pattern files or folders (default ``[faultcat] pattern_paths``).
    :param faultcat_api_conn_id: the ``faultcat_api`` connection, to read a log that is not on
        this worker.
    :return: the Diagnosis as JSON-ready dict (also the DAG's XCom for other tools).
    """

    template_fields: Sequence[str] = ("collected", "explored", "pattern_paths")

    def __init__(
        self,
        *,
        collected: Any = None,
        explored: Any = None,
        pattern_paths: list[str] | None = None,
        faultcat_api_conn_id: str = "faultcat_api_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.collected = collected
        self.explored = explored
        self.pattern_paths = pattern_paths
        self.faultcat_api_conn_id = faultcat_api_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        failure = FailureContext.model_validate(self.collected["context"])
        if self.explored and self.explored.get("diagnosis"):
            # The explore step ran the same library on the same log: its diagnosis is this one.
            diagnosis = Diagnosis.model_validate(self.explored["diagnosis"])
        else:
            diagnosis = analyze_collected(self.collected, self.pattern_paths, self.faultcat_api_conn_id)
        if self.explored:
            from airflow_faultcat.operators.explore import apply_explored

            diagnosis = apply_explored(diagnosis, self.explored, failure.hostname)
        add_fingerprint_and_replay(diagnosis, failure, self.collected.get("dag_run") or {})
        self.log.info(
            "faultcat: %s (confidence %.2f): %s [fingerprint %s]",
            diagnosis.root_cause.value,
            diagnosis.confidence,
            diagnosis.summary,
            diagnosis.fingerprint,
        )
        return diagnosis.model_dump(mode="json")


def add_fingerprint_and_replay(
    diagnosis: Diagnosis, failure: FailureContext, dag_run: dict[str, Any]
) -> None:
    """Set the Diagnosis's fingerprint (task, exception type, top pattern or message template) and
    the commands that reproduce the failure (the DagRun's conf scrubbed of secrets)."""
    from airflow_faultcat.core.fingerprint import fingerprint
    from airflow_faultcat.core.scrub import Scrubber
    from airflow_faultcat.core.triage import replay_commands

    if not (failure.dag_id and failure.task_id and failure.run_id):
        return
    top = diagnosis.findings[0] if diagnosis.findings and diagnosis.root_cause.value != "UNKNOWN" else None
    message = failure.exception_message
    if not message and diagnosis.findings and diagnosis.findings[0].evidence:
        message = diagnosis.findings[0].evidence[0].text
    fp = fingerprint(
        failure.dag_id,
        failure.task_id,
        exception_type=failure.exception_type,
        pattern_id=top.pattern_id if top else None,
        message=message,
    )
    diagnosis.fingerprint, diagnosis.fingerprint_basis = fp.id, fp.basis
    conf_ = Scrubber().scrub_obj(dag_run.get("conf") or {})
    diagnosis.replay = replay_commands(
        failure.dag_id,
        failure.task_id,
        failure.run_id,
        map_index=failure.map_index,
        logical_date=dag_run.get("logical_date"),
        conf=conf_,
    )


class PlanRecoveryOperator(BaseOperator):
    """Rank recovery options for a Diagnosis under the policy and the guardrails, and decide.

    The policy is the built-in defaults, then ``[faultcat] recovery_policy``, then the failed Dag's
    tags and ``faultcat_policy`` param (read through the REST API), then ``policy`` given here.
    The guardrails come from Redis (:class:`~airflow_faultcat.hooks.state.FaultcatStateHook`): the
    failure is claimed (a second recovery of the same try does nothing), counted into its storm,
    and a retry takes one unit of the (dag_id, task_id) budget, atomically. When Redis cannot be
    reached, nothing is retried automatically and the plan says why.

    :param collected: output of :class:`CollectFailureContextOperator` (templated / XComArg).
    :param diagnosis: output of :class:`DiagnoseFailureOperator`.
    :param policy: a last policy override (a dict shaped like ``RecoveryPolicy``).
    :param faultcat_api_conn_id: the ``faultcat_api`` connection (to read the Dag's tags and params).
    :param redis_conn_id: the Redis connection (default ``[faultcat] redis_conn_id``).
    :return: ``{"plan": RecoveryPlan, "policy": RecoveryPolicy, "dedup_key": str, "storm_count": int}``.
    """

    template_fields: Sequence[str] = ("collected", "diagnosis")

    def __init__(
        self,
        *,
        collected: Any = None,
        diagnosis: Any = None,
        policy: dict[str, Any] | None = None,
        faultcat_api_conn_id: str = "faultcat_api_default",
        redis_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.collected = collected
        self.diagnosis = diagnosis
        self.policy = policy
        self.faultcat_api_conn_id = faultcat_api_conn_id
        self.redis_conn_id = redis_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_faultcat.core.escalation import dedup_key
        from airflow_faultcat.core.handlers import load_handlers
        from airflow_faultcat.core.models import GuardrailState
        from airflow_faultcat.core.plan import RecoveryPlanner
        from airflow_faultcat.hooks.state import FaultcatStateHook, GuardrailsUnavailable

        failure = FailureContext.model_validate(self.collected["context"])
        diagnosis = Diagnosis.model_validate(self.diagnosis)
        policy = self._policy(failure)
        if failure.extra.get("shadow_key"):
            # A shadow error: the DagRun succeeded, so there is no failed try to clear.
            policy = policy.merged(
                {"categories": {diagnosis.root_cause.value: {"retry": "never"}}},
                "shadow error (the DagRun succeeded: nothing failed to retry)",
            )
        handlers, problems = load_handlers()
        if problems:
            policy = policy.model_copy(update={"warnings": [*policy.warnings, *problems]})
        top = diagnosis.findings[0].pattern_id if diagnosis.findings else None
        key = dedup_key(failure.dag_id, diagnosis.root_cause.value, top)
        state = FaultcatStateHook(self.redis_conn_id or conf.get_str("redis_conn_id"))
        policy, history = self._consult_history(state, failure, diagnosis, policy)
        storm_count = 1
        try:
            self._count_failed_recovery(state, failure, policy)
            guard = state.guardrail_state(failure, policy)
            if guard.available:
                guard.already_handled_by = state.claim(failure, context["dag_run"].run_id, IDEMPOTENCY_TTL)
                if not guard.already_handled_by:
                    storm_count = state.storm_register(key, failure, policy.storm_window_seconds)
                guard.storm_count = storm_count
        except GuardrailsUnavailable as exc:
            guard = GuardrailState(
                available=False,
                error=str(exc),
                retry_budget=policy.retry_budget,
                budget_window_seconds=policy.retry_budget_window_seconds,
            )
        planner = RecoveryPlanner(policy, handlers)
        plan = planner.plan(diagnosis, guard)
        decision = plan.decision
        if decision.mode in ("execute", "approval"):
            # The budget is taken when the action is decided: 50 mapped failures race here.
            try:
                acquired, used = state.acquire_retry(
                    failure, policy.retry_budget, policy.retry_budget_window_seconds
                )
            except GuardrailsUnavailable as exc:
                acquired, used = False, guard.retries_used
                guard.available, guard.error = False, str(exc)
            if not acquired:
                # Another failure took the last unit first (or Redis went away): plan again.
                guard.retries_used = max(used, guard.retries_used)
                plan = planner.plan(diagnosis, guard)
            else:
                plan.guardrails.retries_used = used
        self.log.info(
            "faultcat: plan %s -> %s (%s)",
            " > ".join(o.action.value + ("" if o.blocked_by is None else "[blocked]") for o in plan.options),
            plan.decision.mode,
            plan.decision.rule,
        )
        for warning in plan.policy_warnings:
            self.log.warning("faultcat: policy: %s", warning)
        return {
            "plan": plan.model_dump(mode="json"),
            "policy": policy.model_dump(mode="json"),
            "dedup_key": key,
            "storm_count": storm_count,
            "history": history,
        }

    def _consult_history(
        self, state: Any, failure: FailureContext, diagnosis: Diagnosis, policy: RecoveryPolicy
    ) -> tuple[RecoveryPolicy, dict[str, Any] | None]:
        """Record this failure under its fingerprint; a flaky fingerprint may be retried at once.

        :return: the policy (``retry=auto`` for the root cause when the fingerprint is flaky and
            the policy does not say ``never``) and what the history says, for the bundle and the
            escalation (``regression``: first seen now; ``sev``; ``quarantine``).
        """
        from airflow_faultcat.core.fingerprint import Fingerprint

        if not diagnosis.fingerprint:
            return policy, None
        fp = Fingerprint(
            id=diagnosis.fingerprint,
            dag_id=failure.dag_id or "",
            task_id=failure.task_id or "",
            exception_type=(failure.exception_type or "").rsplit(".", 1)[-1],
            basis=diagnosis.fingerprint_basis or "",
        )
        top = diagnosis.findings[0] if diagnosis.findings else None
        try:
            history = state.history()
            _, first = history.record_failure(
                fp,
                run_id=failure.run_id or "",
                map_index=failure.map_index,
                try_number=failure.try_number or 1,
                root_cause=diagnosis.root_cause.value,
                pattern_id=top.pattern_id if top else None,
                severity=str(getattr(top.severity, "value", top.severity)) if top else None,
                dag_version=self.collected.get("dag_version"),
            )
            record = history.get(fp.id)
        except Exception as exc:
            # Redis errors or a broken [faultcat] flake setting: plan without history.
            self.log.warning("faultcat: failure history unavailable: %s", exc)
            return policy, {"fingerprint": fp.id, "available": False, "error": str(exc)}
        quarantine = record.quarantine if record else None
        active = bool(quarantine and quarantine.active())
        info = {
            "fingerprint": fp.id,
            "available": True,
            "regression": first,
            "sev": policy.regression_sev if first else policy.known_sev,
            "occurrences": record.occurrences if record else 1,
            "first_seen": record.first_seen.isoformat() if record else None,
            "last_seen": record.last_seen.isoformat() if record else None,
            "status": record.status if record else "new",
            "status_reason": record.status_reason if record else "",
            "flake_class": record.flake_class if record else None,
            "pass_on_retry": record.pass_on_retry if record else 0,
            "quarantine": quarantine.model_dump(mode="json") if quarantine else None,
            "quarantine_active": active,
        }
        root = diagnosis.root_cause
        if record and record.status == "flaky" and policy.categories[root].retry != "never":
            policy = policy.merged(
                {"categories": {root.value: {"retry": "auto"}}},
                f"history: {fp.id} is flaky ({record.status_reason})",
            )
        if quarantine and not active:
            policy = policy.model_copy(
                update={
                    "warnings": [
                        *policy.warnings,
                        f"quarantine of {fp.id} ({quarantine.owner}: {quarantine.reason}) expired at "
                        f"{quarantine.expires_at.isoformat()}: it no longer applies",
                    ]
                }
            )
        self.log.info(
            "faultcat: fingerprint %s: %s, %d occurrence(s)%s%s",
            fp.id,
            info["status"],
            info["occurrences"],
            " (new: a regression)" if first else "",
            " (quarantined)" if active else "",
        )
        return policy, info

    def _policy(self, failure: FailureContext) -> RecoveryPolicy:
        from airflow_faultcat.core.policy import PARAM_NAME, resolve_policy
        from airflow_faultcat.hooks.airflow_api import AirflowApiError, AirflowApiHook

        doc, problem = conf.recovery_policy()
        tags: list[str] = []
        params: Any = None
        warnings = [problem] if problem else []
        hook = AirflowApiHook(self.faultcat_api_conn_id, timeout=15)
        try:
            details = hook.get_dag_details(failure.dag_id)
            tags = [t["name"] if isinstance(t, dict) else str(t) for t in details.get("tags") or []]
            param = (details.get("params") or {}).get(PARAM_NAME)
            params = param.get("value") if isinstance(param, dict) and "value" in param else param
        except AirflowApiError as exc:
            warnings.append(f"dag details of {failure.dag_id} unavailable ({exc}): Dag overrides not applied")
        finally:
            hook.close()
        policy = resolve_policy(doc, tags, params)
        if self.policy:
            policy = policy.merged(self.policy, "operator")
        if warnings:
            policy = policy.model_copy(update={"warnings": [*warnings, *policy.warnings]})
        return policy

    @staticmethod
    def _count_failed_recovery(state: Any, failure: FailureContext, policy: RecoveryPolicy) -> None:
        """If the previous try was a faultcat retry, this failure means that recovery failed."""
        if not failure.try_number or failure.try_number < 2:
            return
        previous = failure.model_copy(update={"try_number": failure.try_number - 1})
        outcome = state.get_outcome(previous)
        if outcome and outcome.get("status") in ("retried", "retry_failed"):
            state.record_recovery_result(previous, ok=False, policy=policy)


#: Waits at least this long (seconds) are deferred to the triggerer; shorter ones are slept in the
#: task. A deferral that fires within seconds can race the executor's report of the deferring
#: process's exit, and Airflow then fails the task as "state changed externally"
#: (apache/airflow#66374, #71580).
DEFER_AT_LEAST_SECONDS = 60.0


def wait_then(operator: BaseOperator, seconds: float, method_name: str) -> None:
    """Wait ``seconds`` before ``operator`` goes on: deferred when long, slept when short.

    Returns after a short wait; for a long one it defers (raises ``TaskDeferred``) and Airflow
    resumes the task in ``method_name``.
    """
    if seconds <= 0:
        return
    if seconds < DEFER_AT_LEAST_SECONDS:
        time.sleep(seconds)
        return
    from airflow.providers.standard.triggers.temporal import DateTimeTrigger

    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    operator.defer(trigger=DateTimeTrigger(moment=moment), method_name=method_name)


def load_planned(planned: dict[str, Any]) -> tuple[RecoveryPlan, RecoveryPolicy]:
    """The plan and policy out of :class:`PlanRecoveryOperator`'s output."""
    return RecoveryPlan.model_validate(planned["plan"]), RecoveryPolicy.model_validate(planned["policy"])


def outcome_line(outcome: RecoveryOutcome) -> str:
    """``Recovery: escalated - GitHub #12 opened (rule: policy: CREDENTIAL retry=never)``."""
    line = f"Recovery: {outcome.status.replace('_', ' ')}"
    if outcome.detail:
        line += f" - {outcome.detail}"
    if outcome.rule:
        line += f" (rule: {outcome.rule})"
    return line


def record_outcome(
    *,
    collected: dict[str, Any],
    outcome: RecoveryOutcome,
    faultcat_api_conn_id: str,
    redis_conn_id: str | None,
    log: Any,
    set_note: bool = True,
) -> None:
    """Write what was done into the evidence bundle, the failed TaskInstance's note and Redis.

    Each part is attempted on its own: a note the API refuses does not lose the bundle's record.
    """
    from airflow_faultcat.hooks.airflow_api import AirflowApiError, AirflowApiHook
    from airflow_faultcat.hooks.state import FaultcatStateHook

    failure = FailureContext.model_validate(collected["context"])
    outcome.recorded_at = outcome.recorded_at or datetime.now(timezone.utc)
    scrubber = scrubber_for(collected)
    clean = scrubber.scrub_obj(outcome.model_dump(mode="json"))
    json_path = ObjectStoragePath(collected["evidence_folder"]) / "bundle.json"
    state = FaultcatStateHook(redis_conn_id or conf.get_str("redis_conn_id"))
    note = None
    fingerprint_id = None
    bundle, location = _read_bundle(json_path, state, failure, log)
    if bundle is not None:
        bundle["outcome"] = clean
        EvidenceBundle.model_validate(bundle)
        if location == bundle_location(json_path) and json_path.exists():
            json_path.write_text(json.dumps(bundle, indent=2, sort_keys=False))
            (json_path.parent / "bundle.yaml").write_text(
                yaml.safe_dump(bundle, sort_keys=False, allow_unicode=True)
            )
        try:
            state.store_bundle(failure, bundle, location, IDEMPOTENCY_TTL)
        except Exception as exc:
            log.warning("faultcat: the bundle's copy in Redis is not updated: %s", exc)
        note = note_text(Diagnosis.model_validate(bundle["diagnosis"]), location, outcome)
        fingerprint_id = bundle["diagnosis"].get("fingerprint")
    if set_note and note:
        hook = AirflowApiHook(faultcat_api_conn_id, timeout=15)
        try:
            hook.set_task_instance_note(
                failure.dag_id, failure.run_id, failure.task_id, scrubber.scrub(note), failure.map_index
            )
        except AirflowApiError as exc:
            log.warning("faultcat: could not note the outcome on %s: %s", failure.task_id, exc)
        finally:
            hook.close()
    try:
        state.record_outcome(failure, clean, IDEMPOTENCY_TTL)
        if fingerprint_id:
            state.history().record_outcome(fingerprint_id, outcome.status)
    except Exception as exc:
        # Redis unreachable (or answering errors): the bundle and the note have the outcome.
        log.warning("faultcat: outcome not stored in Redis: %s", exc)
    log.info("faultcat: %s", outcome_line(outcome))


def bundle_location(json_path: ObjectStoragePath) -> str:
    """Where a bundle file is, for people: a path on a worker's own disk names that worker.

    :param json_path: the bundle file as written on this host.
    """
    from airflow.utils.net import get_hostname

    from airflow_faultcat.log_source import is_local_store

    location = str(json_path)
    return f"{location} on {get_hostname()}" if is_local_store(location) else location


def _store_warning(path: str) -> str | None:
    from airflow_faultcat.log_source import store_warning

    return store_warning(path)


def _read_bundle(
    json_path: ObjectStoragePath, state: Any, failure: FailureContext, log: Any
) -> tuple[dict[str, Any] | None, str]:
    """The published bundle and where its file is: the evidence store's file when this host can
    read it, else the copy the publish step kept in Redis (a worker's own disk is not shared)."""
    try:
        if json_path.exists():
            return json.loads(json_path.read_text()), bundle_location(json_path)
    except (OSError, ValueError) as exc:
        log.warning("faultcat: the bundle %s cannot be read here: %s", json_path, exc)
    try:
        kept = state.get_bundle(failure)
    except Exception as exc:
        log.warning("faultcat: bundle.json is not on this host and Redis cannot be read: %s", exc)
        return None, str(json_path)
    if kept is None:
        log.warning(
            "faultcat: bundle.json is not on this host (%s) and Redis keeps no copy: the outcome is "
            "recorded in Redis only",
            json_path,
        )
        return None, str(json_path)
    return kept


def note_text(diagnosis: Diagnosis, bundle_location: str, outcome: RecoveryOutcome | None = None) -> str:
    """The failed TaskInstance's note: the one-line diagnosis, what was done, where the bundle is.

    Kept within the API's 1000 characters. A bundle on one worker's own disk under an executor
    that runs tasks elsewhere gets a warning line.
    """
    head = f"faultcat: {diagnosis.root_cause.value}"
    if diagnosis.findings and diagnosis.root_cause.value != "UNKNOWN":
        top = diagnosis.findings[0]
        head += f" ({diagnosis.confidence:.2f}, {top.pattern_id})"
        if top.evidence:
            ev = top.evidence[0]
            where = f"line {ev.line}" if ev.line else ev.source
            head += f" - {where}: {' '.join(ev.text.split())[:300]}"
    else:
        head += f" - {diagnosis.diagnostics_gap or diagnosis.summary}"[:400]
    tail = f"\nEvidence bundle: {bundle_location}"
    if " on " in bundle_location and _store_warning(bundle_location.split(" on ", 1)[0]):
        tail += "\nWarning: the evidence store is one worker's disk ([faultcat] evidence_path)"
    replay = next((r.command for r in diagnosis.replay if r.kind == "task"), None)
    if replay and len(replay) < 300:
        tail = f"\nReplay: {replay}" + tail
    if diagnosis.fingerprint:
        tail = f"\nFingerprint: {diagnosis.fingerprint}" + tail
    if outcome is not None:
        tail = "\n" + outcome_line(outcome)[:300] + tail
    return head[: 1000 - len(tail)] + tail


class PublishEvidenceOperator(BaseOperator):
    """Publish a failure's evidence bundle and note the diagnosis on the failed TaskInstance.

    The bundle (evidence, findings, suggestions, the Diagnosis and the plan) is scrubbed of
    secrets, validated against its JSON Schema and written as ``bundle.json`` and ``bundle.yaml``
    to the failure's evidence folder (an ObjectStoragePath: local by default, ``s3://`` etc. where
    configured). Then the failed TaskInstance gets a note with the one-line diagnosis and the
    bundle's location.

    :param collected: output of :class:`CollectFailureContextOperator` (templated / XComArg).
    :param diagnosis: output of :class:`DiagnoseFailureOperator`.
    :param planned: output of :class:`PlanRecoveryOperator` (the plan, its policy and dedup key).
        When the plan says the failure was already handled, nothing is written.
    :param faultcat_api_conn_id: the ``faultcat_api`` connection (for the note).
    :param set_note: set the note on the failed TaskInstance (default true).
    :param redis_conn_id: where the run's other fingerprints are read for the digest (default
        ``[faultcat] redis_conn_id``).
    :return: ``{"bundle_json": str, "bundle_yaml": str, "note": str, "redactions": int}``.
    """

    template_fields: Sequence[str] = ("collected", "diagnosis", "planned")

    def __init__(
        self,
        *,
        collected: Any = None,
        diagnosis: Any = None,
        planned: Any = None,
        faultcat_api_conn_id: str = "faultcat_api_default",
        set_note: bool = True,
        redis_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.collected = collected
        self.diagnosis = diagnosis
        self.planned = planned
        self.faultcat_api_conn_id = faultcat_api_conn_id
        self.set_note = set_note
        self.redis_conn_id = redis_conn_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_faultcat.core.plan import suggestions
        from airflow_faultcat.hooks.airflow_api import AirflowApiHook

        failure = FailureContext.model_validate(self.collected["context"])
        diagnosis = Diagnosis.model_validate(self.diagnosis)
        plan, _ = load_planned(self.planned)
        if plan.decision is not None and plan.decision.mode == "skip":
            # A second recovery of the same failure changes nothing: not the bundle, not the note.
            self.log.info("faultcat: %s", plan.decision.reason)
            return {"bundle_json": None, "bundle_yaml": None, "note": None, "redactions": 0, "skipped": True}
        decided = None
        if plan.decision is not None and plan.decision.mode == "approval":
            decided = RecoveryOutcome(
                status="awaiting_approval",
                action=plan.decision.action,
                rule=plan.decision.rule,
                detail="a human approves it in the Airflow UI; without an answer it escalates",
                recorded_at=datetime.now(timezone.utc),
            )
        evidence = [e for f in diagnosis.findings for e in f.evidence]
        bundle = EvidenceBundle(
            bundle_id=context["dag_run"].run_id,
            created_at=datetime.now(timezone.utc),
            context=failure,
            evidence=evidence,
            findings=diagnosis.findings,
            suggestions=suggestions(diagnosis, plan),
            diagnosis=diagnosis,
            plan=plan,
            outcome=decided,
            digest=self._digest(failure, diagnosis),
            history=(self.planned or {}).get("history"),
        )
        scrubber = scrubber_for(self.collected)
        raw = bundle.model_dump(mode="json")
        redactions = len(scrubber.findings(json.dumps(raw)))
        clean = scrubber.scrub_obj(raw)
        clean["redactions"] = redactions
        # Validate what is written, after scrubbing: it must still be a valid bundle.
        EvidenceBundle.model_validate(clean)
        folder = ObjectStoragePath(self.collected["evidence_folder"])
        folder.mkdir(parents=True, exist_ok=True)
        json_path, yaml_path = folder / "bundle.json", folder / "bundle.yaml"
        json_path.write_text(json.dumps(clean, indent=2, sort_keys=False))
        yaml_path.write_text(yaml.safe_dump(clean, sort_keys=False, allow_unicode=True))
        location = self._location(json_path)
        self._keep_in_redis(failure, clean, location)
        note = scrubber.scrub(note_text(Diagnosis.model_validate(clean["diagnosis"]), location, decided))
        if self.set_note:
            hook = AirflowApiHook(self.faultcat_api_conn_id, timeout=30)
            try:
                hook.set_task_instance_note(
                    failure.dag_id, failure.run_id, failure.task_id, note, failure.map_index
                )
            finally:
                hook.close()
        for command in diagnosis.replay:
            self.log.info("faultcat: replay (%s): %s", command.kind, scrubber.scrub(command.command))
        self.log.info("faultcat: evidence bundle %s (%d redaction(s))", json_path, redactions)
        return {
            "bundle_json": str(json_path),
            "bundle_yaml": str(yaml_path),
            "note": note,
            "redactions": redactions,
        }

    def _location(self, json_path: ObjectStoragePath) -> str:
        """Where the bundle is, for people: a path on a worker's own disk names the worker."""
        from airflow_faultcat.log_source import store_warning

        warning = store_warning(str(json_path))
        if warning:
            self.log.warning("faultcat: %s", warning)
        return bundle_location(json_path)

    def _keep_in_redis(self, failure: FailureContext, bundle: dict[str, Any], location: str) -> None:
        """A copy of the scrubbed bundle in Redis, for the steps that run on other workers."""
        from airflow_faultcat.hooks.state import FaultcatStateHook

        state = FaultcatStateHook(self.redis_conn_id or conf.get_str("redis_conn_id"))
        try:
            state.store_bundle(failure, bundle, location, IDEMPOTENCY_TTL)
        except Exception as exc:
            self.log.warning(
                "faultcat: no copy of the bundle in Redis (later steps on other workers "
                "cannot update it): %s",
                exc,
            )

    def _digest(self, failure: FailureContext, diagnosis: Diagnosis) -> Any:
        """The DagRun's failure digest: its first failed task (by end date), the root cause, the
        top evidence line, the fingerprints recorded for the run, and how to replay it."""
        from airflow_faultcat.core.models import FailureDigest
        from airflow_faultcat.hooks.airflow_api import AirflowApiError, AirflowApiHook

        hook = AirflowApiHook(self.faultcat_api_conn_id, timeout=15)
        try:
            tis = hook.list_task_instances(failure.dag_id, failure.run_id, limit=1000)
        except AirflowApiError as exc:
            self.log.warning("faultcat: digest without the DagRun's TaskInstances: %s", exc)
            tis = []
        finally:
            hook.close()

        def name(ti: dict[str, Any]) -> str:
            index = ti.get("map_index", -1)
            return ti["task_id"] + (f"[{index}]" if index is not None and index >= 0 else "")

        failed = sorted(
            (t for t in tis if t.get("state") in ("failed", "upstream_failed", "up_for_retry")),
            key=lambda t: str(t.get("end_date") or "~"),
        )
        this = name({"task_id": failure.task_id, "map_index": failure.map_index})
        first = name(failed[0]) if failed else this
        fingerprints = [diagnosis.fingerprint] if diagnosis.fingerprint else []
        history = (self.planned or {}).get("history") or {}
        if history.get("available"):
            try:
                from airflow_faultcat.hooks.state import FaultcatStateHook

                state = FaultcatStateHook(self.redis_conn_id or conf.get_str("redis_conn_id"))
                fingerprints = sorted(
                    set(fingerprints) | set(state.history().run_fingerprints(failure.dag_id, failure.run_id))
                )
            except Exception as exc:
                self.log.warning("faultcat: digest without the run's other fingerprints: %s", exc)
        top = diagnosis.findings[0] if diagnosis.findings else None
        evidence = top.evidence[0].text if top and top.evidence else None
        return FailureDigest(
            dag_id=failure.dag_id,
            run_id=failure.run_id,
            root_cause=diagnosis.root_cause.value if first == this else "UNKNOWN",
            first_failed_task=first,
            top_evidence=(" ".join(evidence.split())[:500] if evidence else None) if first == this else None,
            fingerprints=fingerprints,
            failed_tasks=[name(t) for t in failed if t.get("state") == "failed"] or [this],
            replay=diagnosis.replay if first == this else [],
        )
