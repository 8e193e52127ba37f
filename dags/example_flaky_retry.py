"""
### Example: a flaky task that faultcat retries, and the DagRun ends successful

**Purpose.** Show a guarded automatic retry. The task has no Airflow retries of its own; its
failure goes to the ``faultcat_recovery`` DAG, which diagnoses ``NETWORK`` (a transient
category), waits (backoff with jitter), clears exactly this TaskInstance through the REST API,
verifies that it reran, and notes the outcome on the TaskInstance. The retry takes one unit of the
(dag_id, task_id) retry budget kept in Redis.

**The real failure.** The first try connects to a closed loopback port (a port reserved with
``bind(("127.0.0.1", 0))`` and released again) and fails with ``ConnectionRefusedError: [Errno
111] Connection refused``, like a database that is still starting. The second try
(``ti.try_number == 2``) skips the connection and succeeds, so the DagRun ends in ``success``.

**Expected root cause:** ``NETWORK`` (of the first try).

**Prerequisites.** A loopback interface, the ``faultcat_recovery`` DAG and Redis
(``redis_default``). Without Redis, faultcat does not retry: it escalates and says why.
"""

from __future__ import annotations

import socket
from datetime import datetime

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's (first try's) failure.
EXPECTED_ROOT_CAUSE = "NETWORK"


def closed_loopback_port() -> int:
    """A loopback port that was free a moment ago and that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dag(
    dag_id="example_flaky_retry",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example"],
    default_args={
        "retries": 0,
        "on_failure_callback": RecoveryDagNotifier(),
    },
    doc_md=__doc__,
)
def example_flaky_retry():
    @task
    def ping_warehouse(ti=None) -> str:
        """Connect to the warehouse, which only comes up in time for the retry."""
        if ti.try_number == 1:
            port = closed_loopback_port()
            print(f"Try 1: connecting to the warehouse at 127.0.0.1:{port}")
            # Raises ConnectionRefusedError: nothing listens there.
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        print(f"Try {ti.try_number}: the warehouse is up")
        return "warehouse reachable"

    ping_warehouse()


example_flaky_retry()
