"""A folder of failures that could not be handed to the recovery DAG yet.

When the API server cannot be reached, the failure callback writes one JSON file per failure
(named by the recovery ``dag_run_id``, so a failure is spooled at most once) and returns. The
``faultcat_recovery`` DAG drains the folder on its next run, and ``faultcat spool replay`` sends
it by hand. A file is removed only once the API accepted it (or already had it: HTTP 409).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


class _Trigger(Protocol):
    def trigger_dag_run(
        self, dag_id: str, dag_run_id: str, conf: dict[str, Any] | None = None, note: str | None = None
    ) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class SpoolEntry:
    """One spooled failure: which DAG to trigger, with which run id and conf."""

    recovery_dag_id: str
    dag_run_id: str
    conf: dict[str, Any]
    path: Path | None = None


def spool_dir() -> Path:
    """The spool folder: ``[faultcat] spool_dir``, default ``$AIRFLOW_HOME/faultcat/spool``."""
    from airflow_faultcat import conf

    return Path(conf.spool_dir())


def write(entry: SpoolEntry, folder: Path | None = None) -> Path:
    """Write ``entry`` atomically; return its file.

    :raises OSError: when the folder cannot be written.
    """
    folder = folder or spool_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{entry.dag_run_id}.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    payload = {"recovery_dag_id": entry.recovery_dag_id, "dag_run_id": entry.dag_run_id, "conf": entry.conf}
    tmp.write_text(json.dumps(payload, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return path


def pending(folder: Path | None = None) -> list[SpoolEntry]:
    """Spooled failures, oldest first; unreadable files are skipped (and left for a human)."""
    folder = folder or spool_dir()
    if not folder.is_dir():
        return []
    entries = []
    for path in sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            entries.append(SpoolEntry(raw["recovery_dag_id"], raw["dag_run_id"], raw["conf"], path))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return entries


def replay(hook: _Trigger, folder: Path | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """Send every spooled failure; remove each one the API accepted or already had.

    :param hook: an :class:`~airflow_faultcat.hooks.airflow_api.AirflowApiHook` (or anything with
        its ``trigger_dag_run``).
    :return: the ``dag_run_id``\\ s sent, and ``(dag_run_id, error)`` for those kept.
    """
    sent: list[str] = []
    kept: list[tuple[str, str]] = []
    for entry in pending(folder):
        try:
            hook.trigger_dag_run(entry.recovery_dag_id, entry.dag_run_id, entry.conf)
        except Exception as exc:  # keep the file; a later replay tries again
            kept.append((entry.dag_run_id, str(exc)))
            continue
        sent.append(entry.dag_run_id)
        if entry.path is not None:
            entry.path.unlink(missing_ok=True)
    return sent, kept
