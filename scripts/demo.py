"""The demo: a real Airflow 3 stack, the example DAGs failing for real, their diagnoses and recovery.

Starts a loopback-only stack with its own Redis (see ``airflow_stack.py``), triggers every
``dags/example_*.py``, waits for each failure's ``faultcat_recovery`` runs (a retried task that
fails again gets its own) and prints one row per diagnosed failure: DAG, task, try, expected and
diagnosed root cause, confidence, the time from the failure to its recovery DagRun being queued,
what the recovery did (retried, escalated, ...), the top evidence line; then each bundle's path,
the outcome and its rule. Then it stops the stack (``--keep`` leaves it running and prints how to
open the UI).

Usage: ``python scripts/demo.py [--keep] [--home DIR] [--only example_disk_full ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from airflow_stack import USER, AirflowStack, local_postgres  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DAGS = ROOT / "dags"
RECOVERY_DAG = "faultcat_recovery"
TERMINAL = {"success", "failed"}
#: The demo's recovery policy override (see README "Recover safely").
DEMO_POLICY = {"retry_budget": 1, "backoff_base_seconds": 2, "storm_settle_seconds": 5}


def examples() -> dict[str, str]:
    """``{dag_id: expected root cause}`` of the example DAGs (read from their source, not imported)."""
    found = {}
    for path in sorted(DAGS.glob("example_*.py")):
        match = re.search(r'^EXPECTED_ROOT_CAUSE\s*=\s*["\']([A-Z_]+)["\']', path.read_text(), re.M)
        if match:
            found[path.stem] = match.group(1)
    return found


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


@dataclass
class Row:
    """One diagnosed failure of an example DAG."""

    dag_id: str
    run_id: str
    expected: str
    dag_run_state: str = ""
    task_id: str = ""
    try_number: int = 0
    recovery_run_id: str = ""
    recovery_state: str = ""
    root_cause: str = ""
    confidence: float = 0.0
    evidence: str = ""
    latency_ms: float | None = None
    notifier_ms: float | None = None
    bundle: str = ""
    note: str = ""
    diagnosis: dict = field(default_factory=dict)
    outcome: dict = field(default_factory=dict)
    explored: dict = field(default_factory=dict)

    @property
    def right(self) -> bool:
        return self.root_cause == self.expected


def wait_for_dags(client, dag_ids: list[str], timeout: float = 180) -> None:
    """Wait until the DAG processor has parsed every DAG in ``dag_ids``."""
    deadline = time.monotonic() + timeout
    missing = set(dag_ids)
    while time.monotonic() < deadline:
        listed = client.get("/dags", params={"limit": 500}).json()["dags"]
        missing = set(dag_ids) - {d["dag_id"] for d in listed}
        if not missing:
            return
        time.sleep(1)
    errors = client.get("/importErrors").json().get("import_errors", [])
    raise RuntimeError(f"DAGs not parsed after {timeout} s: {sorted(missing)}; import errors: {errors}")


def wait_for_run(
    client, dag_id: str, run_id: str, timeout: float = 240, stack: AirflowStack | None = None
) -> dict:
    """Wait until a DagRun is finished; return it (fail at once if a component of ``stack`` died)."""
    deadline = time.monotonic() + timeout
    run: dict = {}
    while time.monotonic() < deadline:
        if stack is not None:
            stack.assert_running()
        run = client.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()
        if run.get("state") in TERMINAL:
            return run
        time.sleep(1)
    raise RuntimeError(f"{dag_id} {run_id} did not finish in {timeout} s (state {run.get('state')})")


def recovery_runs_for(client, dag_id: str, run_id: str) -> list[dict]:
    """The faultcat_recovery runs whose conf points at ``dag_id`` / ``run_id``."""
    runs: list[dict] = []
    while True:  # the API serves at most 100 per page
        page = client.get(f"/dags/{RECOVERY_DAG}/dagRuns", params={"limit": 100, "offset": len(runs)}).json()
        runs.extend(page["dag_runs"])
        if not page["dag_runs"] or len(runs) >= page["total_entries"]:
            break
    return [
        r for r in runs if (r.get("conf") or {}).get("dag_id") == dag_id and r["conf"].get("run_id") == run_id
    ]


_NOTIFIER_TIME = re.compile(
    r"faultcat: recovery run \S+ of \S+ (?:triggered|duplicate|spooled) in ([0-9]+) ms"
)


def notifier_ms(client, dag_id: str, run_id: str, task_id: str, try_number: int) -> float | None:
    """How long the notifier (or listener) took in the failing task, from that task's own log."""
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
    response = client.get(path, headers={"Accept": "application/json"})
    if response.status_code != 200:
        return None
    for record in response.json().get("content") or []:
        event = record.get("event", "") if isinstance(record, dict) else str(record)
        match = _NOTIFIER_TIME.search(event)
        if match:
            return float(match.group(1))
    return None


def xcom(client, run_id: str, task_id: str) -> dict:
    path = f"/dags/{RECOVERY_DAG}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    response = client.get(path, params={"deserialize": "true"})
    return response.json().get("value") or {} if response.status_code == 200 else {}


def _outcome(bundle_json: str | None) -> dict:
    """The recovery outcome recorded in an evidence bundle (``{}`` when there is none)."""
    if not bundle_json:
        return {}
    try:
        return json.loads(Path(bundle_json.removeprefix("file://")).read_text()).get("outcome") or {}
    except (OSError, ValueError):
        return {}


def run_examples(
    stack: AirflowStack, only: list[str] | None = None, timeout: float = 300, batch: int | None = None
) -> list[Row]:
    """Trigger the example DAGs, wait for their recovery runs, and collect one Row per failure.

    :param batch: how many example DAGs run at once (default: all; one by one on SQLite, which serializes
        every write of five processes through one file lock).
    """
    expected = examples()
    dag_ids = [d for d in expected if not only or d in only]
    client = stack.client()
    wait_for_dags(client, [*dag_ids, RECOVERY_DAG])
    if batch is None:
        batch = 3 if stack.uses_sqlite else len(dag_ids)
    rows: list[Row] = []
    for start in range(0, len(dag_ids), max(1, batch)):
        rows.extend(_run_batch(stack, client, dag_ids[start : start + batch], expected, timeout))
    return rows


def _run_batch(
    stack: AirflowStack, client, dag_ids: list[str], expected: dict[str, str], timeout: float
) -> list[Row]:
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    triggered = {}
    for dag_id in dag_ids:
        run_id = f"demo__{stamp}"
        response = client.post(
            f"/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None, "conf": {}}
        )
        response.raise_for_status()
        triggered[dag_id] = run_id
    rows: list[Row] = []
    deadline = time.monotonic() + timeout
    for dag_id, run_id in triggered.items():
        run = wait_for_run(client, dag_id, run_id, max(30, deadline - time.monotonic()), stack)
        # A recovery run is queued by the failing task itself; a retry's rerun that fails queues
        # the next one before the previous run's verify ends, so "all ended" means the chain did.
        recoveries: list[dict] = []
        none_by = time.monotonic() + 60
        while time.monotonic() < deadline:
            recoveries = recovery_runs_for(client, dag_id, run_id)
            if recoveries and all(r["state"] in TERMINAL for r in recoveries):
                break
            if not recoveries and time.monotonic() > none_by:
                break
            time.sleep(1)
        run = client.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()
        if not recoveries:
            rows.append(Row(dag_id, run_id, expected[dag_id], dag_run_state=run["state"]))
            continue
        recoveries.sort(key=lambda r: (r.get("conf") or {}).get("try_number") or 0)
        for recovery in recoveries:
            recovery = wait_for_run(
                client, RECOVERY_DAG, recovery["dag_run_id"], max(30, deadline - time.monotonic()), stack
            )
            conf = recovery["conf"]
            diagnosis = xcom(client, recovery["dag_run_id"], "diagnose")
            published = xcom(client, recovery["dag_run_id"], "publish")
            explored = xcom(client, recovery["dag_run_id"], "explore")
            top = (diagnosis.get("findings") or [{}])[0]
            evidence = (top.get("evidence") or [{}])[0]
            captured, queued = _ts(conf.get("captured_at")), _ts(recovery.get("queued_at"))
            rows.append(
                Row(
                    dag_id=dag_id,
                    run_id=run_id,
                    expected=expected[dag_id],
                    dag_run_state=run["state"],
                    task_id=conf.get("task_id", ""),
                    try_number=conf.get("try_number", 0),
                    recovery_run_id=recovery["dag_run_id"],
                    recovery_state=recovery["state"],
                    root_cause=diagnosis.get("root_cause", ""),
                    confidence=float(diagnosis.get("confidence") or 0),
                    evidence=" ".join(str(evidence.get("text", "")).split()),
                    latency_ms=(queued - captured).total_seconds() * 1000 if captured and queued else None,
                    notifier_ms=notifier_ms(
                        client, dag_id, run_id, conf.get("task_id", ""), conf.get("try_number", 1)
                    ),
                    bundle=published.get("bundle_json", ""),
                    note=published.get("note", ""),
                    diagnosis=diagnosis,
                    explored=explored,
                    outcome=_outcome(published.get("bundle_json")),
                )
            )
    return rows


def explore_summary(row: Row) -> str:
    """What the explore step's probes did to the diagnosis: probes by outcome, confirmed top
    finding, alternatives ruled out, time taken."""
    if row.explored.get("error"):
        return f"did not run: {row.explored['error']}"
    probes = row.explored.get("probes") or []
    counts = {s: sum(p["status"] == s for p in probes) for s in ("ok", "failed", "could_not_run")}
    top = (row.diagnosis.get("findings") or [{}])[0]
    confirmed = "confirmed now" in (top.get("confidence_reason") or "")
    ruled = [
        r for r in top.get("alternatives_ruled_out") or [] if "ruled out by probe" in (r.get("reason") or "")
    ]
    return (
        f"{len(probes)} probes (ok {counts['ok']}, failed {counts['failed']}, could not run "
        f"{counts['could_not_run']}) in {row.explored.get('seconds', 0):.2f} s; top finding "
        f"{'confirmed' if confirmed else 'not confirmed'}; {len(ruled)} alternative(s) ruled out by a probe"
    )


def print_table(rows: list[Row]) -> None:
    """Print the demo's result table and the median failure-to-queued time."""
    header = (
        f"{'DAG':<28} {'task':<21} {'try':>3} {'root cause':<20} {'conf':>4} {'ok':<3} "
        f"{'queued':>7} {'notifier':>8}  {'recovery':<16} evidence"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        latency = f"{r.latency_ms:.0f}ms" if r.latency_ms is not None else "-"
        took = f"{r.notifier_ms:.0f}ms" if r.notifier_ms is not None else "-"
        print(
            f"{r.dag_id:<28} {r.task_id:<21} {r.try_number:>3} {r.root_cause or '(none)':<20} "
            f"{r.confidence:>4.2f} {'yes' if r.right else 'NO':<3} {latency:>7} {took:>8}  "
            f"{r.outcome.get('status', '-'):<16} {r.evidence[:60]}"
        )
    print()
    for r in rows:
        print(f"{r.dag_id:<28} try {r.try_number} bundle: {r.bundle or '-'}")
        if r.outcome:
            print(f"{'':<28}   recovery: {r.outcome.get('status')} - {r.outcome.get('detail', '')}")
            print(f"{'':<28}   rule: {r.outcome.get('rule', '')}")
        if r.explored:
            print(f"{'':<28}   explore: {explore_summary(r)}")
    latencies = [r.latency_ms for r in rows if r.latency_ms is not None]
    right = sum(r.right for r in rows)
    print()
    print(f"{right}/{len(rows)} failures diagnosed as expected")
    if latencies:
        print(
            f"failure -> recovery DagRun queued: median {statistics.median(latencies):.0f} ms, "
            f"max {max(latencies):.0f} ms"
        )
    took = [r.notifier_ms for r in rows if r.notifier_ms is not None]
    if took:
        print(
            f"time the notifier added to the failing task: median {statistics.median(took):.0f} ms, "
            f"max {max(took):.0f} ms"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=ROOT / ".faultcat-demo" / "airflow")
    parser.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    parser.add_argument("--only", nargs="*", help="run only these example DAGs")
    args = parser.parse_args()
    if args.home.exists():
        AirflowStack(args.home).stop()  # a stack an earlier --keep left running
        shutil.rmtree(args.home)
    # Short waits so that a retry, its rerun and the next diagnosis fit in a demo; one retry per
    # task, so a failure that persists is escalated after it.
    # PostgreSQL where one answers on 127.0.0.1:5432 (as in production), else SQLite.
    db_url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or local_postgres("faultcat_demo")
    stack = AirflowStack(
        args.home,
        DAGS,
        extra_env={"AIRFLOW__FAULTCAT__RECOVERY_POLICY": json.dumps(DEMO_POLICY)},
        db_url=db_url,
    )
    print(f"Metadata database: {'SQLite' if stack.uses_sqlite else 'PostgreSQL'}")
    print(f"Recovery policy: defaults with {json.dumps(DEMO_POLICY)}; no escalation target configured.")
    print(f"Starting Airflow 3 on {stack.base_url} (api-server, scheduler, dag-processor, triggerer) ...")
    started = time.monotonic()
    stack.start()
    print(f"up in {time.monotonic() - started:.0f} s; running the example DAGs ...\n")
    try:
        rows = run_examples(stack, args.only)
        print_table(rows)
    finally:
        if args.keep:
            print(f"\nAirflow UI: {stack.base_url}  user {USER}, password {stack.password}")
            print(f"Stop it with: python scripts/airflow_stack.py stop --home {args.home}")
        else:
            stack.stop()
            print(
                "\nThe stack is stopped. To browse these runs, notes and XComs in the Airflow UI, run "
                "`make demo DEMO_ARGS=--keep`:\n"
                "it leaves Airflow up on 127.0.0.1 and prints the address and login."
            )
    return 0 if rows and all(r.right and r.recovery_state == "success" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
