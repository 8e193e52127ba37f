"""DAGs the canary tests provoke invariants with. Each waits for a release file the test writes
(``conf["release"]``), so the test decides when the provoked state ends."""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime, timedelta

from airflow.sdk import DAG, Asset, task

START = datetime(2025, 1, 1)
COMMON = {"schedule": None, "start_date": START, "catchup": False, "default_args": {"retries": 0}}


def _wait_release(path: str, limit: float = 240) -> None:
    deadline = time.monotonic() + limit
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.2)


with DAG("it_canary_stuck", **COMMON) as it_canary_stuck:

    @task(execution_timeout=timedelta(seconds=1))
    def hang(**context) -> None:
        # A hung C call or a library that blocks signals: the SIGALRM of execution_timeout never lands.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        _wait_release(context["dag_run"].conf["release"])

    hang()


with DAG("it_canary_slow_run", dagrun_timeout=timedelta(seconds=3), **COMMON) as it_canary_slow_run:

    @task
    def slow(**context) -> None:
        _wait_release(context["dag_run"].conf["release"])

    slow()


with DAG("it_canary_zombie", **COMMON) as it_canary_zombie:

    @task
    def leave_zombie(**context) -> None:
        child = os.fork()
        if child == 0:
            os._exit(0)
        print(f"forked {child} and did not reap it")
        _wait_release(context["dag_run"].conf["release"])
        os.waitpid(child, 0)

    leave_zombie()


with DAG("it_canary_vm", **COMMON) as it_canary_vm:

    @task(outlets=[Asset("libvirt://libvirt_it/it-canary-vm")])
    def provision() -> None:
        print("defined and started it-canary-vm")

    provision()


with DAG("it_canary_vm_down", **COMMON) as it_canary_vm_down:

    @task(outlets=[Asset("libvirt://libvirt_down/it-canary-gone")])
    def provision_elsewhere() -> None:
        print("defined and started it-canary-gone on a host that is now unreachable")

    provision_elsewhere()
