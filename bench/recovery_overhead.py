"""Benchmark: the recovery DAG's own work per failure, beyond Airflow's task start-up.

Starts the loopback-only Airflow 3 stack (``scripts/airflow_stack.py``, PostgreSQL when one
answers on 127.0.0.1:5432, else SQLite) with its own Redis and the local GitHub and Slack
stand-ins (``tests/standins``) as escalation targets, and a recovery policy without waits
(backoff 0 s, storm settle 0 s) so that only work is measured. Then, ``--rounds`` times, one after
the other:

- ``bench_noop``: a DAG with one task that returns at once. Its TaskInstance duration (start to
  end, as the REST API reports it) is Airflow's task start-up on this machine: the baseline.
- ``example_http_unauthorized``: a CREDENTIAL failure; its recovery escalates (GitHub issue, Slack
  message): collect, diagnose, plan, publish, approve (routing only), escalate.
- ``example_flaky_retry``: a NETWORK failure; its recovery retries: collect, diagnose, plan,
  publish, approve (routing only), retry (clear through the REST API).

For each recovery run: the sum of its TaskInstances' durations, and that sum minus one baseline
per task: the recovery DAG's own work. ``verify`` is not counted: it waits for the retried task
itself to run (reschedule mode, one REST call per poke).

Its last line is ``recovery_own_work_per_failure_s: X`` (the larger of the two paths' medians);
the target is at most 2 s.

Usage: ``python bench/recovery_overhead.py [--rounds 3] [--db postgres|sqlite]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

from airflow_stack import AirflowStack, local_postgres  # noqa: E402

RECOVERY = "faultcat_recovery"
TARGET_S = 2.0
NOOP_DAG = """
from datetime import datetime
from airflow.sdk import dag, task


@dag(dag_id="bench_noop", schedule=None, start_date=datetime(2025, 1, 1), catchup=False)
def bench_noop():
    @task
    def noop() -> None:
        return None

    noop()


bench_noop()
"""
PATHS = {"escalate": "example_http_unauthorized", "retry": "example_flaky_retry"}
NOT_COUNTED = {"verify"}


def _seconds(ti: dict) -> float | None:
    if not ti.get("start_date") or not ti.get("end_date"):
        return None
    start = datetime.fromisoformat(ti["start_date"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(ti["end_date"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def _wait(client, dag_id: str, run_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/dags/{dag_id}/dagRuns/{run_id}").json()
        if run.get("state") in ("success", "failed"):
            return run
        time.sleep(0.5)
    raise RuntimeError(f"{dag_id} {run_id} did not finish in {timeout} s")


def _tis(client, dag_id: str, run_id: str) -> list[dict]:
    return client.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances").json()["task_instances"]


def _trigger(client, dag_id: str, tag: str) -> str:
    run_id = f"bench__{tag}__{time.time_ns()}"
    response = client.post(f"/dags/{dag_id}/dagRuns", json={"dag_run_id": run_id, "logical_date": None})
    response.raise_for_status()
    return run_id


def _recovery_of(client, dag_id: str, run_id: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = client.get(f"/dags/{RECOVERY}/dagRuns", params={"limit": 100, "order_by": "-id"}).json()
        for run in page["dag_runs"]:
            conf = run.get("conf") or {}
            if conf.get("dag_id") == dag_id and conf.get("run_id") == run_id and conf.get("try_number") == 1:
                return run["dag_run_id"]
        time.sleep(0.5)
    raise RuntimeError(f"no recovery run for {dag_id} {run_id}")


def main() -> int:
    from tests.standins.fixtures import GITHUB_REPOSITORY, GITHUB_TOKEN, SLACK_TOKEN
    from tests.standins.github_api import GithubApiStandin
    from tests.standins.slack_api import SlackApiStandin

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="faultcat-bench-overhead-"))
    dags = home / "dags"
    dags.mkdir()
    for name in ("faultcat_recovery.py", *(f"{d}.py" for d in PATHS.values())):
        shutil.copy(ROOT / "dags" / name, dags / name)
    (dags / "bench_noop.py").write_text(NOOP_DAG)
    db_url = local_postgres("faultcat_bench_overhead") if args.db == "postgres" else None
    print(f"metadata database: {'postgres' if db_url else 'sqlite'}")
    policy = {"backoff_base_seconds": 0, "backoff_jitter": 0, "storm_settle_seconds": 0, "retry_budget": 1000}
    github = GithubApiStandin(token=GITHUB_TOKEN, repositories=[GITHUB_REPOSITORY]).start()
    slack = SlackApiStandin(token=SLACK_TOKEN).start()
    stack = AirflowStack(
        home,
        dags,
        extra_env={
            "AIRFLOW__FAULTCAT__RECOVERY_POLICY": json.dumps(policy),
            "AIRFLOW__FAULTCAT__GITHUB_REPOSITORY": GITHUB_REPOSITORY,
            "AIRFLOW__FAULTCAT__SLACK_CHANNEL": "#alerts",
            "AIRFLOW_CONN_GITHUB_DEFAULT": json.dumps(
                {"conn_type": "github", "host": github.url, "password": GITHUB_TOKEN}
            ),
            "AIRFLOW_CONN_SLACK_API_DEFAULT": json.dumps(
                {"conn_type": "slack", "password": SLACK_TOKEN, "extra": {"base_url": slack.api_url}}
            ),
        },
        db_url=db_url,
    )
    stack.start()
    baseline: list[float] = []
    totals: dict[str, list[float]] = {p: [] for p in PATHS}
    own: dict[str, list[float]] = {}
    tasks: dict[str, list[str]] = {}
    try:
        client = stack.client()
        import demo

        demo.wait_for_dags(client, ["bench_noop", RECOVERY, *PATHS.values()])
        for round_no in range(args.rounds):
            run_id = _trigger(client, "bench_noop", str(round_no))
            _wait(client, "bench_noop", run_id)
            baseline.extend(s for s in map(_seconds, _tis(client, "bench_noop", run_id)) if s is not None)
            for path, dag_id in PATHS.items():
                run_id = _trigger(client, dag_id, str(round_no))
                recovery = _recovery_of(client, dag_id, run_id)
                _wait(client, RECOVERY, recovery)
                ran = [t for t in _tis(client, RECOVERY, recovery) if t["state"] == "success"]
                counted = [t for t in ran if t["task_id"] not in NOT_COUNTED]
                total = sum(_seconds(t) or 0 for t in counted)
                totals[path].append(total)
                tasks[path] = [t["task_id"] for t in counted]
                print(
                    f"round {round_no + 1} {path:<8} {len(counted)} tasks, {total:.2f} s in all:"
                    + "".join(f"  {t['task_id']}={_seconds(t):.2f}" for t in counted)
                )
    finally:
        stack.stop()
        github.stop()
        slack.stop()
    start_up = statistics.median(baseline)
    for path in PATHS:
        own[path] = [total - start_up * len(tasks[path]) for total in totals[path]]
    print()
    print(f"task start-up (bench_noop TaskInstance, median of {len(baseline)}): {start_up:.2f} s")
    for path in PATHS:
        print(
            f"{path:<8} path ({', '.join(tasks[path])}): median {statistics.median(totals[path]):.2f} s "
            f"of TaskInstance time, own work median {statistics.median(own[path]):.2f} s, "
            f"max {max(own[path]):.2f} s"
        )
    worst = max(statistics.median(v) for v in own.values())
    print(
        f"target: at most {TARGET_S:.1f} s of own work per failure -> "
        + ("met" if worst <= TARGET_S else "MISSED")
    )
    print(f"recovery_own_work_per_failure_s: {worst:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
