"""Capture a failed TaskInstance as a FailureContext and hand it to the recovery DAG.

Shared by :class:`~airflow_faultcat.notifications.recovery_dag.RecoveryDagNotifier` (a task's
``on_failure_callback``) and the fleet-wide listener. Both run in the task's own process, right
after the failure, so everything here is bounded in time and never raises: the API call gives up
within the time budget and the failure goes to the spool instead.

The failure is scrubbed when it is captured, before it becomes the recovery DagRun's conf (kept in
Airflow's database and shown in its UI) or a spool file: first Airflow's own secrets masker (the
connection passwords and variables the task read are registered there), then faultcat's
:class:`~airflow_faultcat.core.scrub.Scrubber`; texts are scrubbed first and cut afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import time
import traceback
from datetime import datetime, timezone
from typing import Any

from airflow_faultcat.core.models import FailureContext, HostSnapshot

log = logging.getLogger(__name__)

#: Longest traceback text kept in a FailureContext (the log has the rest).
MAX_TRACEBACK_CHARS = 20000
#: Longest exception message kept in a FailureContext.
MAX_MESSAGE_CHARS = 20000
#: Longest exception message inside the traceback text (the frames matter more there).
TRACEBACK_MESSAGE_CHARS = 2000
#: DAG ids (prefix) that are faultcat's own and never trigger a recovery (no loops).
OWN_DAG_PREFIX = "faultcat_"


def recovery_run_id(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> str:
    """The ``dag_run_id`` of the recovery run for one failed try: the same failure, the same id.

    A readable part (dag, task, map index, try) plus a hash of all five ids, so a repeated
    callback or a listener firing after the callback is refused by the API (409) instead of
    starting a second recovery.
    """
    key = json.dumps([dag_id, run_id, task_id, int(map_index), int(try_number)])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    mapped = f".{map_index}" if int(map_index) >= 0 else ""
    readable = f"{dag_id}.{task_id}{mapped}.try{try_number}"[:200]
    return f"faultcat__{readable}__{digest}"


def _meminfo() -> dict[str, int]:
    """MemTotal and MemAvailable in bytes; empty where ``/proc/meminfo`` is absent (not Linux)."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            name, _, rest = line.partition(":")
            if name in ("MemTotal", "MemAvailable"):
                values[name] = int(rest.split()[0]) * 1024
    return values


def host_snapshot(folders: list[str] | None = None) -> HostSnapshot:
    """Free disk of the log and temp folders, memory and load of this host (cheap, no I/O waits)."""
    if folders is None:
        folders = [tempfile.gettempdir()]
        # A snapshot without the log folder is still useful.
        with contextlib.suppress(Exception):
            from airflow.configuration import conf

            folders.insert(0, conf.get("logging", "base_log_folder"))
    disk = {}
    for folder in folders:
        try:
            disk[folder] = shutil.disk_usage(folder).free
        except OSError:
            continue
    mem = _meminfo()
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return HostSnapshot(
        hostname=socket.gethostname(),
        disk_free_bytes=disk,
        memory_available_bytes=mem.get("MemAvailable"),
        memory_total_bytes=mem.get("MemTotal"),
        load_average=load,
    )


def _qualified_name(exc: BaseException) -> str:
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module in ("builtins", "__main__") else f"{module}.{cls.__qualname__}"


def _airflow_redact(value: Any) -> Any:
    """Mask what Airflow's secrets masker knows (values registered by ``mask_secret``, the
    connections and variables the task read); ``value`` unchanged where Airflow is not running."""
    try:
        from airflow.sdk.log import redact
    except ImportError:
        return value
    try:
        return redact(value)
    except Exception:  # the masker must not stop the capture; faultcat's scrubber still runs
        return value


def _window(text: str, limit: int, keep: str) -> str:
    """The part of ``text`` that :meth:`Scrubber.scrub_cut` reads: bounded before any regex runs."""
    from airflow_faultcat.core.scrub import CUT_MARGIN

    size = limit + CUT_MARGIN
    if len(text) <= size:
        return text
    return text[:size] if keep == "head" else text[-size:]


def _format_traceback(exception: BaseException) -> str:
    """The traceback of ``exception`` and its causes, each message scrubbed and cut to
    :data:`TRACEBACK_MESSAGE_CHARS` (the FailureContext keeps the message itself apart).

    A 200 MB exception message is not copied into the traceback text, and the frames stay.
    """
    formatted = traceback.TracebackException(type(exception), exception, exception.__traceback__)
    limit = TRACEBACK_MESSAGE_CHARS
    seen: set[int] = set()
    todo = [formatted]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        message = getattr(current, "_str", None)
        if isinstance(message, str) and len(message) > limit:
            current._str = capture_text(message, limit)  # type: ignore[attr-defined]
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        todo.extend(getattr(current, "exceptions", None) or [])
    return "".join(formatted.format())


def capture_text(text: str | None, limit: int, *, keep: str = "head") -> str | None:
    """Scrub a captured text with Airflow's masker and faultcat's scrubber, then cut it.

    :param text: the text (an exception message, a traceback); ``None`` stays ``None``.
    :param limit: the longest result, in characters.
    :param keep: ``"head"`` or ``"tail"`` (a traceback keeps its end).
    """
    if text is None:
        return None
    window = _airflow_redact(_window(text, limit, keep))
    return _scrubber().scrub_cut(str(window), limit, keep=keep)


@functools.lru_cache(maxsize=1)
def _scrubber() -> Any:
    """One :class:`~airflow_faultcat.core.scrub.Scrubber` per process (its rules compile once)."""
    from airflow_faultcat.core.scrub import Scrubber

    return Scrubber()


def failure_context(
    ti: Any, exception: BaseException | str | None, extra: dict | None = None
) -> FailureContext:
    """Build the scrubbed FailureContext of a failed TaskInstance.

    The exception message and the traceback are scrubbed, then cut to
    :data:`MAX_MESSAGE_CHARS` (its head) and :data:`MAX_TRACEBACK_CHARS` (its tail); ``extra`` is
    scrubbed too (a value under a sensitive key is masked whole).

    :param ti: the (runtime) TaskInstance: ``dag_id``, ``run_id``, ``task_id``, ``map_index``,
        ``try_number``, ``max_tries``, ``hostname`` are read when present.
    :param exception: the exception that failed the task (``context["exception"]``), or a message.
    :param extra: more values for the recovery DAG (``FailureContext.extra``).
    """
    exc_type = exc_message = tb = None
    if isinstance(exception, BaseException):
        exc_type = _qualified_name(exception)
        exc_message = capture_text(str(exception), MAX_MESSAGE_CHARS)
        try:
            tb = capture_text(_format_traceback(exception), MAX_TRACEBACK_CHARS, keep="tail")
        except Exception as exc:  # a broken __str__ in a chained exception, say
            tb = f"(traceback not captured: {type(exc).__name__})"
    elif exception:
        exc_message = capture_text(str(exception), MAX_MESSAGE_CHARS)
    map_index = getattr(ti, "map_index", -1)
    return FailureContext(
        dag_id=getattr(ti, "dag_id", None),
        run_id=getattr(ti, "run_id", None),
        task_id=getattr(ti, "task_id", None),
        map_index=-1 if map_index is None else int(map_index),
        try_number=getattr(ti, "try_number", None),
        max_tries=getattr(ti, "max_tries", None),
        exception_type=exc_type,
        exception_message=exc_message,
        traceback=tb,
        hostname=getattr(ti, "hostname", None) or socket.gethostname(),
        host=host_snapshot(),
        captured_at=datetime.now(timezone.utc),
        extra=_scrubber().scrub_obj(_airflow_redact(dict(extra or {}))),
    )


def is_retry(ti: Any) -> bool:
    """Whether this failure will be retried (the TaskInstance goes to ``up_for_retry``)."""
    state = getattr(ti, "state", None)
    return str(getattr(state, "value", state)) == "up_for_retry"


#: Seconds the Redis spool may take when the API already used the whole budget.
REDIS_SPOOL_SECONDS = 1.0


def dispatch(
    context: FailureContext,
    *,
    recovery_dag_id: str,
    conn_id: str = "faultcat_api_default",
    timeout: float = 2.0,
    started: float | None = None,
) -> str:
    """Trigger the recovery DAG for ``context``; spool it when the API cannot take it in time.

    :param context: the failure.
    :param recovery_dag_id: the DAG to trigger.
    :param conn_id: the ``faultcat_api`` connection.
    :param timeout: the whole budget in seconds; each HTTP call gets what is left of it.
    :param started: ``time.monotonic()`` when the caller began (its capture counts in the time logged).
    :return: ``"triggered"``, ``"duplicate"`` (the API had that run already), ``"spooled"`` (in
        Redis, else in this host's spool folder), or ``"lost"`` when neither could be written
        (logged as an error).
    """
    started = time.monotonic() if started is None else started
    run_id = recovery_run_id(
        context.dag_id or "",
        context.run_id or "",
        context.task_id or "",
        context.map_index,
        context.try_number or 0,
    )
    # Scrubbed at capture already; once more here, since a caller may build its own context.
    conf = _scrubber().scrub_obj(context.model_dump(mode="json", exclude_none=True))
    try:
        from airflow_faultcat.hooks.airflow_api import AirflowApiHook

        # Two calls at most (token, trigger), both within what is left of the budget.
        hook = AirflowApiHook(conn_id, timeout=timeout, deadline=started + timeout)
        try:
            result = hook.trigger_dag_run(recovery_dag_id, run_id, conf)
        finally:
            hook.close()
        outcome = "triggered" if result is not None else "duplicate"
        log.info(
            "faultcat: recovery run %s of %s %s in %.0f ms",
            run_id,
            recovery_dag_id,
            outcome,
            (time.monotonic() - started) * 1000,
        )
        return outcome
    except Exception as exc:
        from airflow_faultcat import spool

        entry = spool.SpoolEntry(recovery_dag_id, run_id, conf)
        # Redis first: every worker drains it. What is left of the budget, at least REDIS_SPOOL_SECONDS.
        if spool.write_redis(entry, max(REDIS_SPOOL_SECONDS, timeout - (time.monotonic() - started))):
            log.warning(
                "faultcat: recovery run %s of %s spooled in Redis in %.0f ms (API unavailable: %s)",
                run_id,
                recovery_dag_id,
                (time.monotonic() - started) * 1000,
                exc,
            )
            return "spooled"
        try:
            path = spool.write(entry)
        except Exception:
            log.exception("faultcat: could not trigger %s nor spool failure %s", recovery_dag_id, run_id)
            return "lost"
        log.warning(
            "faultcat: recovery run %s of %s spooled in %.0f ms to %s (API unavailable: %s)",
            run_id,
            recovery_dag_id,
            (time.monotonic() - started) * 1000,
            path,
            exc,
        )
        return "spooled"
