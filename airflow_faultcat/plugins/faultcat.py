"""The Airflow plugin of airflow-faultcat.

Registered through the ``airflow.plugins`` entry point. It carries nothing yet: the opt-in
failure listener arrives with the recovery DAG.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class FaultcatPlugin(AirflowPlugin):
    """Entry point for faultcat's listeners and UI (none registered in this release)."""

    name = "faultcat"
