"""
### Example: a task that runs past its execution timeout

**Purpose.** Show how faultcat diagnoses a task that Airflow stopped for running too long.

**The real failure.** The task has ``execution_timeout=timedelta(seconds=3)`` and sleeps 30
seconds; after 3 seconds Airflow's timeout (a ``SIGALRM`` in the task process) raises
``AirflowTaskTimeout`` and the task fails.

**Expected root cause:** ``TIMEOUT``.

**Prerequisites.** None (the run takes about 3 seconds). The failure is handed to the
``faultcat_recovery`` DAG by ``RecoveryDagNotifier``, or spooled when no API server is reachable.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "TIMEOUT"


@dag(
    dag_id="example_execution_timeout",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example"],
    default_args={"retries": 0, "on_failure_callback": RecoveryDagNotifier()},
    doc_md=__doc__,
)
def example_execution_timeout():
    @task(execution_timeout=timedelta(seconds=3))
    def slow_export() -> None:
        """An export that takes 30 s, ten times longer than it is allowed to."""
        print("Exporting; this takes 30 s")
        time.sleep(30)

    slow_export()


example_execution_timeout()
