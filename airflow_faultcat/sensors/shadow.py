"""ShadowErrorSensor: verify, right after a task, that what it promised is there."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.configuration import conf as airflow_conf
from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

from airflow_faultcat import conf
from airflow_faultcat.core.shadow import CheckResult, Postcondition, check_lineage, check_vms
from airflow_faultcat.exceptions import ShadowError
from airflow_faultcat.hooks.libvirt import snapshot_of
from airflow_faultcat.triggers.shadow import ShadowErrorTrigger


def describe(results: list[CheckResult]) -> str:
    """One line per postcondition that did not pass: status, violation, reason, query."""
    lines = []
    for r in results:
        if r.status == "PASS":
            continue
        what = r.postcondition.target or r.postcondition.task_id or r.postcondition.kind
        lines.append(f"{r.status} {r.violation or r.postcondition.kind} {what}: {r.reason} [{r.query}]")
    return "\n".join(lines)


class ShadowErrorSensor(BaseSensorOperator):
    """Wait until the postconditions given as arguments hold: the VMs exist and run, the tasks'
    lineage is in Marquez.

    Put it right after the task that should have created them. It checks once in the worker;
    if the postconditions do not hold yet it waits either in the triggerer (``deferrable=True``,
    through :class:`~airflow_faultcat.triggers.shadow.ShadowErrorTrigger`, first check after at
    least ``MIN_DEFERRED_WAIT`` seconds) or in the worker (``mode="poke"`` or ``"reschedule"``).
    If the
    postconditions do not all hold within ``timeout`` seconds, the task fails with
    :class:`~airflow_faultcat.exceptions.ShadowError` listing each one (violation or unavailable,
    with what was observed and the query), or is skipped when ``soft_fail`` is set. A source that
    cannot be read is reported as UNAVAILABLE, never as a violation.

    :param vms: libvirt domain names that must exist and be running (templated).
    :param libvirt_conn_id: the ``libvirt`` connection of their host.
    :param lineage_tasks: task ids of this DagRun whose latest try must have a COMPLETED
        OpenLineage run in Marquez (templated).
    :param marquez_conn_id: the Marquez connection (default ``[faultcat] marquez_conn_id``).
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    """

    #: Seconds the trigger waits before its first check. An event within seconds of deferring
    #: races the scheduler, which then fails the resumed task ("Executor reported that the task
    #: instance ... finished with state success, but the task instance's state attribute is
    #: queued").
    MIN_DEFERRED_WAIT = 10.0

    template_fields: Sequence[str] = ("vms", "lineage_tasks")

    def __init__(
        self,
        *,
        vms: list[str] | None = None,
        libvirt_conn_id: str = "libvirt_default",
        lineage_tasks: list[str] | None = None,
        marquez_conn_id: str | None = None,
        deferrable: bool = airflow_conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 10)
        kwargs.setdefault("timeout", 600)
        super().__init__(**kwargs)
        self.vms = vms or []
        self.libvirt_conn_id = libvirt_conn_id
        self.lineage_tasks = lineage_tasks or []
        self.marquez_conn_id = marquez_conn_id
        self.deferrable = deferrable
        self._last: list[CheckResult] = []

    def postconditions(self, context: Any) -> list[Postcondition]:
        """The postconditions of this DagRun the arguments declare."""
        if isinstance(self.vms, str) or isinstance(self.lineage_tasks, str):
            raise ValueError("vms and lineage_tasks must be lists of names, not one string")
        dag_id, run_id = context["dag"].dag_id, context["run_id"]
        common = {"dag_id": dag_id, "run_id": run_id, "declared_by": "sensor"}
        out = [
            Postcondition(kind="vm_running", conn_id=self.libvirt_conn_id, target=name, **common)
            for name in self.vms
        ]
        marquez = self.marquez_conn_id or conf.get_str("marquez_conn_id")
        out += [
            Postcondition(kind="lineage", conn_id=marquez, target=task_id, task_id=task_id, **common)
            for task_id in self.lineage_tasks
        ]
        return out

    def execute(self, context: Any) -> Any:
        if not self.deferrable:
            try:
                super().execute(context)
            except AirflowSensorTimeout as exc:
                raise ShadowError(
                    f"postconditions not met within {self.timeout} s:\n{describe(self._last)}"
                ) from exc
            return [r.model_dump(mode="json") for r in self._last]
        timeout_at = datetime.now(timezone.utc) + timedelta(seconds=float(self.timeout))
        if self.poke(context):
            return [r.model_dump(mode="json") for r in self._last]
        self.defer(
            trigger=ShadowErrorTrigger(
                [p.model_dump(mode="json") for p in self.postconditions(context)],
                marquez_conn_id=self.marquez_conn_id or conf.get_str("marquez_conn_id"),
                poke_interval=float(self.poke_interval),
                timeout_at=timeout_at.isoformat(),
                first_check_after=max(float(self.poke_interval), self.MIN_DEFERRED_WAIT),
            ),
            method_name="execute_complete",
            # The trigger answers at timeout_at; this margin only catches a lost trigger.
            timeout=timedelta(seconds=float(self.timeout) + 300),
        )

    def poke(self, context: Any) -> bool:
        from airflow_faultcat.hooks.marquez import MarquezHook

        pcs = self.postconditions(context)
        results = check_vms([p for p in pcs if p.kind == "vm_running"], snapshot_of)
        for pc in (p for p in pcs if p.kind == "lineage"):
            hook = MarquezHook(pc.conn_id or "marquez_default")
            try:
                run, query = hook.latest_task_run(pc.dag_id, pc.task_id or "", pc.run_id)
                results.append(check_lineage(pc, run, query=query))
            except Exception as exc:
                results.append(check_lineage(pc, None, query=f"Marquez ({pc.conn_id})", error=str(exc)))
            finally:
                hook.close()
        self._last = results
        pending = describe(results)
        if pending:
            self.log.info("faultcat: postconditions not yet met:\n%s", pending)
        return not pending

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        results = [CheckResult.model_validate(r) for r in event.get("results") or []]
        if event.get("status") == "pass":
            self.log.info("faultcat: %d postconditions hold", len(results))
            return event["results"]
        message = f"postconditions not met within {self.timeout} s:\n{describe(results)}"
        if self.soft_fail:
            raise AirflowSkipException(message)
        raise ShadowError(message)
