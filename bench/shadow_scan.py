"""Benchmark: a bulk shadow scan of 10,000 successful DagRuns against 5,000 libvirt domains.

:class:`~airflow_faultcat.operators.shadow.ShadowScanner` checks every postcondition of the
DagRuns that succeeded in a window: TaskInstance states against trigger rules, the VMs promised by
``libvirt://`` outlets and by a postconditions YAML rule (``{{ params.vm_name }}`` from the
DagRun's conf), and the DagRun's OpenLineage run and task runs in Marquez. The sources answer from
local stand-ins, served by a separate process so that this process's CPU time
(``time.process_time()``) is faultcat's own work (HTTP client, JSON decoding, checks):

- the Airflow REST API stand-in (``tests/standins/airflow_api.py``): 20 Dags of 3 tasks, the
  DagRuns (plus runs the window and the state filter must drop), their TaskInstances, the Dags'
  tasks and the assets;
- the Marquez stand-in (``tests/standins/marquez_api.py``), fed the OpenLineage events the
  provider emits for each DagRun and TaskInstance (its own facet classes, serialised by the
  OpenLineage client);
- the libvirt test driver (``test:///<node.xml>``, in this process: libvirt has no other local
  stand-in) with 5,000 domains, a few shut off or paused. The driver parses its node XML when the
  connection opens; that parse is the stand-in's work and is reported apart (``libvirt_open_s``),
  not counted as own time.

For each N (1,000 and 10,000 DagRuns): list the DagRuns as the operator does
(``POST /dags/~/dagRuns/list``, states=success, an end_date window), then ``check()`` them. Some
checks are broken on purpose (VMs never created, shut off or paused; DagRuns with no lineage or a
task run missing; provisioning runs triggered without a ``vm_name``): the bench checks that each
of them, and nothing else, is reported, and that every check got a verdict. It prints per N the
wall and CPU seconds, the calls per endpoint (from the stand-ins' request logs), the pages and the
entries per page, then the growth from 1,000 to 10,000 DagRuns. The last line is
``shadow_scan_own_time_10k_s: X``; the target is under 10 s.

Usage: ``python bench/shadow_scan.py [--runs 1000 10000] [--dags 20] [--domains 5000]``
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_S = 10.0
NAMESPACE = "bench"
VM_DAGS = 5
#: Outlets of the ETL Dags: one ``libvirt://`` asset per VM a task promises (and one that is not).
OUTLETS = {
    "etl_05": {"load": ["libvirt://libvirt_default/db-primary"]},
    "etl_06": {"load": ["libvirt://libvirt_default/db-primary", "libvirt://libvirt_default/db-replica"]},
    "etl_07": {"transform": ["libvirt://libvirt_default/cache-01"]},
    "etl_08": {"load": ["s3://warehouse/daily/"]},
}
RULES = """\
# The provisioning Dags are triggered with conf {"vm_name": ...}: that VM must run afterwards.
- dag_id: "provision_vm_.*"
  vms:
    - name: "{{ params.vm_name }}"
"""
_STATE_CODES = {"running": 1, "paused": 3, "shutoff": 5}


# ---- what the sources hold -------------------------------------------------------------------


def domains(count: int) -> dict[str, str]:
    """The libvirt domains, name -> state: the VMs of the outlets, then ``vm-NNNNN``; every 97th
    shut off, every 89th paused, the rest running."""
    names = ["db-primary", "db-replica", "cache-01"]
    names += [f"vm-{i:05d}" for i in range(count - len(names))]
    states = {}
    for i, name in enumerate(names):
        states[name] = "shutoff" if i % 97 == 96 else "paused" if i % 89 == 88 else "running"
    return states


def vm_names(states: dict[str, str]) -> list[str | None]:
    """The ``vm_name`` of each provisioning DagRun in turn: one per domain, except that every 211th
    names a VM that was never created and every 307th run has no ``vm_name`` at all."""
    out: list[str | None] = []
    for k, name in enumerate(n for n in states if n.startswith("vm-")):
        out.append(f"vm-gone-{k:05d}" if k % 211 == 105 else None if k % 307 == 150 else name)
    return out


def lineage_plan(index: int) -> str:
    """What Marquez holds for the ``index``-th DagRun of the window: ``missing`` (no lineage at
    all), ``incomplete`` (the last task's run is missing) or ``complete``."""
    if index % 101 == 50:
        return "missing"
    if index % 103 == 51:
        return "incomplete"
    return "complete"


def write_node_xml(path: Path, states: dict[str, str]) -> None:
    """A libvirt test-driver node with one domain per entry (``<test:runstate>`` sets the state)."""
    parts = ['<?xml version="1.0"?>\n<node>\n']
    for i, (name, state) in enumerate(states.items()):
        runstate = "" if state == "running" else f"<test:runstate>{_STATE_CODES[state]}</test:runstate>"
        parts.append(
            '  <domain type="test" xmlns:test="http://libvirt.org/schemas/domain/test/1.0">'
            f"{runstate}<name>{name}</name><uuid>{uuid.UUID(int=0xFA017CA7 << 96 | i)}</uuid>"
            "<os><type>hvm</type></os><memory>262144</memory><vcpu>1</vcpu></domain>\n"
        )
    parts.append("</node>\n")
    path.write_text("".join(parts), encoding="utf-8")


# ---- the stand-ins' process --------------------------------------------------------------------

_RUN = "00000000-0000-7000-8000-00000000f001"
_PARENT = "00000000-0000-7000-8000-00000000f002"
_TIME = "1999-01-01T00:00:01+00:00"


def _event_templates() -> dict[str, str]:
    """OpenLineage run events as the OpenLineage provider builds them (its facet classes, the
    client's event classes and serialiser), with placeholders: each event is then one string
    substitution instead of building and serialising tens of thousands of attrs objects."""
    from airflow.providers.openlineage import __version__ as provider_version
    from airflow.providers.openlineage.plugins.facets import (
        AirflowDagRunFacet,
        AirflowRunFacet,
        AirflowStateRunFacet,
    )
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import job_type_job, nominal_time_run, parent_run, processing_engine_run
    from openlineage.client.serde import Serde

    producer = f"https://github.com/apache/airflow/tree/providers-openlineage/{provider_version}"
    dag = {"dag_id": "__DAG_ID__", "owner": "airflow", "tags": [], "timetable_summary": "__SCHEDULE__"}
    dag_run = {
        "clear_number": 0,
        "conf": "__CONF__",
        "dag_id": "__DAG_ID__",
        "logical_date": "__LOGICAL__",
        "run_after": "__LOGICAL__",
        "run_id": "__RUN_ID__",
        "run_type": "__RUN_TYPE__",
        "start_date": "__START__",
        "end_date": "__END__",
        "duration": 5.0,
    }
    common = {
        "nominalTime": nominal_time_run.NominalTimeRunFacet(
            nominalStartTime=_TIME, nominalEndTime=_TIME, producer=producer
        ),
        "processing_engine": processing_engine_run.ProcessingEngineRunFacet(
            version="3.3.2", name="Airflow", openlineageAdapterVersion=provider_version, producer=producer
        ),
    }

    def job(kind: str) -> Job:
        facets = {"jobType": job_type_job.JobTypeJobFacet("BATCH", "AIRFLOW", kind, producer=producer)}
        return Job(namespace=NAMESPACE, name="__JOB__", facets=facets)

    dag_facet = AirflowDagRunFacet(dag=dag, dagRun=dag_run, producer=producer)
    state_facet = AirflowStateRunFacet(
        dagRunState="success", tasksState={}, tasksDuration={}, producer=producer
    )
    task_facet = AirflowRunFacet(
        dag=dag,
        dagRun=dag_run,
        task={"task_id": "__TASK_ID__", "operator_class": "_PythonDecoratedOperator"},
        taskInstance={"try_number": 1, "map_index": None, "pool": "default_pool", "duration": 1.0},
        taskUuid=_RUN,
        producer=producer,
    )
    parent = parent_run.ParentRunFacet(
        run=parent_run.Run(runId=_PARENT),
        job=parent_run.Job(namespace=NAMESPACE, name="__DAG_ID__"),
        root=parent_run.Root(
            run=parent_run.RootRun(runId=_PARENT),
            job=parent_run.RootJob(namespace=NAMESPACE, name="__DAG_ID__"),
        ),
        producer=producer,
    )

    def event(state: str, kind: str, facets: dict[str, Any]) -> str:
        run = Run(runId=_RUN, facets={**common, **facets})
        built = RunEvent(
            eventType=RunState[state], eventTime=_TIME, run=run, job=job(kind), producer=producer
        )
        return Serde.to_json(built)

    return {
        "dag_start": event("START", "DAG", {"airflowDagRun": dag_facet}),
        "dag_complete": event("COMPLETE", "DAG", {"airflowDagRun": dag_facet, "airflowState": state_facet}),
        "dag_fail": event("FAIL", "DAG", {"airflowDagRun": dag_facet, "airflowState": state_facet}),
        "task_start": event("START", "TASK", {"airflow": task_facet, "parent": parent}),
        "task_complete": event("COMPLETE", "TASK", {"airflow": task_facet, "parent": parent}),
    }


def _fill(template: str, values: dict[str, str]) -> bytes:
    for placeholder, value in values.items():
        template = template.replace(placeholder, value)
    return template.encode()


def _text(value: str) -> str:
    return json.dumps(value)[1:-1]


def _load_lineage(marquez: Any, data: Any) -> tuple[dict[str, list[list[str]]], int]:
    """Feed the Marquez stand-in the events of every DagRun and TaskInstance, following
    :func:`lineage_plan` for the DagRuns of the window; return the planned gaps and the events."""
    from datetime import datetime

    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter

    templates = _event_templates()
    tis = defaultdict(list)
    for ti in data.task_instances:
        tis[(ti["dag_id"], ti["dag_run_id"])].append(ti)
    start, end = data.window
    planned: dict[str, list[list[str]]] = {"missing": [], "incomplete": []}
    index, events = 0, 0

    def send(name: str, values: dict[str, str]) -> None:
        nonlocal events
        _, response = marquez.handle("POST", "/api/v1/lineage", {}, {}, _fill(templates[name], values))
        if response.status != 200:
            raise RuntimeError(f"the Marquez stand-in refused a {name} event: {response.body}")
        events += 1

    for run in sorted(data.dag_runs, key=lambda r: r["end_date"]):
        dag_id, run_id = run["dag_id"], run["dag_run_id"]
        logical = datetime.fromisoformat(run["logical_date"].replace("Z", "+00:00"))
        in_window = (
            run["state"] == "success"
            and start <= datetime.fromisoformat(run["end_date"].replace("Z", "+00:00")) < end
        )
        plan = "complete"
        if in_window:
            plan = lineage_plan(index)
            index += 1
            if plan != "complete":
                planned[plan].append([dag_id, run_id])
        if plan == "missing":
            continue
        dag_ol = OpenLineageAdapter.build_dag_run_id(dag_id=dag_id, logical_date=logical, clear_number=0)
        common = {
            "__DAG_ID__": _text(dag_id),
            "__RUN_ID__": _text(run_id),
            "__RUN_TYPE__": run["run_type"],
            "__LOGICAL__": run["logical_date"],
            "__START__": run["start_date"],
            "__END__": run["end_date"],
            "__SCHEDULE__": "None" if run["run_type"] == "manual" else "@hourly",
            '"__CONF__"': json.dumps(run["conf"]),
            _PARENT: dag_ol,
        }
        send("dag_start", {**common, "__JOB__": _text(dag_id), _RUN: dag_ol, _TIME: run["start_date"]})
        run_tis = tis[(dag_id, run_id)]
        if plan == "incomplete":
            run_tis = run_tis[:-1]
        for ti in run_tis if run["state"] == "success" else []:
            ti_ol = OpenLineageAdapter.build_task_instance_run_id(
                dag_id=dag_id, task_id=ti["task_id"], try_number=1, logical_date=logical, map_index=-1
            )
            values = {
                **common,
                "__JOB__": _text(f"{dag_id}.{ti['task_id']}"),
                "__TASK_ID__": _text(ti["task_id"]),
                _RUN: ti_ol,
            }
            send("task_start", {**values, _TIME: ti["start_date"]})
            send("task_complete", {**values, _TIME: ti["end_date"]})
        last = "dag_complete" if run["state"] == "success" else "dag_fail"
        send(last, {**common, "__JOB__": _text(dag_id), _RUN: dag_ol, _TIME: run["end_date"]})
    return planned, events


def _serve_standins(pipe: Any, n_runs: int, n_dags: int, names: list[str | None]) -> None:
    """The stand-ins' process: generate, load, serve until told to stop; answer request counts."""
    from tests.standins.airflow_api import AirflowApiStandin, generate
    from tests.standins.airflow_api import operation_of as airflow_operation
    from tests.standins.marquez_api import MarquezApiStandin
    from tests.standins.marquez_api import operation_of as marquez_operation

    class IndexedMarquez(MarquezApiStandin):
        """The Marquez stand-in with each job's run list sorted once, after loading (its own
        lookup scans every run on each call: fine for tests, slow with 40,000 runs)."""

        frozen: dict[tuple[str, str], list[Any]] | None = None

        def freeze(self) -> None:
            by_job: dict[tuple[str, str], list[Any]] = defaultdict(list)
            for run in self.runs.values():
                by_job[(run.namespace, run.job)].append(run)
            self.frozen = {
                k: sorted(v, key=lambda r: (r.created_at, r.seq), reverse=True) for k, v in by_job.items()
            }
            # No event arrives after loading: each run's answer can be built once, not once per call.
            for run in self.runs.values():
                run.as_json = (lambda answer: lambda: answer)(run.as_json())

        def job_runs(self, namespace: str, job: str) -> list[Any]:
            if self.frozen is None:
                return super().job_runs(namespace, job)
            return self.frozen.get((namespace, job), [])

    started = time.perf_counter()
    data = generate(n_runs, n_dags=n_dags, vm_dags=VM_DAGS, vm_names=names, outlets=OUTLETS)
    airflow = AirflowApiStandin(data)
    marquez = IndexedMarquez()
    planned, events = _load_lineage(marquez, data)
    marquez.freeze()
    airflow.start()
    marquez.start()
    pipe.send(
        {
            "airflow_port": airflow.port,
            "marquez_port": marquez.port,
            "window": [t.isoformat() for t in data.window],
            "planned": planned,
            "events": events,
            "marquez_runs": len(marquez.runs),
            "setup_s": time.perf_counter() - started,
        }
    )
    try:
        while True:
            message = pipe.recv()
            if message == "stop":
                break
            if message == "stats":
                calls: Counter[str] = Counter()
                entries: Counter[str] = Counter()
                rejected = []
                for standin, operation_of in ((airflow, airflow_operation), (marquez, marquez_operation)):
                    for request in standin.requests:
                        name = (
                            operation_of(request.method, request.path) or f"{request.method} {request.path}"
                        )
                        calls[name] += 1
                        if isinstance(request.response, dict):
                            for key in ("dag_runs", "task_instances", "tasks", "assets", "runs"):
                                entries[name] += len(request.response.get(key) or [])
                        if request.rejection is not None:
                            rejected.append(f"{request.method} {request.path} -> {request.status}")
                pipe.send({"calls": dict(calls), "entries": dict(entries), "rejected": rejected})
    finally:
        airflow.stop()
        marquez.stop()


# ---- one scan ----------------------------------------------------------------------------------


class _LibvirtOpenTimer:
    """CPU seconds spent in ``libvirt.openReadOnly``: where the test driver parses its node XML
    (the stand-in's work: a real libvirtd has its domains already)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> _LibvirtOpenTimer:
        import libvirt

        self._open = libvirt.openReadOnly
        libvirt.openReadOnly = self._timed
        return self

    def __exit__(self, *exc: object) -> None:
        import libvirt

        libvirt.openReadOnly = self._open

    def _timed(self, uri: str) -> Any:
        before = time.process_time()
        try:
            return self._open(uri)
        finally:
            self.seconds += time.process_time() - before


def scan(
    n_runs: int, n_dags: int, states: dict[str, str], node_xml: Path, rules: list[Any]
) -> dict[str, Any]:
    """Start the stand-ins for ``n_runs`` DagRuns, scan, check the verdicts, return the figures."""
    from airflow_faultcat.hooks.airflow_api import AirflowApiHook
    from airflow_faultcat.operators.shadow import ShadowScanner

    context = multiprocessing.get_context("spawn")
    pipe, child_pipe = context.Pipe()
    child = context.Process(
        target=_serve_standins, args=(child_pipe, n_runs, n_dags, vm_names(states)), daemon=True
    )
    child.start()
    try:
        while not pipe.poll(1):
            if not child.is_alive():
                raise RuntimeError(f"the stand-ins' process ended (exit code {child.exitcode})")
        ready = pipe.recv()
        os.environ["AIRFLOW_CONN_FAULTCAT_API_DEFAULT"] = json.dumps(
            {
                "conn_type": "faultcat_api",
                "host": "127.0.0.1",
                "port": ready["airflow_port"],
                "schema": "http",
                "login": "admin",
                "password": "admin",
            }
        )
        os.environ["AIRFLOW_CONN_MARQUEZ_DEFAULT"] = json.dumps(
            {
                "conn_type": "marquez",
                "host": "127.0.0.1",
                "port": ready["marquez_port"],
                "schema": "http",
                "extra": {"namespace": NAMESPACE},
            }
        )
        os.environ["AIRFLOW_CONN_LIBVIRT_DEFAULT"] = json.dumps(
            {"conn_type": "libvirt", "extra": {"uri": f"test://{node_xml}"}}
        )
        with _LibvirtOpenTimer() as timer:
            wall, cpu = time.perf_counter(), time.process_time()
            api = AirflowApiHook(timeout=60)
            try:
                runs: list[dict[str, Any]] = []
                for page in api.iter_dag_runs_batch(
                    states=["success"], end_date_gte=ready["window"][0], end_date_lt=ready["window"][1]
                ):
                    runs.extend(page)
                report = ShadowScanner(api, rules=rules, lineage_default=True).check(runs)
            finally:
                api.close()
            cpu = time.process_time() - cpu
            wall = time.perf_counter() - wall
        pipe.send("stats")
        stats = pipe.recv()
        pipe.send("stop")
    finally:
        child.join(timeout=30)
        if child.is_alive():
            child.terminate()
    problems = verify(n_runs, runs, report, ready["planned"], states, stats)
    return {
        "n": n_runs,
        "wall_s": wall,
        "cpu_s": cpu,
        "libvirt_open_s": timer.seconds,
        "own_s": cpu - timer.seconds,
        "checks": len(report.results),
        "verdicts": Counter(r.violation or r.status for r in report.results),
        "stats": stats,
        "setup_s": ready["setup_s"],
        "events": ready["events"],
        "marquez_runs": ready["marquez_runs"],
        "problems": problems,
    }


def verify(
    n_runs: int,
    runs: list[dict[str, Any]],
    report: Any,
    planned: dict[str, list[list[str]]],
    states: dict[str, str],
    stats: dict[str, Any],
) -> list[str]:
    """Every DagRun listed once; every check decided; exactly the planted violations reported."""
    problems = []
    keys = [(r["dag_id"], r["dag_run_id"]) for r in runs]
    if len(keys) != n_runs or len(set(keys)) != n_runs:
        problems.append(f"listed {len(keys)} DagRuns ({len(set(keys))} distinct), expected {n_runs}")
    if stats["rejected"]:
        problems.append(f"the stand-ins rejected {len(stats['rejected'])} calls: {stats['rejected'][:3]}")
    broken = {s: v for s, v in report.sources.items() if v != "ok"}
    if broken:
        problems.append(f"sources not ok: {broken}")
    undecided = [r for r in report.results if r.status not in ("PASS", "VIOLATION")]
    if undecided:
        problems.append(f"{len(undecided)} checks without a verdict, e.g. {undecided[0].reason}")

    expected: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    expected_kinds: Counter[str] = Counter({"tasks_healthy": n_runs, "lineage": n_runs})
    no_name = 0
    for run in runs:
        key = (run["dag_id"], run["dag_run_id"])
        targets = []
        if run["dag_id"].startswith("provision_vm_"):
            name = (run["conf"] or {}).get("vm_name")
            if name is None:
                no_name += 1
            else:
                targets.append(name)
        for uris in OUTLETS.get(run["dag_id"], {}).values():
            targets += [u.rsplit("/", 1)[1] for u in uris if u.startswith("libvirt://")]
        for target in dict.fromkeys(targets):
            expected_kinds["vm_running"] += 1
            state = states.get(target)
            if state is None:
                expected["vm_not_created"].add((*key, target))
            elif state != "running":
                expected["vm_not_running"].add((*key, target))
    for plan, violation in (("missing", "lineage_missing"), ("incomplete", "lineage_incomplete")):
        expected[violation] = {tuple(k) for k in planned[plan]}

    kinds = Counter(r.postcondition.kind for r in report.results)
    if kinds != expected_kinds:
        problems.append(f"checks by kind {dict(kinds)}, expected {dict(expected_kinds)}")
    found: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for result in report.results:
        if result.status == "VIOLATION":
            pc = result.postcondition
            key = (pc.dag_id, pc.run_id) + ((pc.target,) if pc.kind == "vm_running" else ())
            found[result.violation or "?"].add(key)
    for violation in sorted(set(found) | set(expected)):
        if found[violation] != expected[violation]:
            missed, extra = expected[violation] - found[violation], found[violation] - expected[violation]
            problems.append(
                f"{violation}: {len(missed)} planted not reported, {len(extra)} reported not planted"
            )
    if len(report.problems) != no_name:
        problems.append(
            f"{len(report.problems)} declaration problems, expected {no_name} (runs without vm_name)"
        )
    return problems


# ---- the report --------------------------------------------------------------------------------

ENDPOINTS = [
    ("token", "create_token"),
    ("dagRuns", "get_list_dag_runs_batch"),
    ("TIs", "get_task_instances_batch"),
    ("tasks", "get_tasks"),
    ("assets", "get_assets"),
    ("marquez", "getRuns"),
]
PAGED = ("get_list_dag_runs_batch", "get_task_instances_batch", "get_assets", "getRuns")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--dags", type=int, default=20)
    parser.add_argument("--domains", type=int, default=5000)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="faultcat-bench-shadow-"))
    try:
        return _run(args, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _run(args: argparse.Namespace, home: Path) -> int:
    # Airflow reads (and may write) its configuration under AIRFLOW_HOME: keep it out of ~/airflow.
    os.environ["AIRFLOW_HOME"] = str(home)
    states = domains(args.domains)
    node_xml = home / "node.xml"
    write_node_xml(node_xml, states)
    rules_file = home / "postconditions.yaml"
    rules_file.write_text(RULES, encoding="utf-8")

    # Imported before timing: a scan in a running worker has its modules loaded already.
    import jinja2.sandbox  # noqa: F401
    import libvirt  # noqa: F401
    import re2  # noqa: F401

    import airflow_faultcat.hooks.libvirt  # noqa: F401
    import airflow_faultcat.hooks.marquez  # noqa: F401
    from airflow_faultcat.core.shadow import load_postcondition_rules

    rules = load_postcondition_rules(rules_file)
    n_states = Counter(states.values())
    outlet_dags = [
        d for d, tasks in OUTLETS.items() if any("libvirt://" in u for t in tasks.values() for u in t)
    ]
    print(
        f"shadow scan: {args.dags} Dags x 3 tasks ({VM_DAGS} provisioning with conf vm_name, "
        f"{len(outlet_dags)} with libvirt outlets); {args.domains} libvirt domains (test driver: "
        f"{n_states['running']} running, {n_states['shutoff']} shutoff, {n_states['paused']} paused); "
        "lineage expected for every DagRun"
    )
    rows = []
    for n in args.runs:
        row = scan(n, args.dags, states, node_xml, rules)
        rows.append(row)
        print(
            f"  N={n}: stand-ins ready in {row['setup_s']:.1f} s ({row['events']} OpenLineage events, "
            f"{row['marquez_runs']} Marquez runs); verdicts: "
            + ", ".join(f"{k} {v}" for k, v in sorted(row["verdicts"].items()))
        )

    print()
    names = [label for label, _ in ENDPOINTS]
    print(
        f"{'N':>6} {'checks':>7} {'wall_s':>7} {'cpu_s':>6} {'libvirt_open_s':>14} {'own_s':>6} {'calls':>6} "
        + " ".join(f"{n:>7}" for n in names)
        + f" {'pages':>6} {'entries/page':>12} {'calls/100 DagRuns':>17}"
    )
    for row in rows:
        calls, entries = row["stats"]["calls"], row["stats"]["entries"]
        total = sum(calls.values())
        pages = sum(calls.get(op, 0) for op in PAGED)
        per_page = sum(entries.get(op, 0) for op in PAGED) / pages if pages else 0.0
        print(
            f"{row['n']:>6} {row['checks']:>7} {row['wall_s']:>7.2f} {row['cpu_s']:>6.2f} "
            f"{row['libvirt_open_s']:>14.2f} {row['own_s']:>6.2f} {total:>6} "
            + " ".join(f"{calls.get(op, 0):>7}" for _, op in ENDPOINTS)
            + f" {pages:>6} {per_page:>12.1f} {100 * total / row['n']:>17.2f}"
        )
    print(
        "own_s = cpu_s - libvirt_open_s (the libvirt test driver parsing its node XML: the stand-in's work); "
        "pages: calls of the paged lists (DagRuns, TaskInstances, assets, Marquez job runs; at most 100 "
        "entries each); tasks: one call per Dag"
    )
    ok = True
    for row in rows:
        if row["problems"]:
            ok = False
            print(f"N={row['n']}: CHECK FAILED: " + "; ".join(row["problems"]))
    by_n = {row["n"]: row for row in rows}
    if 1000 in by_n and 10000 in by_n:
        small, large = by_n[1000], by_n[10000]

        def ratio(key: str) -> str:
            return f"x{large[key] / small[key]:.1f}" if small[key] else "n/a"

        small_calls, large_calls = (
            sum(small["stats"]["calls"].values()),
            sum(large["stats"]["calls"].values()),
        )
        # The fewest calls paging allows for the DagRuns and their TaskInstances (3 each), 100 a page.
        floor = math.ceil(10000 / 100) + math.ceil(3 * 10000 / 100)
        print(
            f"scaling 1,000 -> 10,000 DagRuns (x10.0): calls x{large_calls / small_calls:.1f} "
            f"({small_calls} -> {large_calls}; DagRun and TaskInstance pages alone: at least {floor}), "
            f"own CPU {ratio('own_s')}, wall {ratio('wall_s')}, checks {ratio('checks')}"
        )
    if 10000 in by_n:
        own = by_n[10000]["own_s"]
        print(
            f"target: 10,000 DagRuns in under {TARGET_S:.0f} s of own time -> "
            + ("met" if own < TARGET_S else "MISSED")
        )
        print(f"shadow_scan_own_time_10k_s: {own:.2f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
