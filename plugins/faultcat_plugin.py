"""Plugins-folder entry for deployments that mount a plugins folder instead of installing entry points."""

from airflow_faultcat.plugins.faultcat import FaultcatPlugin  # noqa: F401
