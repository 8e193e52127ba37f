"""Custom recovery handlers, registered by entry point ``airflow_faultcat.recovery_handlers``.

A handler is a small class: a stable ``name`` (the entry point's name; the policy allows handlers
by it), ``propose`` to offer a :class:`~airflow_faultcat.core.models.RecoveryOption` for a
diagnosis (or ``None``), and ``run`` to carry it out. ``propose`` is pure; ``run`` may do I/O and is
called by the recovery DAG's ``execute`` task only when the policy allows the handler by name::

    # pyproject.toml of your package
    [project.entry-points."airflow_faultcat.recovery_handlers"]
    restart_vm = "my_pkg.recovery:RestartVmHandler"
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from importlib.metadata import entry_points
from typing import Any, ClassVar

from airflow_faultcat.core.models import Diagnosis, FailureContext, RecoveryOption

GROUP = "airflow_faultcat.recovery_handlers"

log = logging.getLogger(__name__)


class RecoveryHandler(ABC):
    """Base class of custom recovery handlers.

    :cvar name: stable id; the policy's ``allowed_handlers`` and Dag tags ``faultcat:handler=<name>``
        refer to it.
    """

    name: ClassVar[str] = ""

    @abstractmethod
    def propose(self, diagnosis: Diagnosis) -> RecoveryOption | None:
        """Offer an option for ``diagnosis`` (``action=CUSTOM``, ``handler=self.name``), or ``None``."""

    @abstractmethod
    def run(self, failure: FailureContext, diagnosis: Diagnosis, context: Any) -> dict[str, Any]:
        """Carry the option out.

        :param failure: the failed TaskInstance.
        :param diagnosis: its Diagnosis.
        :param context: the Airflow context of the ``execute`` task.
        :return: ``{"detail": str, "cleared": bool}``; ``cleared`` true when the handler cleared the
            failed TaskInstance itself, so that faultcat verifies its rerun.
        """


def load_handlers() -> tuple[dict[str, RecoveryHandler], list[str]]:
    """Instantiate every registered handler.

    :return: handlers by name, and one problem line per entry point that could not be loaded (a
        broken third-party handler must not stop recoveries).
    """
    handlers: dict[str, RecoveryHandler] = {}
    problems: list[str] = []
    for ep in entry_points(group=GROUP):
        try:
            obj = ep.load()
            handler = obj() if isinstance(obj, type) else obj
            if not callable(getattr(handler, "propose", None)) or not callable(getattr(handler, "run", None)):
                raise TypeError("has no propose()/run()")
        except Exception as exc:  # third-party code: report, never crash the planner
            problems.append(f"recovery handler {ep.name!r} ({ep.value}): {type(exc).__name__}: {exc}")
            log.warning("faultcat: %s", problems[-1])
            continue
        handlers[ep.name] = handler
    return handlers, problems
