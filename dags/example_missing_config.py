"""
### Example: a task whose configuration file is missing

**Purpose.** Show how faultcat diagnoses a task that cannot find its configuration file.

**The real failure.** The task opens ``/etc/faultcat-example/warehouse.yaml``, which does not
exist, and Python raises ``FileNotFoundError: [Errno 2] No such file or directory``.

**Expected root cause:** ``CONFIGURATION``.

**Prerequisites.** That file must not exist on the worker (it never does unless you create it).
The failure is handed to the ``faultcat_recovery`` DAG by ``RecoveryDagNotifier``, or spooled when
no API server is reachable.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "CONFIGURATION"

#: The configuration file the task expects (and does not find).
CONFIG_PATH = "/etc/faultcat-example/warehouse.yaml"


@dag(
    dag_id="example_missing_config",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example"],
    default_args={"retries": 0, "on_failure_callback": RecoveryDagNotifier()},
    doc_md=__doc__,
)
def example_missing_config():
    @task
    def load_settings() -> str:
        """Read the warehouse settings."""
        with open(CONFIG_PATH, encoding="utf-8") as fh:
            return fh.read()

    load_settings()


example_missing_config()
