"""
### Example: a task whose database refuses the connection

**Purpose.** Show how faultcat diagnoses a TCP connection that nothing is listening for.

**The real failure.** The task reserves a free loopback port (binds a socket to ``127.0.0.1:0``),
closes it so that no process listens there, then connects to it: the kernel answers with a
reset and Python raises ``ConnectionRefusedError: [Errno 111] Connection refused``.

**Expected root cause:** ``NETWORK``.

**Prerequisites.** None beyond a loopback interface. The failure is handed to the
``faultcat_recovery`` DAG by ``RecoveryDagNotifier``, or spooled when no API server is reachable.
"""

from __future__ import annotations

import socket
from datetime import datetime

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "NETWORK"


def closed_loopback_port() -> int:
    """A loopback port that was free a moment ago and that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dag(
    dag_id="example_connection_refused",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example"],
    default_args={"retries": 0, "on_failure_callback": RecoveryDagNotifier()},
    doc_md=__doc__,
)
def example_connection_refused():
    @task
    def query_warehouse() -> None:
        """Connect to the warehouse database, which is not running."""
        port = closed_loopback_port()
        print(f"Connecting to the warehouse at 127.0.0.1:{port}")
        # Raises ConnectionRefusedError: nothing listens there.
        socket.create_connection(("127.0.0.1", port), timeout=5).close()

    query_warehouse()


example_connection_refused()
