"""
### Example: a flaky task that fails once and succeeds on its retry

**Purpose.** Show that faultcat diagnoses *every* failed try, also one that a retry recovers, when
``RecoveryDagNotifier(tries="every")`` is the task's ``on_retry_callback``.

**The real failure.** The task has ``retries=1`` and ``retry_delay=timedelta(seconds=2)``. Its
first try connects to a closed loopback port (a port reserved with ``bind(("127.0.0.1", 0))`` and
released again) and fails with ``ConnectionRefusedError: [Errno 111] Connection refused``, like a
database that is still starting. The second try (``ti.try_number == 2``) skips the connection and
succeeds, so the DAG run ends in ``success``.

**Expected root cause:** ``NETWORK`` (of the first try).

**Prerequisites.** None beyond a loopback interface. The failed try is handed to the
``faultcat_recovery`` DAG by the retry callback, or spooled when no API server is reachable.
"""

from __future__ import annotations

import socket
from datetime import datetime, timedelta

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
        "retries": 1,
        "retry_delay": timedelta(seconds=2),
        # Airflow calls on_retry_callback for a try that will be retried and on_failure_callback
        # only for the last one: with both, every failed try is diagnosed.
        "on_retry_callback": RecoveryDagNotifier(tries="every"),
        "on_failure_callback": RecoveryDagNotifier(tries="every"),
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
