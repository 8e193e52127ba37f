"""Where a recovery step reads the failed try's log from, on whichever worker it runs.

The collect step keeps a copy of the log in the evidence store (``[faultcat] evidence_path``).
When that store is shared (object storage, a shared volume), every later step reads the copy.
When it is a worker's own disk and the step runs on another worker (CeleryExecutor, a fresh pod
per task on Kubernetes), the copy is not there: the step reads the log again through Airflow's
REST API, the source of truth. When neither works, the step says so as a diagnostics gap.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

log = logging.getLogger(__name__)

#: Bytes of log kept in memory while it is read from the API; beyond, a temporary file of this
#: task's own (never handed to another task).
SPOOLED_MAX_MEMORY = 8 << 20
#: Bytes of log read from the API at most (the analyzer reads any size, the API pages it).
MAX_API_LOG_BYTES = 1 << 30


def is_local_store(path: str) -> bool:
    """Whether an evidence path is a worker's own disk (``file://`` or a plain path).

    :param path: ``[faultcat] evidence_path`` or an operator's ``evidence_path``.
    """
    return "://" not in path or path.startswith("file://") or path.startswith("local://")


def executor_is_local() -> bool:
    """Whether Airflow runs every task on the scheduler's machine (Local or Sequential executor).

    Read from ``[core] executor``; a list of executors is local only when all of them are.
    """
    try:
        from airflow.configuration import conf as airflow_conf

        names = airflow_conf.get("core", "executor", fallback="LocalExecutor")
    except Exception:  # pragma: no cover - a config that cannot be read: assume the worst
        return False
    kinds = [name.strip().rsplit(".", 1)[-1].split(":")[-1] for name in str(names).split(",") if name.strip()]
    return bool(kinds) and all(kind in ("LocalExecutor", "SequentialExecutor") for kind in kinds)


def store_warning(path: str) -> str | None:
    """The warning for an evidence store on a worker's own disk under a distributed executor.

    :param path: the evidence path in use.
    :return: one sentence, or ``None`` when the store is shared or the executor local.
    """
    if not is_local_store(path) or executor_is_local():
        return None
    return (
        f"the evidence store {path} is this worker's own disk and the executor runs tasks on other "
        "machines: later steps read the log through the REST API and the outcome through Redis; set "
        "[faultcat] evidence_path to shared storage (s3://, gs://, a shared volume) to keep bundles "
        "in one place"
    )


@contextmanager
def collected_log(
    collected: dict[str, Any], faultcat_api_conn_id: str
) -> Iterator[tuple[IO[bytes] | None, str, str | None]]:
    """Open the failed try's log for this step.

    :param collected: the collect step's output (``log_path``, ``context``).
    :param faultcat_api_conn_id: the ``faultcat_api`` connection, used when the copy is not here.
    :return: a context manager of ``(stream or None, where it came from, gap or None)``; where is
        ``"evidence store"``, ``"REST API"`` or ``"none"``; the gap says why there is no log.
    """
    from airflow.sdk import ObjectStoragePath

    from airflow_faultcat.core.models import FailureContext
    from airflow_faultcat.hooks.airflow_api import AirflowApiError, AirflowApiHook

    path = collected.get("log_path")
    if path:
        copy = ObjectStoragePath(path)
        try:
            readable = copy.exists()
        except Exception as exc:  # an unreachable store: the API has the log too
            log.warning("faultcat: the evidence store cannot be read (%s): %s", path, exc)
            readable = False
        if readable:
            with copy.open("rb") as stream:
                yield stream, "evidence store", None
            return
    if not collected.get("log_lines"):
        # collect read no line from the API either: asking again gives the same answer.
        yield None, "none", "the failed try's log could not be read (the collect step read no line)"
        return
    failure = FailureContext.model_validate(collected["context"])
    hook = AirflowApiHook(faultcat_api_conn_id, timeout=30)
    spooled = tempfile.SpooledTemporaryFile(max_size=SPOOLED_MAX_MEMORY)  # noqa: SIM115 - closed below
    try:
        size = 0
        try:
            for line in hook.iter_task_log(
                failure.dag_id, failure.run_id, failure.task_id, failure.try_number, failure.map_index
            ):
                data = line.encode("utf-8", "replace") + b"\n"
                size += len(data)
                if size > MAX_API_LOG_BYTES:
                    break
                spooled.write(data)
        except AirflowApiError as exc:
            where = f"not on this host ({path})" if path else "not kept"
            yield (
                None,
                "none",
                f"the failed try's log could not be read: the copy is {where} and the REST API said: {exc}"[
                    :500
                ],
            )
            return
        finally:
            hook.close()
        spooled.seek(0)
        log.info("faultcat: the log copy is not on this host; read %d bytes through the REST API", size)
        yield spooled, "REST API", None  # type: ignore[misc]
    finally:
        spooled.close()


def with_gap(diagnosis: Any, gap: str | None) -> Any:
    """``diagnosis`` with ``gap`` added to its ``diagnostics_gap`` (a copy; unchanged when none).

    :param diagnosis: a :class:`~airflow_faultcat.core.models.Diagnosis`.
    :param gap: one sentence, or ``None``.
    """
    if not gap:
        return diagnosis
    merged = f"{diagnosis.diagnostics_gap}; {gap}" if diagnosis.diagnostics_gap else gap
    return diagnosis.model_copy(update={"diagnostics_gap": merged[:2000]})
