"""DAGs the recovery integration tests fail on purpose (one failure mode each).

Each fails in its first task with a real error; the Dag tags set faultcat's per-Dag policy.
"""

from __future__ import annotations

import os
from datetime import datetime

from airflow.sdk import dag, task
from it_common import DEFAULTS, refuse

START = datetime(2025, 1, 1)


@dag(
    dag_id="it_mapped_storm",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
    tags=["faultcat:retry_budget=3"],
)
def it_mapped_storm():
    @task
    def load_partition(partition: int) -> int:
        refuse()
        return partition

    load_partition.expand(partition=list(range(50)))


@dag(
    dag_id="it_approval",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
    tags=["faultcat:retry=approval"],
)
def it_approval():
    @task
    def ping(ti=None) -> str:
        if ti.try_number == 1:
            refuse()
        return "up"

    ping()


@dag(
    dag_id="it_approval_timeout",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
    tags=["faultcat:retry=approval"],
    # A per-Dag policy through params: nobody answers within 5 s, so it escalates.
    params={"faultcat_policy": {"approval_timeout_seconds": 5}},
)
def it_approval_timeout():
    @task
    def ping(ti=None) -> str:
        if ti.try_number == 1:
            refuse()
        return "up"

    ping()


@dag(
    dag_id="it_circuit",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
    tags=["faultcat:retry_budget=10"],
)
def it_circuit():
    @task
    def always_down() -> None:
        refuse()

    always_down()


@dag(dag_id="it_redis_down", schedule=None, start_date=START, catchup=False, default_args=DEFAULTS)
def it_redis_down():
    @task
    def ping(ti=None) -> str:
        if ti.try_number == 1:
            refuse()
        return "up"

    ping()


@dag(
    dag_id="it_handler",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULTS,
    tags=["faultcat:handler=it_marker"],
)
def it_handler():
    @task
    def list_vms() -> None:
        import libvirt

        # No libvirt daemon runs here: the real "Failed to connect socket" error (VIRTUALIZATION).
        libvirt.openReadOnly("qemu+unix:///system?socket=" + os.path.join(os.sep, "nonexistent", "sock"))

    list_vms()


it_mapped_storm()
it_approval()
it_approval_timeout()
it_circuit()
it_redis_down()
it_handler()


@dag(dag_id="it_killed", schedule=None, start_date=START, catchup=False, default_args=DEFAULTS)
def it_killed():
    @task
    def crunch() -> None:
        # What the OOM killer does: SIGKILL, so no on_failure_callback runs in this process.
        import signal

        os.kill(os.getpid(), signal.SIGKILL)

    crunch()


it_killed()
