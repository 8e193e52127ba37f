"""The opt-in fleet-wide failure listener (``[faultcat] listener_enabled = True``).

``on_task_instance_failed`` runs in the task's process right after the task's own callbacks. It
does what :class:`~airflow_faultcat.notifications.recovery_dag.RecoveryDagNotifier` does, for every
DAG without editing any, skips faultcat's own DAGs (no recovery loops) and never raises. When a
DAG also has the notifier, the second trigger of the same failure is refused by the API (409).

``on_task_instance_success`` closes the loop on escalations, whether the listener is enabled or
not: when a TaskInstance succeeds on a later try (after a fix and a clear) and Redis remembers an
open escalation of its task, it triggers ``faultcat_resolve``, which closes the GitHub issue. It
looks at Redis only for a try after the first, with a half-second timeout, and never raises.
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


#: The DAG that closes escalations of a task that succeeded.
RESOLVE_DAG_ID = "faultcat_resolve"


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    """Trigger ``faultcat_resolve`` when a task with an open escalation succeeds on a later try."""
    started = time.monotonic()
    try:
        dag_id = getattr(task_instance, "dag_id", "") or ""
        if dag_id.startswith(OWN_DAG_PREFIX) or (getattr(task_instance, "try_number", 1) or 1) < 2:
            return
        from airflow_faultcat.hooks.state import FaultcatStateHook, GuardrailsUnavailable

        try:
            keys = FaultcatStateHook(conf.get_str("redis_conn_id"), socket_timeout=0.5).escalations_of(
                dag_id, task_instance.task_id
            )
        except GuardrailsUnavailable:
            return
        if keys:
            succeeded = failure_context(task_instance, None, extra={"captured_by": "success listener"})
            dispatch(succeeded, recovery_dag_id=RESOLVE_DAG_ID, started=started, timeout=1.5)
    except Exception:
        log.exception("faultcat listener: could not check for escalations to resolve")
