"""
### Example: a task whose database host name does not resolve

**Purpose.** Show how faultcat diagnoses a host name that DNS cannot resolve.

**The real failure.** The task resolves ``warehouse-db.faultcat.invalid`` with
``socket.getaddrinfo``. ``.invalid`` is reserved (RFC 6761) and never resolves, so Python raises
``socket.gaierror`` (``[Errno -2] Name or service not known``, or ``-3 Temporary failure in name
resolution`` on a host without a resolver).

**Expected root cause:** ``NETWORK``.

**Prerequisites.** None; no name server is needed. The failure is handed to the
``faultcat_recovery`` DAG by ``RecoveryDagNotifier``, or spooled when no API server is reachable.
"""

from __future__ import annotations

import socket
from datetime import datetime

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "NETWORK"

#: A host name under the reserved ``.invalid`` top-level domain: it never resolves.
WAREHOUSE_HOST = "warehouse-db.faultcat.invalid"


@dag(
    dag_id="example_dns_failure",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example"],
    default_args={"retries": 0, "on_failure_callback": RecoveryDagNotifier()},
    doc_md=__doc__,
)
def example_dns_failure():
    @task
    def resolve_warehouse() -> None:
        """Look up the warehouse database's address."""
        print(f"Resolving {WAREHOUSE_HOST}")
        socket.getaddrinfo(WAREHOUSE_HOST, 5432, type=socket.SOCK_STREAM)

    resolve_warehouse()


example_dns_failure()
