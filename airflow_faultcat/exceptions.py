"""Exceptions raised by airflow-faultcat.

The core's errors (which must not depend on Airflow) are re-exported here so that users catch
them from one place.
"""

from __future__ import annotations

from airflow_faultcat.core.patterns.loader import PatternLibraryError, PatternProblem

__all__ = ["FaultcatError", "PatternLibraryError", "PatternProblem"]


class FaultcatError(Exception):
    """Base class of errors raised by airflow-faultcat's Airflow components."""
