"""
### Example: a failure caught by the fleet-wide listener, with no callback

**Purpose.** Show that faultcat diagnoses a DAG that knows nothing about faultcat: this DAG has no
``on_failure_callback``; the provider's listener (``[faultcat] listener_enabled = True``) hands
every failed task to the recovery DAG.

**The real failure.** The task runs ``subprocess.run(["ls", "/nonexistent-faultcat"],
check=True)``; ``ls`` writes ``cannot access '/nonexistent-faultcat': No such file or directory``
to the task log and exits with status 2, and Python raises
``subprocess.CalledProcessError: Command '['ls', '/nonexistent-faultcat']' returned non-zero exit
status 2``.

**Expected root cause:** ``CONFIGURATION``.

**Prerequisites.** ``[faultcat] listener_enabled = True`` (or
``AIRFLOW__FAULTCAT__LISTENER_ENABLED=True``) on the workers, and ``ls``. With the listener off
the task still fails, but nothing is diagnosed.
"""

from __future__ import annotations

import subprocess
from datetime import datetime

from airflow.sdk import dag, task

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "CONFIGURATION"

#: A folder the task expects and that does not exist.
INBOX = "/nonexistent-faultcat"


@dag(
    dag_id="example_listener",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example"],
    default_args={"retries": 0},
    doc_md=__doc__,
)
def example_listener():
    @task
    def list_inbox() -> None:
        """List the files waiting in the inbox folder."""
        # Not captured: ls's own "cannot access ... No such file or directory" goes to the task log.
        subprocess.run(["ls", INBOX], check=True)

    list_inbox()


example_listener()
