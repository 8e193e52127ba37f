"""What the integration test DAGs share (no DAG here: the dags folder puts it on the path)."""

from __future__ import annotations

import socket

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: Default args of a test DAG that hands its failures to faultcat_recovery.
DEFAULTS = {"retries": 0, "on_failure_callback": RecoveryDagNotifier()}


def refuse() -> None:
    """Connect to a loopback port nothing listens on: ConnectionRefusedError (NETWORK)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    print(f"connecting to the warehouse at 127.0.0.1:{port}")
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
