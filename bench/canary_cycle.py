"""Benchmark: one canary cycle (snapshot of every source + every invariant) on a healthy stack.

Starts the loopback-only Airflow 3 stack (``scripts/airflow_stack.py``, PostgreSQL when one answers
on 127.0.0.1:5432, else SQLite) with its own Redis, a libvirt test-driver node with one VM that a
``libvirt://`` asset expects running, and, when podman can run here, a private podman with two
running containers (``tests/podman.py``). So every source is read: REST API (TaskInstances,
DagRuns, pools, health), Redis, this host's processes, libvirt, containers.

Then ``--cycles`` cycles run in this process (``run_cycle``, the code of the DAG's task), one after
the other, and the ``faultcat_canary`` DAG runs once; its task's ``cycle_duration_ms`` (from its
XCom) is printed too. The first in-process cycle pays the imports and is reported apart.

Its last line is ``canary_cycle_ms: median X, max Y`` over the warm cycles; the target is a full
cycle under 2,000 ms. Exit 1 when the target is missed or a cycle saw a violation.

Usage: ``python bench/canary_cycle.py [--cycles 20] [--db postgres|sqlite]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import demo  # noqa: E402
from airflow_stack import AirflowStack, local_postgres  # noqa: E402

TARGET_MS = 2000.0
CANARY = "faultcat_canary"
VM_DAG = """
from datetime import datetime
from airflow.sdk import DAG, Asset, task

with DAG("bench_vm", schedule=None, start_date=datetime(2025, 1, 1), catchup=False):
    @task(outlets=[Asset("libvirt://libvirt_bench/bench-vm")])
    def provision() -> None:
        print("bench-vm defined and started")

    provision()
"""
NODE = """<?xml version="1.0"?>
<node>
  <domain type="test" xmlns:test="http://libvirt.org/schemas/domain/test/1.0">
    <test:runstate>1</test:runstate><name>bench-vm</name>
    <uuid>00000000-0000-4000-8000-000000000001</uuid>
    <os><type>hvm</type></os><memory>262144</memory><vcpu>1</vcpu></domain>
</node>
"""


def _trigger(client, dag_id: str) -> str:
    run_id = f"bench__{time.time_ns()}"
    body = {"dag_run_id": run_id, "logical_date": None}
    client.post(f"/dags/{dag_id}/dagRuns", json=body).raise_for_status()
    return run_id


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="faultcat-bench-canary-"))
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(ROOT / "dags" / "faultcat_canary.py", dags / "faultcat_canary.py")
    (dags / "bench_vm.py").write_text(VM_DAG)
    (home / "node.xml").write_text(NODE)
    podman = None
    try:
        from tests.podman import PodmanService, PodmanUnavailable

        podman = PodmanService(home / "podman").start()
        for name in ("bench-web", "bench-worker"):
            podman.run(name, "sleep", "3600")
    except PodmanUnavailable as exc:
        print(f"containers not checked: {exc}")
        podman = None
    docker_conn = {"conn_type": "docker", "host": podman.base_url} if podman else None
    db_url = local_postgres("faultcat_bench_canary") if args.db == "postgres" else None
    print(f"metadata database: {'postgres' if db_url else 'sqlite'}")
    extra_env = {
        "AIRFLOW__FAULTCAT__CANARY_SCHEDULE": "none",
        "AIRFLOW_CONN_LIBVIRT_BENCH": json.dumps(
            {"conn_type": "libvirt", "extra": {"uri": f"test://{home / 'node.xml'}"}}
        ),
    }
    if docker_conn:
        extra_env["AIRFLOW_CONN_DOCKER_BENCH"] = json.dumps(docker_conn)
        extra_env["AIRFLOW__FAULTCAT__DOCKER_CONN_ID"] = "docker_bench"
    stack = AirflowStack(home, dags, extra_env=extra_env, db_url=db_url)
    stack.start()
    failed = False
    try:
        client = stack.client()

        demo.wait_for_dags(client, [CANARY, "bench_vm"])
        demo.wait_for_run(client, "bench_vm", _trigger(client, "bench_vm"))
        for key, value in stack.env().items():
            if key.startswith(("AIRFLOW_CONN_", "AIRFLOW__FAULTCAT__", "AIRFLOW__API", "AIRFLOW_HOME")):
                os.environ[key] = value
        from airflow_faultcat.operators.canary import run_cycle

        durations = []
        for number in range(args.cycles + 1):
            report, _ = run_cycle(persist=True, alert=False)
            if report.violations or report.sources_unavailable or report.checks_skipped:
                failed = True
                print(f"cycle {number}: not healthy: {report.model_dump_json()[:2000]}")
            if number == 0:
                print(f"first cycle (imports included): {report.cycle_duration_ms:.1f} ms")
            else:
                durations.append(report.cycle_duration_ms)
        print(f"checks per cycle: {len(report.checks_run)} ({', '.join(report.checks_run)})")
        run_id = _trigger(client, CANARY)
        run = demo.wait_for_run(client, CANARY, run_id)
        ti_path = f"/dags/{CANARY}/dagRuns/{run_id}/taskInstances/canary"
        xcom = client.get(f"{ti_path}/xcomEntries/return_value").json()
        value = xcom["value"] if isinstance(xcom.get("value"), dict) else json.loads(xcom["value"])
        print(
            f"faultcat_canary DagRun {run['state']}: cycle_duration_ms={value['cycle_duration_ms']}, "
            f"{len(value['checks_run'])} checks, sources_unavailable={value['sources_unavailable']}"
        )
    finally:
        stack.stop()
        if podman:
            podman.stop()
        shutil.rmtree(home, ignore_errors=True)
    median, worst = statistics.median(durations), max(durations)
    p90 = sorted(durations)[max(0, int(len(durations) * 0.9) - 1)]
    print(f"warm cycles: {len(durations)}, min {min(durations):.1f} ms, p90 {p90:.1f} ms")
    print(f"canary_cycle_ms: median {median:.1f}, max {worst:.1f} (target < {TARGET_MS:.0f})")
    return 1 if failed or worst >= TARGET_MS else 0


if __name__ == "__main__":
    sys.exit(main())
