"""The opt-in fleet-wide failure listener (``[faultcat] listener_enabled = True``).

``on_task_instance_failed`` runs in the task's process right after the task's own callbacks. It
does what :class:`~airflow_faultcat.notifications.recovery_dag.RecoveryDagNotifier` does, for every
DAG without editing any, skips faultcat's own DAGs (no recovery loops) and never raises. When a
DAG also has the notifier, the second trigger of the same failure is refused by the API (409).

``on_task_instance_success`` feeds the failure history and closes the loop on escalations, whether
the listener is enabled or not: a success on a later try of a fingerprinted failure is a pass on
retry (a flake signal), a first-try success of a task with fingerprints a clean run; and when a
TaskInstance succeeds on a later try and Redis remembers an open escalation of its task, it
triggers ``faultcat_resolve``, which closes the GitHub issue. Redis calls have a half-second
timeout; it never raises.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from airflow.listeners import hookimpl

from airflow_faultcat import conf
from airflow_faultcat.failures import OWN_DAG_PREFIX, dispatch, failure_context, is_retry

log = logging.getLogger(__name__)


def _has_notifier(task_instance: Any) -> bool:
    """Whether the task already hands its failures over itself (no second API call needed)."""
    from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

    task = getattr(task_instance, "task", None)
    callbacks = getattr(task, "on_failure_callback", None) or []
    if not isinstance(callbacks, (list, tuple)):
        callbacks = [callbacks]
    return any(isinstance(cb, RecoveryDagNotifier) for cb in callbacks)


@hookimpl
def on_task_instance_failed(
    previous_state: Any, task_instance: Any, error: BaseException | str | None
) -> None:
    """Hand the failed TaskInstance to the recovery DAG (last try only)."""
    started = time.monotonic()
    try:
        if not conf.listener_enabled():
            return
        dag_id = getattr(task_instance, "dag_id", "") or ""
        if dag_id.startswith(OWN_DAG_PREFIX) or is_retry(task_instance) or _has_notifier(task_instance):
            return
        failure = failure_context(task_instance, error, extra={"captured_by": "listener"})
        dispatch(failure, recovery_dag_id=conf.recovery_dag_id(), started=started)
    except Exception:
        log.exception("faultcat listener: could not hand the failure on")


def _record_success(state: Any, task_instance: Any, try_number: int) -> None:
    """A pass on retry of a fingerprinted failure (a flake signal), or a clean run; never raises."""
    try:
        version = getattr(task_instance, "dag_version_id", None)
        recorded = state.history().record_success(
            task_instance.dag_id,
            task_instance.run_id,
            task_instance.task_id,
            getattr(task_instance, "map_index", -1),
            try_number,
            dag_version=str(version) if version else None,
        )
        if recorded:
            log.info("faultcat: %s recorded for %s.%s", recorded, task_instance.dag_id, task_instance.task_id)
    except Exception as exc:
        # Redis down or slow: the history misses one signal; the task is not held up.
        log.debug("faultcat: success not recorded in the failure history: %s", exc)


#: The DAG that closes escalations of a task that succeeded.
RESOLVE_DAG_ID = "faultcat_resolve"


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    """Record the success in the failure history; trigger ``faultcat_resolve`` when a task with an
    open escalation succeeds on a later try."""
    started = time.monotonic()
    try:
        dag_id = getattr(task_instance, "dag_id", "") or ""
        if dag_id.startswith(OWN_DAG_PREFIX):
            return
        from airflow_faultcat.hooks.state import FaultcatStateHook, GuardrailsUnavailable

        state = FaultcatStateHook(conf.get_str("redis_conn_id"), socket_timeout=0.5)
        try_number = getattr(task_instance, "try_number", 1) or 1
        _record_success(state, task_instance, try_number)
        if try_number < 2:
            return
        try:
            keys = state.escalations_of(dag_id, task_instance.task_id)
        except GuardrailsUnavailable:
            return
        if keys:
            succeeded = failure_context(task_instance, None, extra={"captured_by": "success listener"})
            dispatch(succeeded, recovery_dag_id=RESOLVE_DAG_ID, started=started, timeout=1.5)
    except Exception:
        log.exception("faultcat listener: could not check for escalations to resolve")
