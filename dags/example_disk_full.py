"""
### Example: a task that runs out of disk space

**Purpose.** Show how faultcat diagnoses a write that fails because the device is full.

**The real failure.** The task says where it writes (``Writing the daily report to /dev/full``),
then writes a few kilobytes to ``/dev/full``, the Linux device that
answers every write with ``ENOSPC``; Python raises
``OSError: [Errno 28] No space left on device``. Nothing is simulated and no real disk fills up.

**Expected root cause:** ``STORAGE``.

**Prerequisites.** Linux (``/dev/full``). The failure is handed to the ``faultcat_recovery`` DAG by
``RecoveryDagNotifier``; without a reachable API server (``faultcat_api_default`` connection) it is
written to the spool (``[faultcat] spool_dir``, default ``$AIRFLOW_HOME/faultcat/spool``).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "STORAGE"

#: A device that is always full: every write fails with ENOSPC.
FULL_DEVICE = "/dev/full"


@dag(
    dag_id="example_disk_full",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example"],
    default_args={"retries": 0, "on_failure_callback": RecoveryDagNotifier()},
    doc_md=__doc__,
)
def example_disk_full():
    @task
    def write_report() -> None:
        """Write the day's report to a device with no space left."""
        print(f"Writing the daily report to {FULL_DEVICE}")
        # Unbuffered, so the write itself (not a later flush) raises the OSError.
        with open(FULL_DEVICE, "wb", buffering=0) as out:
            out.write(b"report line\n" * 1024)

    write_report()


example_disk_full()
