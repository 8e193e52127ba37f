"""DAGs the failure-intelligence tests fail on purpose: the same failure again and again, two
causes in one task, a task that fails and passes on retry, and one that is quarantined."""

from __future__ import annotations

import random
from datetime import datetime

from airflow.sdk import dag, task
from it_common import DEFAULTS, refuse

START = datetime(2025, 1, 1)


@dag(
    dag_id="it_fp_same",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
    tags=["faultcat:retry=never"],
    params={"mode": "missing_file"},
)
def it_fp_same():
    @task
    def load_batch(params=None) -> None:
        # Every run fails the same way, with a different batch number and file each time.
        batch = random.randint(1, 10**6)
        if params["mode"] == "missing_file":
            path = f"/nonexistent/it-batches/{batch:07d}/rows-{random.randint(1, 999)}.csv"
            with open(path, encoding="utf-8") as fh:
                fh.read()
        raise KeyError(f"customer_id (batch {batch})")

    load_batch()


@dag(
    dag_id="it_flaky",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
    tags=["faultcat:retry_budget=20"],
    params={"flaky": True},
)
def it_flaky():
    @task
    def ping(ti=None, params=None) -> str:
        if params["flaky"] and ti.try_number == 1:
            refuse()
        return "up"

    ping()


@dag(
    dag_id="it_fp_quarantine",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
    tags=["faultcat:retry=never"],
)
def it_fp_quarantine():
    @task
    def read_secret_store() -> None:
        raise PermissionError(
            f"[Errno 13] Permission denied: '/nonexistent/vault/token-{random.randint(1, 99)}'"
        )

    read_secret_store()


it_fp_same()
it_flaky()
it_fp_quarantine()
