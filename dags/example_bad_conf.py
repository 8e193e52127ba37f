"""
### Example: a run triggered without a required conf key

**Purpose.** Show how faultcat diagnoses a DAG run whose ``conf`` lacks a value the task needs.

**The real failure.** The task reads ``dag_run.conf["batch_id"]``; trigger the DAG without that
key (e.g. with no conf at all) and Python raises ``KeyError: 'batch_id'``.

**Expected root cause:** ``CONFIGURATION``.

**Prerequisites.** Trigger it without ``batch_id`` in the conf (with ``{"batch_id": 42}`` it
succeeds). The failure is handed to the ``faultcat_recovery`` DAG by ``RecoveryDagNotifier``, or
spooled when no API server is reachable.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "CONFIGURATION"


@dag(
    dag_id="example_bad_conf",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example"],
    default_args={"retries": 0, "on_failure_callback": RecoveryDagNotifier()},
    doc_md=__doc__,
)
def example_bad_conf():
    @task
    def load_batch(dag_run=None) -> str:
        """Load the batch named by the run's conf."""
        batch_id = dag_run.conf["batch_id"]
        return f"loaded batch {batch_id}"

    load_batch()


example_bad_conf()
