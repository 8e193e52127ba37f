"""Benchmark: how fast a failure reaches its recovery run, and what the notifier costs the task.

Starts the loopback-only Airflow 3 stack (``scripts/airflow_stack.py``), runs every example DAG
``--rounds`` times, and prints, over all failures:

- failure -> recovery DagRun queued: from the FailureContext's ``captured_at`` (taken in the
  failing task right after the exception) to the recovery DagRun's ``queued_at`` (median, p90, max);
- the time the notifier (or listener) added to the failing task, as it logs it in that task's log;
- the share of failures whose diagnosis names the expected root cause.

Its last lines are ``recovery_queued_median_ms: X`` and ``notifier_median_ms: Y``.

Usage: ``python bench/recovery.py [--rounds 2] [--home DIR] [--db sqlite|postgres]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from airflow_stack import AirflowStack, local_postgres  # noqa: E402
from demo import DAGS, run_examples  # noqa: E402


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: a fresh database on 127.0.0.1:5432",
    )
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="faultcat-bench-airflow-"))
    db_url = local_postgres("faultcat_bench") if args.db == "postgres" else f"sqlite:///{home / 'airflow.db'}"
    if db_url is None:
        raise SystemExit("no PostgreSQL answers on 127.0.0.1:5432")
    stack = AirflowStack(home, DAGS, db_url=db_url if args.db == "postgres" else None)
    print(f"metadata database: {args.db}")
    stack.start()
    rows = []
    try:
        for _ in range(args.rounds):
            rows.extend(run_examples(stack))
    finally:
        stack.stop()
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    latencies = [r.latency_ms for r in rows if r.latency_ms is not None]
    took = [r.notifier_ms for r in rows if r.notifier_ms is not None]
    right = sum(r.right for r in rows)
    print(f"failures diagnosed: {len(rows)} ({right} with the expected root cause)")
    print(
        f"failure -> recovery DagRun queued: median {statistics.median(latencies):.0f} ms, "
        f"p90 {_pct(latencies, 0.9):.0f} ms, max {max(latencies):.0f} ms ({len(latencies)} failures)"
    )
    print(
        f"notifier time in the failing task: median {statistics.median(took):.0f} ms, "
        f"p90 {_pct(took, 0.9):.0f} ms, max {max(took):.0f} ms ({len(took)} failures)"
    )
    print(f"recovery_queued_median_ms: {statistics.median(latencies):.0f}")
    print(f"notifier_median_ms: {statistics.median(took):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
