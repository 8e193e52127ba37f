"""ShadowErrorTrigger: wait, in the triggerer, until a task's postconditions hold."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_faultcat.core.shadow import CheckResult, Postcondition, check_lineage, check_vms
from airflow_faultcat.hooks.libvirt import snapshot_of


class ShadowErrorTrigger(BaseTrigger):
    """Checks VM and task-lineage postconditions every ``poke_interval`` seconds until all pass or
    ``timeout_at`` comes; then fires one event ``{"status": "pass"|"timeout", "results": [...]}``.

    Marquez is read with ``httpx.AsyncClient``. libvirt-python has no asyncio API: the one bulk
    call per check runs in a worker thread, so the triggerer's event loop never blocks on it.

    :param postconditions: :class:`~airflow_faultcat.core.shadow.Postcondition` dicts (kinds
        ``vm_running`` and ``lineage``; a lineage postcondition's ``task_id`` names the task whose
        latest try must have a COMPLETED run in Marquez).
    :param marquez_conn_id: the Marquez connection.
    :param poke_interval: seconds between checks.
    :param timeout_at: ISO timestamp after which the last results are returned.
    :param first_check_after: seconds to wait before the first check (the sensor has just
        checked before deferring; an event within seconds of deferral races the scheduler).
    """

    def __init__(
        self,
        postconditions: list[dict[str, Any]],
        *,
        marquez_conn_id: str = "marquez_default",
        poke_interval: float = 30.0,
        timeout_at: str | None = None,
        first_check_after: float = 0.0,
    ) -> None:
        super().__init__()
        self.postconditions = postconditions
        self.marquez_conn_id = marquez_conn_id
        self.poke_interval = poke_interval
        self.timeout_at = timeout_at
        self.first_check_after = first_check_after

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "postconditions": self.postconditions,
                "marquez_conn_id": self.marquez_conn_id,
                "poke_interval": self.poke_interval,
                "timeout_at": self.timeout_at,
                "first_check_after": self.first_check_after,
            },
        )

    async def check(self) -> list[CheckResult]:
        """One round of checks of every postcondition."""
        from asgiref.sync import sync_to_async

        pcs = [Postcondition.model_validate(p) for p in self.postconditions]
        vms = [p for p in pcs if p.kind == "vm_running"]
        results = await sync_to_async(check_vms)(vms, snapshot_of) if vms else []
        for pc in (p for p in pcs if p.kind == "lineage"):
            results.append(await self._lineage(pc))
        return results

    async def _lineage(self, pc: Postcondition) -> CheckResult:
        from airflow_faultcat.hooks.marquez import MarquezHook

        hook = MarquezHook(pc.conn_id or self.marquez_conn_id)
        try:
            run, query = await hook.alatest_task_run(pc.dag_id, pc.task_id or "", pc.run_id)
        except Exception as exc:
            # MarquezUnavailable or a missing connection: undecided, never a violation.
            return check_lineage(pc, None, query=f"Marquez ({pc.conn_id})", error=str(exc))
        return check_lineage(pc, run, query=query)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        deadline = datetime.fromisoformat(self.timeout_at) if self.timeout_at else None
        await self._sleep(self.first_check_after, deadline)
        while True:
            results = await self.check()
            done = all(r.status == "PASS" for r in results)
            if done or (deadline is not None and datetime.now(timezone.utc) >= deadline):
                yield TriggerEvent(
                    {
                        "status": "pass" if done else "timeout",
                        "results": [r.model_dump(mode="json") for r in results],
                    }
                )
                return
            self.log.info(
                "faultcat: postconditions not yet met: %s",
                "; ".join(
                    f"{r.postcondition.target or r.postcondition.task_id}: {r.reason}"
                    for r in results
                    if r.status != "PASS"
                ),
            )
            await self._sleep(self.poke_interval, deadline)

    @staticmethod
    async def _sleep(seconds: float, deadline: datetime | None) -> None:
        """Sleep ``seconds``, but never past ``deadline``."""
        if deadline is not None:
            seconds = min(seconds, (deadline - datetime.now(timezone.utc)).total_seconds())
        if seconds > 0:
            await asyncio.sleep(seconds)
