"""Triage against a baseline, replay commands, and the failure digest of a DagRun.

Pure: the history (:mod:`airflow_faultcat.history`) and the REST API supply the data.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from airflow_faultcat.core.models import ReplayCommand

TriageStatus = Literal["regression", "stable", "known_failures_only"]
ChangeKind = Literal["new", "recurring", "resolved"]

#: Severity order of findings (pattern severities), highest first.
_SEVERITY_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3, "info": 4}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FailureSummary(_Model):
    """One fingerprint as triage sees it.

    :param fingerprint: the id.
    :param dag_id: its Dag.
    :param task_id: its task.
    :param root_cause: the category.
    :param severity: the top finding's pattern severity (``high``...), if any.
    :param count: failures in the compared run or window.
    :param basis: ``pattern:<id>`` or ``template:<text>``.
    """

    fingerprint: str
    dag_id: str = ""
    task_id: str = ""
    root_cause: str = "UNKNOWN"
    severity: str | None = None
    count: int = Field(default=1, ge=0)
    basis: str = ""


class TriageChange(_Model):
    """One difference from the baseline.

    :param kind: ``new`` (not in the baseline: a regression), ``recurring`` (in both) or
        ``resolved`` (in the baseline only).
    :param count_now: failures now; ``count_before``: in the baseline.
    """

    kind: ChangeKind
    failure: FailureSummary
    count_now: int = 0
    count_before: int = 0


class TriageReport(_Model):
    """The verdict of comparing a DagRun, a Dag's window or the instance with a baseline.

    :param status: ``regression`` (a fingerprint not in the baseline), ``known_failures_only``
        (failures, all of them in the baseline) or ``stable`` (no failure now).
    :param current: what was compared (a run id or a window).
    :param baseline: what it was compared with.
    :param changes: new first, then recurring, then resolved; within each, by severity, then
        count.
    """

    status: TriageStatus
    current: str
    baseline: str
    changes: list[TriageChange] = Field(default_factory=list)

    @property
    def new(self) -> list[TriageChange]:
        return [c for c in self.changes if c.kind == "new"]


def triage(
    current: Mapping[str, FailureSummary],
    baseline: Mapping[str, FailureSummary],
    *,
    current_label: str = "current",
    baseline_label: str = "baseline",
) -> TriageReport:
    """Compare the fingerprints failing now with a baseline's.

    :param current: fingerprint -> summary, now.
    :param baseline: fingerprint -> summary, in the baseline.
    """
    changes = []
    for fid, now in current.items():
        before = baseline.get(fid)
        changes.append(
            TriageChange(
                kind="recurring" if before else "new",
                failure=now,
                count_now=now.count,
                count_before=before.count if before else 0,
            )
        )
    for fid, before in baseline.items():
        if fid not in current:
            changes.append(TriageChange(kind="resolved", failure=before, count_before=before.count))
    order = {"new": 0, "recurring": 1, "resolved": 2}
    changes.sort(
        key=lambda c: (
            order[c.kind],
            _SEVERITY_RANK.get(c.failure.severity or "", 5),
            -(c.count_now or c.count_before),
            c.failure.fingerprint,
        )
    )
    if any(c.kind == "new" for c in changes):
        status: TriageStatus = "regression"
    elif current:
        status = "known_failures_only"
    else:
        status = "stable"
    return TriageReport(status=status, current=current_label, baseline=baseline_label, changes=changes)


# -- replay -----------------------------------------------------------------------------------


def replay_commands(
    dag_id: str,
    task_id: str,
    run_id: str,
    *,
    map_index: int = -1,
    logical_date: str | None = None,
    conf: Mapping[str, Any] | None = None,
    api_url: str = "$AIRFLOW_API",
) -> list[ReplayCommand]:
    """Commands that reproduce the failure of one TaskInstance.

    :param logical_date: the DagRun's logical date (ISO), if it has one; ``airflow dags test`` needs
        a date or runs "now".
    :param conf: the DagRun's conf, already scrubbed of secrets.
    :param api_url: the API server's base URL shown in the REST call.
    """
    q = shlex.quote
    task = ["airflow", "tasks", "test", q(dag_id), q(task_id), q(run_id)]
    if map_index is not None and int(map_index) >= 0:
        task += ["--map-index", str(int(map_index))]
    out = [
        ReplayCommand(
            kind="task",
            command=" ".join(task),
            note=(
                "runs the task once in this shell, in the same DagRun; in Airflow 3 its callbacks run "
                "and the TaskInstance's state is set to how it ended, and the exit status is 0 "
                "either way: read the output"
            ),
        )
    ]
    dag = ["airflow", "dags", "test", q(dag_id)]
    if logical_date:
        dag.append(q(logical_date))
    if conf:
        dag += ["--conf", q(json.dumps(dict(conf), sort_keys=True, separators=(",", ":")))]
    out.append(
        ReplayCommand(
            kind="dag",
            command=" ".join(dag),
            note="runs the whole Dag in this process with the DagRun's conf (scrubbed)",
        )
    )
    body = {
        "dry_run": False,
        "only_failed": True,
        "dag_run_id": run_id,
        "task_ids": [[task_id, int(map_index)]]
        if map_index is not None and int(map_index) >= 0
        else [task_id],
    }
    out.append(
        ReplayCommand(
            kind="clear",
            command=(
                f'curl -sS -X POST "{api_url}/api/v2/dags/{dag_id}/clearTaskInstances" '
                '-H "Authorization: Bearer $AIRFLOW_TOKEN" -H "Content-Type: application/json" '
                f"-d {q(json.dumps(body, separators=(',', ':')))}"
            ),
            note="clears the failed TaskInstance through the REST API; the scheduler reruns it",
        )
    )
    return out
