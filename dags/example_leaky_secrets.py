"""
### Example: a failing task whose log leaks secrets

**Purpose.** Show that faultcat keeps secrets out of what it produces: the task logs a token and a
connection URI with its password before it fails, and neither the evidence bundle nor the note
written by the recovery DAG may contain them (they are scrubbed to ``***``).

**The real failure.** The task prints ``Using token FAULTCAT_EXAMPLE_SECRET=<secret>`` and
``Connecting to postgresql://etl:<secret>@127.0.0.1:1/warehouse``, then connects to
``127.0.0.1:1``, where nothing listens: ``ConnectionRefusedError: [Errno 111] Connection
refused``.

**Expected root cause:** ``NETWORK``.

**Prerequisites.** Nothing listening on ``127.0.0.1:1`` (the tcpmux port, unused everywhere).
The secret is the environment variable ``FAULTCAT_EXAMPLE_SECRET`` (default
``hunter2-example-secret-0451``). The failure is handed to the ``faultcat_recovery`` DAG by
``RecoveryDagNotifier``, or spooled when no API server is reachable.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "NETWORK"

#: The environment variable holding the secret, and its value when unset.
SECRET_ENV = "FAULTCAT_EXAMPLE_SECRET"
DEFAULT_SECRET = "hunter2-example-secret-0451"

#: Where the (absent) warehouse database listens.
WAREHOUSE_HOST = "127.0.0.1"
WAREHOUSE_PORT = 1


@dag(
    dag_id="example_leaky_secrets",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example"],
    default_args={"retries": 0, "on_failure_callback": RecoveryDagNotifier()},
    doc_md=__doc__,
)
def example_leaky_secrets():
    @task
    def sync_warehouse() -> None:
        """Connect to the warehouse, carelessly logging the credentials first."""
        secret = os.environ.get(SECRET_ENV, DEFAULT_SECRET)
        # The careless lines faultcat must scrub:
        print(f"Using token {SECRET_ENV}={secret}")
        print(f"Connecting to postgresql://etl:{secret}@{WAREHOUSE_HOST}:{WAREHOUSE_PORT}/warehouse")
        # Raises ConnectionRefusedError: nothing listens there.
        socket.create_connection((WAREHOUSE_HOST, WAREHOUSE_PORT), timeout=5).close()

    sync_warehouse()


example_leaky_secrets()
