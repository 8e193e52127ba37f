"""Shadow errors: what a successful DagRun promised, checked against what the sources observed.

Pure: the hooks observe (a libvirt :class:`DomainSnapshot`, the REST API's DagRun and
TaskInstances, Marquez runs) and this module judges. Every check answers ``PASS``, ``VIOLATION``
or ``UNAVAILABLE`` (the source could not be read: never a violation, never a pass) with the state
it saw and the query that saw it.

Postconditions are declared three ways: task outlets with the asset URI
``libvirt://<conn_id>/<domain>`` ("this task creates this VM, and it runs"); a YAML file for Dags
the user cannot edit (:func:`load_postcondition_rules`); or sensor arguments.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airflow_faultcat.core.models import DomainSnapshot
from airflow_faultcat.core.safe_yaml import UnsafeYamlError, load_yaml_file

CheckStatus = Literal["PASS", "VIOLATION", "UNAVAILABLE"]
Violation = Literal[
    "vm_not_created", "vm_not_running", "lineage_missing", "lineage_incomplete", "state_mismatch"
]

#: The asset URI scheme of a VM postcondition: ``libvirt://<conn_id>/<domain>``.
LIBVIRT_SCHEME = "libvirt"
#: Trigger rules under which a task runs although an upstream task failed.
_RUNS_AFTER_FAILURE = frozenset(
    {
        "all_done",
        "all_failed",
        "one_failed",
        "one_done",
        "one_success",
        "none_skipped",
        "always",
        "all_done_min_one_success",
        "all_done_setup_success",
    }
)
#: The trigger rule Airflow gives teardown tasks.
TEARDOWN_RULE = "all_done_setup_success"
_FAILED = frozenset({"failed", "upstream_failed"})
T = TypeVar("T")


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp as the REST API writes it (``Z`` or an offset) or a datetime; ``None``
    when empty or unreadable."""
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Postcondition(_Model):
    """What one successful DagRun promised.

    :param kind: ``vm_running`` (a libvirt domain exists and runs), ``lineage`` (the DagRun's
        OpenLineage run is in Marquez and complete) or ``tasks_healthy`` (no TaskInstance of a
        successful DagRun failed without a rule that allows it).
    :param dag_id: the Dag.
    :param run_id: the DagRun.
    :param conn_id: the connection of the source (``libvirt_default``, ``marquez_default``).
    :param target: what is checked, e.g. the domain name.
    :param declared_by: ``outlet``, ``yaml``, ``sensor`` or ``default``.
    :param task_id: the task that declared it, for an outlet.
    """

    kind: Literal["vm_running", "lineage", "tasks_healthy"]
    dag_id: str
    run_id: str
    conn_id: str | None = None
    target: str | None = None
    declared_by: Literal["outlet", "yaml", "sensor", "default"] = "default"
    task_id: str | None = None


class CheckResult(_Model):
    """The verdict on one postcondition.

    :param status: ``PASS``, ``VIOLATION`` or ``UNAVAILABLE``.
    :param violation: which violation, when ``status`` is ``VIOLATION``.
    :param observed_state: what the source showed (e.g. ``{"state": "shutoff"}``).
    :param query: the call or query that showed it.
    :param reason: one sentence: why this verdict (for a state mismatch, which rule decided).
    """

    postcondition: Postcondition
    status: CheckStatus
    violation: Violation | None = None
    observed_state: dict[str, Any] = Field(default_factory=dict)
    query: str = ""
    reason: str


class Coverage(_Model):
    """How many postconditions were actually decided."""

    checked: int = 0
    passed: int = 0
    violations: int = 0
    unavailable: int = 0
    ratio: float = Field(default=1.0, ge=0.0, le=1.0)


def coverage(results: Iterable[CheckResult]) -> Coverage:
    """Count the verdicts; ``ratio`` is the share decided (PASS or VIOLATION), 1.0 when none ran."""
    out = Coverage()
    for result in results:
        out.checked += 1
        if result.status == "PASS":
            out.passed += 1
        elif result.status == "VIOLATION":
            out.violations += 1
        else:
            out.unavailable += 1
    out.ratio = round((out.passed + out.violations) / out.checked, 4) if out.checked else 1.0
    return out


# -- declarations -----------------------------------------------------------------------------


def parse_libvirt_asset(uri: str) -> tuple[str, str]:
    """Split an outlet URI ``libvirt://<conn_id>/<domain>`` into (conn_id, domain).

    :raises ValueError: when the URI is not of that form, naming what is wrong.
    """
    parts = urlsplit(uri)
    if parts.scheme != LIBVIRT_SCHEME:
        raise ValueError(f"{uri!r}: the scheme must be {LIBVIRT_SCHEME}://")
    domain = unquote(parts.path.lstrip("/"))
    if not parts.netloc or not domain or "/" in domain:
        raise ValueError(f"{uri!r}: expected {LIBVIRT_SCHEME}://<conn_id>/<domain>")
    return parts.netloc, domain


class VmRule(_Model):
    """A VM a matching DagRun must leave running: ``name`` may be a Jinja template."""

    name: str
    conn_id: str = "libvirt_default"


class PostconditionRule(_Model):
    """One entry of the postconditions YAML file.

    :param dag_id: a regular expression (RE2 syntax, whole id) the Dag's id must match.
    :param vms: VMs each successful DagRun must leave running.
    :param lineage: whether lineage is expected (``None``: the default, expected when the
        OpenLineage provider is enabled).
    """

    dag_id: str
    vms: list[VmRule] = Field(default_factory=list)
    lineage: bool | None = None


class PostconditionFileError(ValueError):
    """A postconditions file is broken; the message names the file, the entry and the problem."""


def load_postcondition_rules(path: str | Path) -> list[PostconditionRule]:
    """Read a postconditions YAML file: a list of :class:`PostconditionRule` mappings.

    :raises PostconditionFileError: naming the file, the entry index and every problem found.
    """
    import re2

    path = Path(path)
    try:
        doc = load_yaml_file(path)
    except UnsafeYamlError as exc:
        raise PostconditionFileError(str(exc)) from None
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise PostconditionFileError(f"{path}: expected a list of rules, got {type(doc).__name__}")
    rules, problems = [], []
    for index, entry in enumerate(doc):
        try:
            rule = PostconditionRule.model_validate(entry)
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "entry"
                problems.append(f"{path}: rule {index}: {where}: {err['msg']}")
            continue
        try:
            re2.compile(rule.dag_id)
        except re2.error as exc:
            problems.append(f"{path}: rule {index}: dag_id {rule.dag_id!r} is not a valid pattern: {exc}")
            continue
        rules.append(rule)
    if problems:
        raise PostconditionFileError("\n".join(problems))
    return rules


@functools.lru_cache(maxsize=256)
def _compiled(template: str) -> Any:
    """A template compiled once in one sandboxed, strict environment (a scan renders thousands)."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return _sandbox(StrictUndefined, SandboxedEnvironment).from_string(template)


@functools.lru_cache(maxsize=1)
def _sandbox(undefined: Any, environment: Any) -> Any:
    return environment(undefined=undefined, autoescape=False)


def render_name(template: str, conf: Mapping[str, Any], dag_run: Mapping[str, Any] | None = None) -> str:
    """Render a VM name template such as ``{{ params.vm_name }}`` from a DagRun's conf.

    Sandboxed and strict: an undefined value raises rather than rendering an empty name.

    :param template: the template.
    :param conf: the DagRun's conf (available as ``params`` and ``conf``).
    :param dag_run: the DagRun as the REST API returns it (available as ``dag_run``).
    :raises ValueError: when the template is broken or names an undefined value.
    """
    from jinja2 import TemplateError

    try:
        name = _compiled(template).render(params=dict(conf), conf=dict(conf), dag_run=dict(dag_run or {}))
    except TemplateError as exc:
        raise ValueError(f"VM name {template!r}: {exc}") from None
    name = name.strip()
    if not name:
        raise ValueError(f"VM name {template!r} rendered empty")
    return name


def postconditions_for(
    dag_run: Mapping[str, Any],
    rules: Iterable[PostconditionRule],
    *,
    outlets: Iterable[tuple[str, str]] = (),
    lineage_default: bool = False,
) -> tuple[list[Postcondition], list[str]]:
    """The postconditions of one successful DagRun.

    :param dag_run: the DagRun as the REST API returns it (``dag_id``, ``dag_run_id``, ``conf``).
    :param rules: the YAML rules; those whose ``dag_id`` pattern matches apply.
    :param outlets: (task_id, asset URI) of the Dag's tasks; ``libvirt://`` ones become VM checks.
    :param lineage_default: whether lineage is expected when no rule says (OpenLineage enabled).
    :return: the postconditions (always ``tasks_healthy`` first) and the problems met on the way
        (a template that does not render is reported, not raised).
    """
    import re2

    dag_id, run_id = dag_run["dag_id"], dag_run.get("dag_run_id") or dag_run.get("run_id")
    conf = dag_run.get("conf") or {}
    out = [Postcondition(kind="tasks_healthy", dag_id=dag_id, run_id=run_id, target="all TaskInstances")]
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for task_id, uri in outlets:
        if not uri.startswith(f"{LIBVIRT_SCHEME}://"):
            continue
        try:
            conn_id, domain = parse_libvirt_asset(uri)
        except ValueError as exc:
            problems.append(f"{dag_id}.{task_id}: outlet {exc}")
            continue
        if (conn_id, domain) not in seen:
            seen.add((conn_id, domain))
            out.append(
                Postcondition(
                    kind="vm_running",
                    dag_id=dag_id,
                    run_id=run_id,
                    conn_id=conn_id,
                    target=domain,
                    declared_by="outlet",
                    task_id=task_id,
                )
            )
    lineage = None
    for rule in rules:
        if not re2.fullmatch(rule.dag_id, dag_id):
            continue
        if rule.lineage is not None:
            lineage = rule.lineage
        for vm in rule.vms:
            try:
                domain = render_name(vm.name, conf, dag_run)
            except ValueError as exc:
                problems.append(f"{dag_id} {run_id}: {exc}")
                continue
            if (vm.conn_id, domain) not in seen:
                seen.add((vm.conn_id, domain))
                out.append(
                    Postcondition(
                        kind="vm_running",
                        dag_id=dag_id,
                        run_id=run_id,
                        conn_id=vm.conn_id,
                        target=domain,
                        declared_by="yaml",
                    )
                )
    if lineage if lineage is not None else lineage_default:
        out.append(Postcondition(kind="lineage", dag_id=dag_id, run_id=run_id, conn_id="marquez_default"))
    return out, problems


# -- checks -----------------------------------------------------------------------------------


def check_vm(pc: Postcondition, snapshot: DomainSnapshot | None, error: str | None = None) -> CheckResult:
    """A VM postcondition against one libvirt snapshot (``None`` with ``error``: unreachable)."""
    if snapshot is None:
        return CheckResult(
            postcondition=pc,
            status="UNAVAILABLE",
            query=f"libvirt ({pc.conn_id})",
            reason=f"libvirt could not be read: {error or 'unknown error'}",
        )
    domain = snapshot.domains.get(pc.target or "")
    if domain is None:
        return CheckResult(
            postcondition=pc,
            status="VIOLATION",
            violation="vm_not_created",
            observed_state={"exists": False, "domains": len(snapshot.domains)},
            query=f"{snapshot.query} on {snapshot.uri}",
            reason=f"no domain named {pc.target!r} on {snapshot.uri}",
        )
    observed = {"exists": True, "state": domain.state, "reason": domain.reason, "uuid": domain.uuid}
    if domain.state == "running":
        return CheckResult(
            postcondition=pc,
            status="PASS",
            observed_state=observed,
            query=f"{snapshot.query} on {snapshot.uri}",
            reason=f"{pc.target!r} is running",
        )
    return CheckResult(
        postcondition=pc,
        status="VIOLATION",
        violation="vm_not_running",
        observed_state=observed,
        query=f"{snapshot.query} on {snapshot.uri}",
        reason=f"{pc.target!r} exists but is {domain.state}",
    )


def check_vms(
    pcs: Iterable[Postcondition],
    snapshot_of: Callable[[str], DomainSnapshot],
    sources: dict[str, str] | None = None,
) -> list[CheckResult]:
    """VM postconditions against one snapshot per libvirt connection, each read once.

    :param pcs: ``vm_running`` postconditions.
    :param snapshot_of: conn_id -> :class:`DomainSnapshot`; whatever it raises (unreachable host,
        missing connection, no libvirt-python) makes that host's checks UNAVAILABLE.
    :param sources: filled with ``libvirt:<conn_id>`` -> ``ok`` or the error.
    """
    pcs = list(pcs)
    snapshots: dict[str, tuple[DomainSnapshot | None, str | None]] = {}
    for conn_id in sorted({pc.conn_id or "libvirt_default" for pc in pcs}):
        try:
            snapshots[conn_id] = (snapshot_of(conn_id), None)
        except Exception as exc:
            # Any failure to read the host leaves its VMs undecided, never a violation.
            snapshots[conn_id] = (None, str(exc))
        if sources is not None:
            sources[f"libvirt:{conn_id}"] = snapshots[conn_id][1] or "ok"
    return [check_vm(pc, *snapshots[pc.conn_id or "libvirt_default"]) for pc in pcs]


def check_tasks(
    pc: Postcondition,
    dag_run: Mapping[str, Any],
    task_instances: Iterable[Mapping[str, Any]] | None,
    tasks: Mapping[str, Mapping[str, Any]] | None,
    error: str | None = None,
) -> CheckResult:
    """A successful DagRun with failed TaskInstances, unless a rule makes that legitimate.

    Legitimate: a failed teardown task (trigger rule ``all_done_setup_success``; teardowns do not
    fail a DagRun), or a failure every one of whose downstream paths reaches a task that runs
    after failures (``all_done``, ``one_success``, ...) and that succeeded.

    :param dag_run: the DagRun (REST API shape; ``state``).
    :param task_instances: its TaskInstances (``task_id``, ``map_index``, ``state``); ``None``
        with ``error`` when they could not be read.
    :param tasks: the Dag's tasks by id (``trigger_rule``, ``downstream_task_ids``), from
        ``GET /dags/{dag_id}/tasks``.
    """
    query = f"GET /dags/{pc.dag_id}/dagRuns/{pc.run_id}/taskInstances"
    if task_instances is None or tasks is None:
        return CheckResult(
            postcondition=pc, status="UNAVAILABLE", query=query, reason=f"could not be read: {error or '?'}"
        )
    if dag_run.get("state") != "success":
        return CheckResult(
            postcondition=pc,
            status="PASS",
            observed_state={"dag_run_state": dag_run.get("state")},
            query=query,
            reason="the DagRun does not claim success",
        )
    states = {t["task_id"]: t.get("state") for t in task_instances if t.get("state")}
    failed = sorted({t["task_id"] for t in task_instances if t.get("state") in _FAILED})
    unexplained, explained = [], []
    for task_id in failed:
        rule = _legitimate(task_id, tasks, states)
        (explained if rule else unexplained).append((task_id, rule))
    observed = {
        "dag_run_state": "success",
        "failed": [{"task_id": t, "state": states.get(t)} for t in failed],
        "allowed_by": {t: r for t, r in explained},
    }
    if not unexplained:
        reason = "no TaskInstance failed" if not failed else "; ".join(f"{t}: {r}" for t, r in explained)
        return CheckResult(
            postcondition=pc, status="PASS", observed_state=observed, query=query, reason=reason
        )
    names = ", ".join(t for t, _ in unexplained)
    return CheckResult(
        postcondition=pc,
        status="VIOLATION",
        violation="state_mismatch",
        observed_state=observed,
        query=query,
        reason=f"the DagRun is success while {names} failed and no trigger rule or teardown allows it",
    )


def _legitimate(
    task_id: str, tasks: Mapping[str, Mapping[str, Any]], states: Mapping[str, Any]
) -> str | None:
    """Which rule makes the failure of ``task_id`` compatible with a successful DagRun, if any."""
    task = tasks.get(task_id) or {}
    if task.get("trigger_rule") == TEARDOWN_RULE:
        return "a teardown task; teardowns do not fail the DagRun"
    downstream = list(task.get("downstream_task_ids") or [])
    if not downstream:
        return None
    reasons = []
    for child in downstream:
        child_task = tasks.get(child) or {}
        rule = child_task.get("trigger_rule")
        if rule in _RUNS_AFTER_FAILURE and states.get(child) == "success":
            reasons.append(f"downstream {child} ran with trigger_rule {rule} and succeeded")
            continue
        if states.get(child) in _FAILED:
            deeper = _legitimate(child, tasks, states)
            if deeper:
                reasons.append(f"downstream {child}: {deeper}")
                continue
        return None
    return "; ".join(reasons)


def check_lineage(
    pc: Postcondition,
    run: Mapping[str, Any] | None,
    *,
    task_runs: Mapping[str, Mapping[str, Any] | None] | None = None,
    query: str = "",
    error: str | None = None,
) -> CheckResult:
    """The DagRun's OpenLineage run in Marquez: present, COMPLETED, with a run for every task.

    :param run: the Marquez run of the DagRun (``state``...), ``None`` when Marquez has none.
    :param task_runs: the Marquez run of each successful task, by task_id (``None``: missing).
    :param query: the Marquez call that looked.
    :param error: set when Marquez could not be read (then ``run`` is ignored).
    """
    if error is not None:
        return CheckResult(
            postcondition=pc, status="UNAVAILABLE", query=query, reason=f"Marquez could not be read: {error}"
        )
    if run is None:
        return CheckResult(
            postcondition=pc,
            status="VIOLATION",
            violation="lineage_missing",
            observed_state={"run": None},
            query=query,
            reason=(
                f"Marquez has no OpenLineage run for task {pc.task_id}"
                if pc.task_id
                else "Marquez has no OpenLineage run for this DagRun"
            ),
        )
    state = run.get("state")
    missing = sorted(t for t, r in (task_runs or {}).items() if r is None)
    observed = {"run_id": run.get("id"), "state": state, "tasks_missing": missing}
    if state != "COMPLETED" or missing:
        why = [f"the run is {state}"] if state != "COMPLETED" else []
        if missing:
            why.append(f"no task run for {', '.join(missing)}")
        return CheckResult(
            postcondition=pc,
            status="VIOLATION",
            violation="lineage_incomplete",
            observed_state=observed,
            query=query,
            reason="; ".join(why),
        )
    return CheckResult(
        postcondition=pc, status="PASS", observed_state=observed, query=query, reason="the run is COMPLETED"
    )


# -- transitions ------------------------------------------------------------------------------


def check_key(result: CheckResult) -> str:
    """A stable key of one postcondition of one DagRun (what a violation fires and clears under)."""
    pc = result.postcondition
    return "|".join([pc.kind, pc.dag_id, pc.run_id, pc.conn_id or "", pc.target or ""])


class Transitions(_Model):
    """What changed since the previous scan.

    :param fired: violations seen now and not open before: alert once.
    :param cleared: keys of open violations that now pass: clear once.
    :param still_open: keys of violations open before and still seen (no repeat alert).
    :param undecided: keys of open violations whose source was unavailable now (left as they are:
        an unreachable source neither confirms nor clears a violation).
    """

    fired: list[CheckResult] = Field(default_factory=list)
    cleared: list[str] = Field(default_factory=list)
    still_open: list[str] = Field(default_factory=list)
    undecided: list[str] = Field(default_factory=list)


def step(
    open_keys: Iterable[str], verdicts: Iterable[tuple[str, CheckStatus, T]]
) -> tuple[list[T], list[str], list[str], list[str]]:
    """One tri-state step: compare verdicts with the keys open before them.

    Shared by the shadow scan and the canary. A ``VIOLATION`` not open before fires; one open
    before stays open (no repeat alert); a ``PASS`` of an open key clears it; an ``UNAVAILABLE``
    verdict of an open key leaves it as it was (an unreachable source neither confirms nor clears).

    :param open_keys: the keys open after the previous step.
    :param verdicts: ``(key, status, item)`` for each thing checked now.
    :return: ``(fired items, cleared keys, still-open keys, undecided keys)``.
    """
    was_open = set(open_keys)
    fired: list[T] = []
    cleared: list[str] = []
    still_open: list[str] = []
    undecided: list[str] = []
    for key, status, item in verdicts:
        if status == "VIOLATION" and key in was_open:
            still_open.append(key)
        elif status == "VIOLATION":
            fired.append(item)
        elif key not in was_open:
            continue
        elif status == "PASS":
            cleared.append(key)
        else:
            undecided.append(key)
    return fired, cleared, still_open, undecided


def transitions(open_keys: Iterable[str], results: Iterable[CheckResult]) -> Transitions:
    """Compare this scan's verdicts with the violations open before it.

    :param open_keys: keys (:func:`check_key`) of the violations open after the previous scan.
    :param results: this scan's verdicts.
    """
    fired, cleared, still_open, undecided = step(open_keys, ((check_key(r), r.status, r) for r in results))
    return Transitions(fired=fired, cleared=cleared, still_open=still_open, undecided=undecided)
