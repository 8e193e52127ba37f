"""The Airflow plugin of airflow-faultcat: registers the opt-in failure listener.

Registered through the ``airflow.plugins`` entry point. The listener does nothing unless
``[faultcat] listener_enabled`` is true, so installing the provider changes no behaviour.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_faultcat.plugins import listener


class FaultcatPlugin(AirflowPlugin):
    """Registers :mod:`airflow_faultcat.plugins.listener`."""

    name = "faultcat"
    listeners = [listener]
