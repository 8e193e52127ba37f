"""Exceptions raised by airflow-faultcat.

The core's errors (which must not depend on Airflow) are re-exported here so that users catch
them from one place.
"""

from __future__ import annotations

from airflow_faultcat.core.patterns.loader import PatternLibraryError, PatternProblem

__all__ = ["EscalationError", "FaultcatError", "PatternLibraryError", "PatternProblem"]


class FaultcatError(Exception):
    """Base class of errors raised by airflow-faultcat's Airflow components."""


class EscalationError(FaultcatError):
    """Escalating a failure (a GitHub issue, a Slack message) failed.

    The message names the service, the call and the service's own error; it never holds a token.

    :param message: what failed, for people.
    :param status_code: the HTTP status of the answer (0 when no answer came).
    :param detail: the service's error message or code (GitHub ``message``, Slack ``error``).
    """

    def __init__(self, message: str, status_code: int = 0, detail: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


class ShadowError(FaultcatError):
    """A successful DagRun (or task) whose postconditions were violated.

    Raised by :class:`~airflow_faultcat.sensors.shadow.ShadowErrorSensor`, and the exception type of
    the FailureContext the shadow scan hands to the recovery DAG. The message starts with the
    violation (``vm_not_running: ...``) so that the pattern library can classify it.
    """
