"""
### Example: a failing task whose log is hostile to a log reader

**Purpose.** Show that faultcat's recovery tasks read a log written to hurt a parser and still
answer, in bounded time and memory, without leaking the secret in it: one 4 MB line that repeats
a matching phrase, a JSON record nested 5,000 deep, a run of NUL bytes (what copytruncate leaves),
20,000 indented traceback headers, the same error line 20,000 times (a retry loop) and
``password=`` followed by a 1 MB value.

**The real failure.** After printing those, the task connects to ``127.0.0.1:1``, where nothing
listens, and Python raises ``ConnectionRefusedError: [Errno 111] Connection refused``.

**Expected root cause:** ``NETWORK``.

**Prerequisites.** Nothing listening on ``127.0.0.1:1`` (the tcpmux port, unused everywhere). The
failure is handed to the ``faultcat_recovery`` DAG by ``RecoveryDagNotifier``, or spooled when no
API server is reachable.
"""

from __future__ import annotations

import random
import socket
import string
import sys
from datetime import datetime

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "NETWORK"

#: The value after ``password=``: 1 MB, generated from a fixed seed so tests can look for it.
PASSWORD = "".join(random.Random(11).choices(string.ascii_letters + string.digits, k=1_000_000))


@dag(
    dag_id="example_hostile_log",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example"],
    default_args={"retries": 0, "on_failure_callback": RecoveryDagNotifier()},
    doc_md=__doc__,
)
def example_hostile_log():
    @task
    def load_events() -> None:
        """Print a hostile log, then fail to reach the event store."""
        out = sys.stdout
        out.write("psycopg2.OperationalError: could not connect to server " * 70_000 + "\n")
        out.write('{"event": ' + '{"a": ' * 5_000 + '"deep"' + "}" * 5_000 + "}\n")
        out.write("\0" * 8_192 + "\n")
        out.write("    Traceback (most recent call last):\n" * 20_000)
        out.write("WARNING - ConnectionResetError: [Errno 104] Connection reset by peer, retrying\n" * 20_000)
        out.write(f"connecting with password={PASSWORD}\n")
        out.flush()
        print("Connecting to the event store at 127.0.0.1:1")
        socket.create_connection(("127.0.0.1", 1), timeout=5).close()

    load_events()


example_hostile_log()
