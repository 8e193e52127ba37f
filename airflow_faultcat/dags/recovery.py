"""The ``faultcat_recovery`` DAG, built from the provider's public operators."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import DAG, Param

from airflow_faultcat import conf
from airflow_faultcat.operators.approval import RecoveryApprovalOperator
from airflow_faultcat.operators.escalate import EscalateFailureOperator, ResolveEscalationOperator
from airflow_faultcat.operators.explore import ExploreOperator
from airflow_faultcat.operators.recovery import (
    CollectFailureContextOperator,
    DiagnoseFailureOperator,
    PlanRecoveryOperator,
    PublishEvidenceOperator,
)
from airflow_faultcat.operators.retry import RetryFailedTaskOperator
from airflow_faultcat.sensors.recovery import RecoveryRerunSensor

DOC = """
### faultcat_recovery

Diagnoses and recovers one failed TaskInstance. Triggered by `RecoveryDagNotifier` (a task's
`on_failure_callback`) or the opt-in listener, with the failure's FailureContext as conf; trigger it
by hand from the UI form to diagnose any failed try.

`collect` validates the conf, fetches the log of that try through the REST API and drains the
spool of failures that could not be sent earlier; `explore` ranks root causes with the pattern
library and runs the read-only probes that test each finding (DNS, TCP, TLS, HTTP status, disk,
paths, memory, sockets, processes, the task's connections, the DagRun's conf, the try's
`execution_timeout`, libvirt, containers, Airflow's health and pools) and three rivals no log line
proposes (worker disk, worker memory, Airflow's health); 2 s each, 10 s in all, on the queue
`[faultcat] explore_queue` names; `diagnose` takes those findings with their evidence lines, moved
by what the probes saw,
fingerprints the failure and writes the commands that replay it; `plan` records the fingerprint in
the failure history (a flaky one is retried without approval, a quarantined one is not
escalated), ranks recovery options under the policy and the Redis guardrails (idempotency, retry
budget, circuit breaker, storm count) and decides; `publish` writes the scrubbed evidence bundle
(JSON and YAML, with the DagRun's failure digest) and notes the diagnosis, the fingerprint and the
replay command on the failed TaskInstance; `approve` routes the decision:
straight to `retry` (wait with backoff, clear the TaskInstance, then `verify` its rerun), through a
human approval first (Reject or timeout: escalate), or to `escalate` (GitHub issue and Slack
message, once per storm). Every step records its outcome in the bundle and the note.
"""


def recovery_params() -> dict[str, Param]:
    """Params with a JSON schema: the form a manual trigger shows in the Airflow UI."""
    return {
        "dag_id": Param("", type="string", title="Dag id", description="Dag of the failed task."),
        "run_id": Param("", type="string", title="Run id", description="DagRun of the failed task."),
        "task_id": Param("", type="string", title="Task id", description="The failed task."),
        "map_index": Param(
            -1, type="integer", minimum=-1, title="Map index", description="-1 if not mapped."
        ),
        "try_number": Param(1, type="integer", minimum=1, title="Try number", description="The failed try."),
        "exception_type": Param(None, type=["null", "string"], title="Exception type"),
        "exception_message": Param(None, type=["null", "string"], title="Exception message"),
    }


def build_recovery_dag(
    dag_id: str = "faultcat_recovery",
    *,
    faultcat_api_conn_id: str = "faultcat_api_default",
    evidence_path: str | None = None,
    pattern_paths: list[str] | None = None,
    policy: dict[str, Any] | None = None,
    redis_conn_id: str | None = None,
    explore: bool | None = None,
    explore_queue: str | None = None,
    explore_pool: str | None = None,
    **dag_kwargs: Any,
) -> DAG:
    """Build the recovery DAG: collect -> explore -> diagnose -> plan -> publish -> approve ->
    retry/escalate.

    :param dag_id: its id (the notifier's ``recovery_dag_id``).
    :param faultcat_api_conn_id: the ``faultcat_api`` connection used to read logs and set notes.
    :param evidence_path: base of the evidence folders (default ``[faultcat] evidence_path``).
    :param pattern_paths: extra pattern files (default ``[faultcat] pattern_paths``).
    :param policy: a recovery policy override applied last (shaped like ``RecoveryPolicy``).
    :param redis_conn_id: the guardrails' Redis connection (default ``[faultcat] redis_conn_id``).
    :param explore: whether probes test the findings (default ``[faultcat] explore_enabled``).
    :param explore_queue: the executor queue the probes run on, so that they look from the
        workers where failures happen (default ``[faultcat] explore_queue``; empty: the default).
    :param explore_pool: the pool of the explore task (default ``[faultcat] explore_pool``).
    :param dag_kwargs: passed to :class:`~airflow.sdk.DAG` (e.g. ``tags``, ``max_active_runs``).
    """
    from airflow_faultcat.log_source import store_warning

    warning = store_warning(evidence_path or conf.evidence_path())
    if warning:
        logging.getLogger(__name__).warning("faultcat: %s", warning)
    explore = conf.get_bool("explore_enabled") if explore is None else explore
    routing = {
        k: v
        for k, v in (
            ("queue", explore_queue if explore_queue is not None else conf.get_str("explore_queue")),
            ("pool", explore_pool if explore_pool is not None else conf.get_str("explore_pool")),
        )
        if v
    }
    kwargs: dict[str, Any] = {
        "schedule": None,
        "start_date": datetime(2025, 1, 1, tzinfo=timezone.utc),
        "catchup": False,
        "max_active_runs": 4,
        "tags": ["faultcat"],
        "params": recovery_params(),
        "doc_md": DOC,
        "default_args": {"retries": 0},
    }
    kwargs.update(dag_kwargs)
    with DAG(dag_id, **kwargs) as dag:
        collect = CollectFailureContextOperator(
            task_id="collect", faultcat_api_conn_id=faultcat_api_conn_id, evidence_path=evidence_path
        )
        explored = None
        if explore:
            explored = ExploreOperator(
                task_id="explore",
                collected=collect.output,
                pattern_paths=pattern_paths,
                faultcat_api_conn_id=faultcat_api_conn_id,
                **routing,
            ).output
        diagnose = DiagnoseFailureOperator(
            task_id="diagnose",
            collected=collect.output,
            explored=explored,
            pattern_paths=pattern_paths,
            faultcat_api_conn_id=faultcat_api_conn_id,
        )
        plan = PlanRecoveryOperator(
            task_id="plan",
            collected=collect.output,
            diagnosis=diagnose.output,
            policy=policy,
            faultcat_api_conn_id=faultcat_api_conn_id,
            redis_conn_id=redis_conn_id,
        )
        publish = PublishEvidenceOperator(
            task_id="publish",
            collected=collect.output,
            diagnosis=diagnose.output,
            planned=plan.output,
            faultcat_api_conn_id=faultcat_api_conn_id,
            redis_conn_id=redis_conn_id,
        )
        common = {"faultcat_api_conn_id": faultcat_api_conn_id, "redis_conn_id": redis_conn_id}
        approve = RecoveryApprovalOperator(
            task_id="approve",
            planned=plan.output,
            collected=collect.output,
            execute_task_id="retry",
            escalate_task_id="escalate",
            **common,
        )
        retry = RetryFailedTaskOperator(
            task_id="retry",
            collected=collect.output,
            diagnosis=diagnose.output,
            planned=plan.output,
            **common,
        )
        verify = RecoveryRerunSensor(
            task_id="verify", collected=collect.output, planned=plan.output, retried=retry.output, **common
        )
        escalate = EscalateFailureOperator(
            task_id="escalate",
            collected=collect.output,
            diagnosis=diagnose.output,
            planned=plan.output,
            approval=approve.output,
            **common,
        )
        publish >> approve >> [retry, escalate]
        retry >> verify
    return dag


RESOLVE_DOC = """
### faultcat_resolve

Closes the open escalations (GitHub issues) of a task that succeeded on a later try, after a fix
and a clear. Triggered by faultcat's success listener with the successful TaskInstance as conf,
only when Redis remembers an open escalation of that task.
"""


def build_resolve_dag(
    dag_id: str = "faultcat_resolve", *, redis_conn_id: str | None = None, **dag_kwargs: Any
) -> DAG:
    """Build the DAG that closes escalations once the task succeeds: one ``resolve`` task.

    :param dag_id: its id (the success listener triggers ``faultcat_resolve``).
    :param redis_conn_id: the guardrails' Redis connection (default ``[faultcat] redis_conn_id``).
    :param dag_kwargs: passed to :class:`~airflow.sdk.DAG`.
    """
    kwargs: dict[str, Any] = {
        "schedule": None,
        "start_date": datetime(2025, 1, 1, tzinfo=timezone.utc),
        "catchup": False,
        "max_active_runs": 4,
        "tags": ["faultcat"],
        "doc_md": RESOLVE_DOC,
        "default_args": {"retries": 1},
    }
    kwargs.update(dag_kwargs)
    with DAG(dag_id, **kwargs) as dag:
        ResolveEscalationOperator(task_id="resolve", redis_conn_id=redis_conn_id)
    return dag
