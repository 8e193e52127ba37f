"""Shadow errors: check the postconditions of many successful DagRuns in bulk.

:class:`ShadowScanner` gathers what :mod:`airflow_faultcat.core.shadow` judges, with a number of
calls that grows with pages, not with DagRuns: one paged batch list of TaskInstances for all the
DagRuns, one ``GET /dags/{dag_id}/tasks`` per Dag, one paged ``GET /assets`` for the ``libvirt://``
outlets, one bulk libvirt call per host, and one paged Marquez run list per job.
:class:`ShadowScanOperator` runs it over the DagRuns that succeeded since the last scan (the
``faultcat_shadow_scan`` DAG), persists fire/clear transitions in Redis, and hands each new
violation to the recovery DAG.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import BaseOperator

from airflow_faultcat import conf
from airflow_faultcat.core.models import DomainSnapshot, FailureContext
from airflow_faultcat.core.shadow import (
    LIBVIRT_SCHEME,
    CheckResult,
    Postcondition,
    PostconditionRule,
    Transitions,
    check_key,
    check_lineage,
    check_tasks,
    check_vms,
    coverage,
    load_postcondition_rules,
    parse_time,
    postconditions_for,
    transitions,
)
from airflow_faultcat.failures import OWN_DAG_PREFIX

#: TaskInstances asked for per batch call (the API's default ``maximum_page_limit``).
PAGE_LIMIT = 100
#: DagRun ids sent in one TaskInstance batch request (keeps the request body small).
RUN_IDS_PER_REQUEST = 500
#: How long the open violations and the watermark live in Redis without a scan (seconds).
STATE_TTL = 30 * 24 * 3600
#: Extra Marquez runs listed per job beyond the DagRuns looked up (runs that started since).
MARQUEZ_MARGIN = 100
#: How much earlier than its DagRun's start a Marquez run may have been created (clock skew).
LINEAGE_CLOCK_SKEW = timedelta(minutes=10)


def _run_id(dag_run: dict[str, Any]) -> str:
    return dag_run.get("dag_run_id") or dag_run.get("run_id") or ""


@dataclass
class ScanReport:
    """What one bulk check found.

    :param results: one verdict per postcondition.
    :param problems: declarations that could not be used (a template that does not render...).
    :param sources: each source (``libvirt:<conn_id>``, ``marquez:<conn_id>``, ``airflow``) and
        ``ok`` or the error that made its checks UNAVAILABLE.
    :param task_instances: the TaskInstances read, by (dag_id, run_id).
    """

    results: list[CheckResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    task_instances: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)


class ShadowScanner:
    """Checks the postconditions of many DagRuns with bulk calls.

    :param api: an :class:`~airflow_faultcat.hooks.airflow_api.AirflowApiHook`.
    :param rules: postcondition rules (the YAML file).
    :param lineage_default: whether lineage is expected when no rule says.
    :param marquez_conn_id: the Marquez connection for lineage checks.
    :param libvirt_snapshot: conn_id -> :class:`DomainSnapshot` (default: :class:`LibvirtHook`).
    :param marquez_hook: conn_id -> a :class:`~airflow_faultcat.hooks.marquez.MarquezHook`.
    """

    def __init__(
        self,
        api: Any,
        *,
        rules: Iterable[PostconditionRule] = (),
        lineage_default: bool = False,
        marquez_conn_id: str = "marquez_default",
        libvirt_snapshot: Callable[[str], DomainSnapshot] | None = None,
        marquez_hook: Callable[[str], Any] | None = None,
    ) -> None:
        self.api = api
        self.rules = list(rules)
        self.lineage_default = lineage_default
        self.marquez_conn_id = marquez_conn_id
        self._libvirt_snapshot = libvirt_snapshot or _libvirt_snapshot
        self._marquez_hook = marquez_hook or _marquez_hook

    def check(self, dag_runs: Sequence[dict[str, Any]]) -> ScanReport:
        """Check every postcondition of ``dag_runs`` (REST API DagRun dicts).

        Never raises for an unreachable source: its checks are UNAVAILABLE and ``sources`` says why.
        """
        from airflow_faultcat.hooks.airflow_api import AirflowApiError

        report = ScanReport()
        if not dag_runs:
            return report
        wanted = {(r["dag_id"], _run_id(r)) for r in dag_runs}
        api_error: str | None = None
        tis: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        tasks: dict[str, dict[str, dict[str, Any]] | None] = {}
        outlets: dict[str, list[tuple[str, str]]] = defaultdict(list)
        try:
            run_ids = sorted({run_id for _, run_id in wanted})
            dag_ids = sorted({dag_id for dag_id, _ in wanted})
            for start in range(0, len(run_ids), RUN_IDS_PER_REQUEST):
                chunk = run_ids[start : start + RUN_IDS_PER_REQUEST]
                for page in self.api.iter_task_instances_batch(chunk, dag_ids=dag_ids, page_limit=PAGE_LIMIT):
                    for ti in page:
                        key = (ti.get("dag_id"), ti.get("dag_run_id") or ti.get("run_id"))
                        if key in wanted:
                            tis[key].append(ti)
            for asset in self.api.list_assets(f"{LIBVIRT_SCHEME}://"):
                for producer in asset.get("producing_tasks") or []:
                    outlets[producer["dag_id"]].append((producer["task_id"], asset["uri"]))
        except AirflowApiError as exc:
            api_error = str(exc)
        for dag_id in sorted({dag_id for dag_id, _ in wanted}):
            if api_error is not None:
                tasks[dag_id] = None
                continue
            try:
                tasks[dag_id] = self.api.list_tasks(dag_id)
            except AirflowApiError as exc:
                tasks[dag_id] = None
                report.problems.append(f"{dag_id}: tasks unavailable: {exc}")
        report.sources["airflow"] = api_error or "ok"
        report.task_instances = dict(tis)

        planned: list[tuple[Postcondition, dict[str, Any]]] = []
        for dag_run in dag_runs:
            key = (dag_run["dag_id"], _run_id(dag_run))
            states = {t["task_id"]: t.get("state") for t in tis.get(key, [])}
            # An outlet promises its VM only when its task succeeded in this run (not skipped).
            declared = [(t, uri) for t, uri in outlets.get(key[0], []) if states.get(t) == "success"]
            pcs, problems = postconditions_for(
                dag_run, self.rules, outlets=declared, lineage_default=self.lineage_default
            )
            report.problems.extend(problems)
            planned.extend((pc, dag_run) for pc in pcs)

        report.results.extend(self._check_tasks(planned, tis, tasks, api_error))
        report.results.extend(self._check_vms(planned, report.sources))
        report.results.extend(self._check_lineage(planned, tis, report.sources))
        return report

    # -- one source at a time -------------------------------------------------------------------
    @staticmethod
    def _check_tasks(
        planned: list[tuple[Postcondition, dict[str, Any]]],
        tis: dict[tuple[str, str], list[dict[str, Any]]],
        tasks: dict[str, dict[str, dict[str, Any]] | None],
        api_error: str | None,
    ) -> list[CheckResult]:
        out = []
        for pc, dag_run in planned:
            if pc.kind != "tasks_healthy":
                continue
            dag_tasks = tasks.get(pc.dag_id)
            ti_list = None if api_error else tis.get((pc.dag_id, pc.run_id), [])
            error = api_error or (None if dag_tasks is not None else "the Dag's tasks could not be read")
            out.append(check_tasks(pc, dag_run, ti_list, dag_tasks, error=error))
        return out

    def _check_vms(
        self, planned: list[tuple[Postcondition, dict[str, Any]]], sources: dict[str, str]
    ) -> list[CheckResult]:
        vm_pcs = [pc for pc, _ in planned if pc.kind == "vm_running"]
        return check_vms(vm_pcs, self._libvirt_snapshot, sources)

    def _check_lineage(
        self,
        planned: list[tuple[Postcondition, dict[str, Any]]],
        tis: dict[tuple[str, str], list[dict[str, Any]]],
        sources: dict[str, str],
    ) -> list[CheckResult]:
        lineage = [(pc, dr) for pc, dr in planned if pc.kind == "lineage"]
        if not lineage:
            return []
        by_conn: dict[str, list[tuple[Postcondition, dict[str, Any]]]] = defaultdict(list)
        for pc, dag_run in lineage:
            by_conn[pc.conn_id or self.marquez_conn_id].append((pc, dag_run))
        out = []
        for conn_id, items in by_conn.items():
            try:
                hook = self._marquez_hook(conn_id)
            except Exception as exc:
                sources[f"marquez:{conn_id}"] = str(exc)
                out.extend(check_lineage(pc, None, error=str(exc)) for pc, _ in items)
                continue
            try:
                out.extend(self._check_lineage_on(hook, items, tis))
                sources[f"marquez:{conn_id}"] = "ok"
            except Exception as exc:
                # MarquezUnavailable, or a broken connection: undecided, never a violation.
                sources[f"marquez:{conn_id}"] = str(exc)
                out.extend(check_lineage(pc, None, error=str(exc)) for pc, _ in items)
            finally:
                hook.close()
        return out

    @staticmethod
    def _check_lineage_on(
        hook: Any,
        items: list[tuple[Postcondition, dict[str, Any]]],
        tis: dict[tuple[str, str], list[dict[str, Any]]],
    ) -> list[CheckResult]:
        per_dag: dict[str, int] = defaultdict(int)
        per_task: dict[tuple[str, str], int] = defaultdict(int)
        since: dict[str, datetime] = {}
        for pc, dag_run in items:
            per_dag[pc.dag_id] += 1
            # A DagRun rechecked from an earlier window may be older than the newest runs listed:
            # list each job back to its oldest DagRun's start.
            started = parse_time(dag_run.get("start_date") or dag_run.get("run_after"))
            if started is not None:
                started -= LINEAGE_CLOCK_SKEW
                since[pc.dag_id] = min(since.get(pc.dag_id, started), started)
            for ti in tis.get((pc.dag_id, pc.run_id), []):
                if ti.get("state") == "success":
                    per_task[(pc.dag_id, ti["task_id"])] += 1
        dag_index = {
            d: hook.dag_run_index(d, limit=n + MARQUEZ_MARGIN, since=since.get(d)) for d, n in per_dag.items()
        }
        task_index = {
            k: hook.task_run_index(k[0], k[1], limit=n + MARQUEZ_MARGIN, since=since.get(k[0]))
            for k, n in per_task.items()
        }
        out = []
        for pc, _ in items:
            runs, query = dag_index[pc.dag_id]
            task_runs: dict[str, dict[str, Any] | None] = {}
            for ti in tis.get((pc.dag_id, pc.run_id), []):
                if ti.get("state") != "success":
                    continue
                index, _q = task_index[(pc.dag_id, ti["task_id"])]
                map_index = ti.get("map_index")
                map_index = -1 if map_index is None else int(map_index)
                name = ti["task_id"] if map_index < 0 else f"{ti['task_id']}[{map_index}]"
                task_runs[name] = index.get((pc.run_id, int(ti.get("try_number") or 0), map_index))
            out.append(check_lineage(pc, runs.get(pc.run_id), task_runs=task_runs, query=query))
        return out


def _libvirt_snapshot(conn_id: str) -> DomainSnapshot:
    from airflow_faultcat.hooks.libvirt import snapshot_of

    return snapshot_of(conn_id)


def _marquez_hook(conn_id: str) -> Any:
    from airflow_faultcat.hooks.marquez import MarquezHook

    return MarquezHook(conn_id)


# -- handing a violation to the recovery DAG --------------------------------------------------


def subject_task(result: CheckResult, task_instances: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The TaskInstance a violation is about: the failed task of a state mismatch, the task that
    declared the VM, else the task that ended last (whose log shows how the run ended)."""
    by_id = {t["task_id"]: t for t in task_instances}
    if result.violation == "state_mismatch":
        allowed = result.observed_state.get("allowed_by") or {}
        for failed in result.observed_state.get("failed") or []:
            if failed["task_id"] not in allowed and failed["task_id"] in by_id:
                return by_id[failed["task_id"]]
    if result.postcondition.task_id in by_id:
        return by_id[result.postcondition.task_id]
    ended = [t for t in task_instances if t.get("end_date")]
    return max(ended, key=lambda t: str(t["end_date"])) if ended else None


def shadow_message(result: CheckResult) -> str:
    """``ShadowError: <violation>: <reason>`` plus what was declared and observed (one line)."""
    pc = result.postcondition
    target = f" {pc.target!r}" if pc.target else ""
    by = f" by task {pc.task_id}" if pc.task_id else ""
    return (
        f"ShadowError: {result.violation}: {result.reason} "
        f"(postcondition {pc.kind}{target}, declared {pc.declared_by}{by}; "
        f"observed {result.observed_state}; query {result.query})"
    )


def shadow_failure(result: CheckResult, task_instances: list[dict[str, Any]]) -> FailureContext:
    """The STATE_MISMATCH FailureContext of one violation, for the recovery DAG's conf."""
    pc = result.postcondition
    ti = subject_task(result, task_instances) or {}
    return FailureContext(
        dag_id=pc.dag_id,
        run_id=pc.run_id,
        task_id=ti.get("task_id") or pc.task_id or "",
        map_index=int(ti.get("map_index") if ti.get("map_index") is not None else -1),
        try_number=max(1, int(ti.get("try_number") or 1)),
        max_tries=ti.get("max_tries"),
        exception_type="airflow_faultcat.exceptions.ShadowError",
        exception_message=shadow_message(result),
        hostname=ti.get("hostname") or None,
        captured_at=datetime.now(timezone.utc),
        extra={"shadow": result.model_dump(mode="json"), "shadow_key": check_key(result)},
    )


def shadow_recovery_run_id(result: CheckResult) -> str:
    """The recovery DagRun id of one violation: the same violation, the same id (a repeat is a 409)."""
    digest = hashlib.sha256(check_key(result).encode()).hexdigest()[:12]
    pc = result.postcondition
    return f"faultcat__shadow.{result.violation}.{pc.dag_id}"[:200] + f"__{digest}"


def summary_table(results: Sequence[CheckResult], trans: Transitions | None = None) -> str:
    """A fixed-width table of the verdicts for the task log: one row per postcondition."""
    fired = {check_key(r) for r in (trans.fired if trans else [])}
    cleared = set(trans.cleared if trans else [])
    rows = [("STATUS", "CHECK", "DAG_ID", "RUN_ID", "TARGET", "TRANSITION", "REASON")]
    for r in sorted(results, key=lambda r: (r.status != "VIOLATION", r.status, r.postcondition.dag_id)):
        key = check_key(r)
        change = "fired" if key in fired else "cleared" if key in cleared else ""
        pc = r.postcondition
        rows.append(
            (r.status, r.violation or pc.kind, pc.dag_id, pc.run_id, pc.target or "", change, r.reason[:100])
        )
    widths = [min(60, max(len(str(row[i])) for row in rows)) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [str(c)[:w].ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, str(row[-1])]))
    return "\n".join(lines)


class ShadowScanOperator(BaseOperator):
    """Check every DagRun that succeeded since the last scan; alert once per new violation.

    The window starts where the previous complete scan ended (kept in Redis; a missed schedule is
    caught up, never skipped) and ends ``settle_seconds`` ago, so that lineage emitted at a run's
    end has arrived. Open violations are checked again each scan: a fixed one clears, an unchanged
    one is not alerted again, and one whose source is unreachable stays as it was. Each new
    violation triggers the recovery DAG with a STATE_MISMATCH FailureContext (its evidence bundle
    is written there).

    :param faultcat_api_conn_id: the ``faultcat_api`` connection (DagRuns, TaskInstances, assets).
    :param redis_conn_id: where the window and the open violations live (default
        ``[faultcat] redis_conn_id``).
    :param marquez_conn_id: the Marquez connection (default ``[faultcat] marquez_conn_id``).
    :param postconditions_path: the postconditions YAML file (default
        ``[faultcat] shadow_postconditions``); a broken file fails the scan with the problems listed.
    :param lineage: whether lineage is expected by default (``None``: ``[faultcat] shadow_lineage``).
    :param dag_ids: only these Dags (default: all but faultcat's own). A scan of some Dags keeps
        its own window and open violations. The Dag params ``dag_ids`` and ``settle_seconds`` of a
        manual trigger override these arguments.
    :param settle_seconds: DagRuns that ended less than this many seconds ago wait for the next scan.
    :param first_scan_seconds: how far back the first scan looks, in seconds.
    :param trigger_recovery: whether new violations trigger the recovery DAG.
    :param recovery_dag_id: that DAG (default ``[faultcat] recovery_dag_id``).
    :return: ``{"window": [start, end], "dag_runs": int, "coverage": {...}, "fired": [...],
        "cleared": [...], "still_open": [...], "undecided": [...], "sources": {...},
        "problems": [...], "results": [...]}``.
    """

    template_fields: Sequence[str] = ("postconditions_path", "dag_ids")

    def __init__(
        self,
        *,
        faultcat_api_conn_id: str = "faultcat_api_default",
        redis_conn_id: str | None = None,
        marquez_conn_id: str | None = None,
        postconditions_path: str | None = None,
        lineage: bool | None = None,
        dag_ids: list[str] | None = None,
        settle_seconds: float = 120,
        first_scan_seconds: float = 24 * 3600,
        trigger_recovery: bool = True,
        recovery_dag_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.faultcat_api_conn_id = faultcat_api_conn_id
        self.redis_conn_id = redis_conn_id
        self.marquez_conn_id = marquez_conn_id
        self.postconditions_path = postconditions_path
        self.lineage = lineage
        self.dag_ids = dag_ids
        self.settle_seconds = settle_seconds
        self.first_scan_seconds = first_scan_seconds
        self.trigger_recovery = trigger_recovery
        self.recovery_dag_id = recovery_dag_id

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow_faultcat.hooks.airflow_api import AirflowApiError, AirflowApiHook
        from airflow_faultcat.hooks.state import FaultcatStateHook

        started = time.monotonic()
        self._apply_params(context.get("params") or {})
        # A scan of some Dags keeps its own window and open violations.
        scope = "shadow" if not self.dag_ids else "shadow:" + ",".join(sorted(self.dag_ids))
        path = self.postconditions_path if self.postconditions_path is not None else _raw_path()
        rules = load_postcondition_rules(path) if path else []
        lineage = self.lineage if self.lineage is not None else conf.shadow_lineage_expected()
        state = FaultcatStateHook(self.redis_conn_id or conf.get_str("redis_conn_id"))
        api = AirflowApiHook(self.faultcat_api_conn_id, timeout=60)
        try:
            now = datetime.now(timezone.utc)
            end = now - timedelta(seconds=self.settle_seconds)
            mark = parse_time(state.scan_watermark(scope))
            start = mark or end - timedelta(seconds=self.first_scan_seconds)
            dag_runs = self._dag_runs(api, start, end)
            open_violations = state.open_violations(scope)
            recheck, gone = self._recheck(api, open_violations, {(r["dag_id"], _run_id(r)) for r in dag_runs})
            scanner = ShadowScanner(
                api,
                rules=rules,
                lineage_default=lineage,
                marquez_conn_id=self.marquez_conn_id or conf.get_str("marquez_conn_id"),
            )
            report = scanner.check(dag_runs + recheck)
            trans = transitions(open_violations, report.results)
            trans.cleared.extend(gone)
            fired: dict[str, dict[str, Any]] = {}
            for result in trans.fired:
                key = check_key(result)
                fired[key] = self._fire(api, result, report)
            state.apply_transitions(fired, trans.cleared, STATE_TTL, scope)
            # Only a scan that got this far moves the window: a failed scan is redone in full.
            if end > (mark or start):
                state.set_scan_watermark(end.isoformat(), STATE_TTL, scope)
        except AirflowApiError as exc:
            raise AirflowApiError(f"faultcat shadow scan: DagRuns could not be listed: {exc}") from exc
        finally:
            api.close()
        cov = coverage(report.results)
        self.log.info(
            "faultcat: shadow scan of %d DagRuns (%s .. %s) + %d rechecked: %d checks, %d violations "
            "(%d new, %d cleared), %d unavailable, coverage %.0f%%, %.2f s\n%s",
            len(dag_runs),
            start.isoformat(),
            end.isoformat(),
            len(recheck),
            cov.checked,
            cov.violations,
            len(trans.fired),
            len(trans.cleared),
            cov.unavailable,
            cov.ratio * 100,
            time.monotonic() - started,
            summary_table(report.results, trans),
        )
        for source, status in report.sources.items():
            if status != "ok":
                self.log.warning("faultcat: %s unavailable: %s", source, status)
        for problem in report.problems:
            self.log.warning("faultcat: postcondition: %s", problem)
        return {
            "window": [start.isoformat(), end.isoformat()],
            "dag_runs": len(dag_runs),
            "rechecked": len(recheck),
            "coverage": cov.model_dump(mode="json"),
            "fired": [{"key": k, **v} for k, v in fired.items()],
            "cleared": trans.cleared,
            "still_open": trans.still_open,
            "undecided": trans.undecided,
            "sources": report.sources,
            "problems": report.problems,
            "results": [r.model_dump(mode="json") for r in report.results],
        }

    def _apply_params(self, params: Any) -> None:
        """A manual trigger's ``dag_ids`` and ``settle_seconds`` params override the arguments."""
        dag_ids = params.get("dag_ids")
        if dag_ids:
            if not isinstance(dag_ids, list) or not all(isinstance(d, str) for d in dag_ids):
                raise ValueError(f"param dag_ids must be a list of Dag ids, got {dag_ids!r}")
            self.dag_ids = dag_ids
        settle = params.get("settle_seconds")
        if settle is not None:
            self.settle_seconds = float(settle)

    def _dag_runs(self, api: Any, start: datetime, end: datetime) -> list[dict[str, Any]]:
        runs = []
        for page in api.iter_dag_runs_batch(
            states=["success"],
            dag_ids=self.dag_ids or None,
            end_date_gte=start.isoformat(),
            end_date_lt=end.isoformat(),
        ):
            runs.extend(r for r in page if not r["dag_id"].startswith(OWN_DAG_PREFIX))
        return runs

    @staticmethod
    def _recheck(
        api: Any, open_violations: dict[str, dict[str, Any]], in_window: set[tuple[str, str]]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """DagRuns with open violations, read again; keys of violations whose run is gone or no
        longer claims success (nothing left to be wrong about)."""
        from airflow_faultcat.hooks.airflow_api import AirflowApiError

        runs: dict[tuple[str, str], dict[str, Any] | None] = {}
        gone = []
        for key, record in open_violations.items():
            run = (record.get("dag_id"), record.get("run_id"))
            if not all(run) or run in in_window:
                continue
            if run not in runs:
                try:
                    runs[run] = api.get_dag_run(*run)
                except AirflowApiError as exc:
                    runs[run] = None if exc.status_code == 404 else {"error": str(exc)}
            found = runs[run]
            if found is None or ("error" not in found and found.get("state") != "success"):
                gone.append(key)
        return [r for r in runs.values() if r and "error" not in r and r.get("state") == "success"], gone

    def _fire(self, api: Any, result: CheckResult, report: ScanReport) -> dict[str, Any]:
        """Record a new violation, and hand it to the recovery DAG."""
        from airflow_faultcat.hooks.airflow_api import AirflowApiError

        pc = result.postcondition
        record: dict[str, Any] = {
            "dag_id": pc.dag_id,
            "run_id": pc.run_id,
            "violation": result.violation,
            "reason": result.reason,
            "observed_state": result.observed_state,
            "query": result.query,
            "fired_at": datetime.now(timezone.utc).isoformat(),
        }
        self.log.warning("faultcat: shadow error in %s %s: %s", pc.dag_id, pc.run_id, shadow_message(result))
        if not self.trigger_recovery:
            return record
        failure = shadow_failure(result, report.task_instances.get((pc.dag_id, pc.run_id), []))
        run_id = shadow_recovery_run_id(result)
        dag_id = self.recovery_dag_id or conf.recovery_dag_id()
        try:
            api.trigger_dag_run(dag_id, run_id, failure.model_dump(mode="json", exclude_none=True))
            record["recovery_run_id"] = run_id
        except AirflowApiError as exc:
            # The violation stays recorded (and in the summary); only the hand-off failed.
            record["recovery_error"] = str(exc)
            self.log.warning("faultcat: could not trigger %s for %s: %s", dag_id, pc.dag_id, exc)
        return record


def _raw_path() -> str:
    return conf.get_str("shadow_postconditions")
