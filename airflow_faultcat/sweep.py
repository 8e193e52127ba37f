"""The sweep: failed TaskInstances that no callback or listener handed over get a recovery run.

A task killed by SIGKILL (the OOM killer), a worker that died, a callback that timed out: none of
them runs faultcat's notifier or listener in the task's process. The sweep lists the TaskInstances
that failed since its watermark (kept in Redis, as the shadow scan's) through the REST API and
triggers a recovery run for each, with the same deterministic run id the callback and the listener
use: a failure already handed over is refused by the API (409) and costs nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from airflow_faultcat.core.models import FailureContext

#: faultcat's own Dags are never swept (a failed recovery is not diagnosed by another recovery).
OWN_DAG_PREFIX = "faultcat_"
#: How far before the watermark each sweep looks again: TaskInstances that ended while the last
#: sweep was listing.
OVERLAP = timedelta(minutes=2)
#: How long a failure is left to its callback or listener before the sweep hands it over.
SETTLE = timedelta(seconds=60)
#: How far back the first sweep (no watermark yet) looks.
FIRST_SWEEP = timedelta(hours=1)


class _Claims(Protocol):
    def handled_by(self, failure: FailureContext) -> str | None: ...


class _Api(Protocol):
    def list_task_instances(self, dag_id: str, dag_run_id: str, **params: Any) -> list[dict[str, Any]]: ...

    def trigger_dag_run(
        self, dag_id: str, dag_run_id: str, conf: dict[str, Any] | None = None, note: str | None = None
    ) -> dict[str, Any] | None: ...


@dataclass
class SweepResult:
    """What one sweep did.

    :param start: the start of the window (UTC).
    :param end: its end.
    :param failed: failed TaskInstances seen in the window (faultcat's own Dags excluded).
    :param triggered: recovery run ids started by this sweep.
    :param already: recovery run ids that existed, or whose failure a recovery run of any
        recovery DAG claimed (the callback or the listener was first).
    :param errors: ``(recovery run id, error)`` of triggers that failed (tried again next sweep).
    """

    start: datetime
    end: datetime
    failed: int = 0
    triggered: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def failure_from_task_instance(ti: dict[str, Any]) -> FailureContext:
    """A FailureContext from what Airflow recorded of a failed TaskInstance (REST API shape).

    No exception is known: the recovery run diagnoses from the log (a killed task's supervisor
    writes the signal and exit code there).

    :param ti: one entry of ``GET /dags/~/dagRuns/~/taskInstances``.
    """
    return FailureContext(
        dag_id=ti["dag_id"],
        run_id=ti["dag_run_id"],
        task_id=ti["task_id"],
        map_index=int(ti.get("map_index", -1) if ti.get("map_index") is not None else -1),
        try_number=int(ti.get("try_number") or 1),
        max_tries=ti.get("max_tries"),
        hostname=ti.get("hostname") or None,
        captured_at=datetime.now(timezone.utc),
        extra={"captured_by": "sweep", "operator": ti.get("operator"), "end_date": ti.get("end_date")},
    )


def sweep(
    api: _Api,
    *,
    recovery_dag_id: str,
    claims: _Claims | None = None,
    watermark: datetime | None,
    now: datetime | None = None,
    dag_pattern: str = ".*",
    limit: int = 1000,
    settle: timedelta = SETTLE,
) -> SweepResult:
    """Hand every failed TaskInstance of the window ``(watermark - OVERLAP, now - SETTLE]`` over.

    :param api: an :class:`~airflow_faultcat.hooks.airflow_api.AirflowApiHook`.
    :param recovery_dag_id: the recovery DAG to trigger.
    :param claims: faultcat's Redis state: a failure another recovery DAG claimed is not handed
        over again (the run id dedupe works within one recovery DAG only).
    :param watermark: the end of the last sweep's window, or ``None`` for a first sweep.
    :param now: the current time (UTC; tests pass one).
    :param dag_pattern: a regex the dag_id must fully match to be swept.
    :param limit: TaskInstances listed at most per sweep (the next sweep goes on from there).
    :param settle: how long a failure is left to its callback or listener first.
    :raises AirflowApiError: when the TaskInstances cannot be listed (the watermark must not move).
    """
    from airflow_faultcat.failures import recovery_run_id

    now = now or datetime.now(timezone.utc)
    end = now - settle
    start = (watermark - OVERLAP) if watermark else end - FIRST_SWEEP
    result = SweepResult(start=start, end=end)
    if end <= start:
        return result
    wanted = re.compile(dag_pattern)
    tis = api.list_task_instances(
        "~",
        "~",
        state="failed",
        end_date_gte=start.isoformat(),
        end_date_lte=end.isoformat(),
        order_by="end_date",
        limit=limit,
    )
    for ti in tis:
        dag_id = ti.get("dag_id") or ""
        if dag_id.startswith(OWN_DAG_PREFIX) or not wanted.fullmatch(dag_id):
            continue
        result.failed += 1
        failure = failure_from_task_instance(ti)
        run_id = recovery_run_id(
            dag_id, failure.run_id or "", failure.task_id or "", failure.map_index, failure.try_number or 0
        )
        if claims is not None:
            try:
                claimed = claims.handled_by(failure)
            except Exception:  # Redis unreadable: the run id's 409 still dedupes within one DAG
                claimed = None
            if claimed:
                result.already.append(run_id)
                continue
        try:
            started = api.trigger_dag_run(
                recovery_dag_id, run_id, failure.model_dump(mode="json", exclude_none=True)
            )
        except Exception as exc:
            result.errors.append((run_id, str(exc)[:300]))
            continue
        (result.triggered if started is not None else result.already).append(run_id)
    return result
