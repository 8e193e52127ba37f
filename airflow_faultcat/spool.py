"""Failures that could not be handed to the recovery DAG yet.

When the API server cannot be reached, the failure callback hands the failure to Redis (a hash
every worker reads; faultcat's guardrails need Redis anyway), within a short time budget; only
when Redis cannot take it either does it write one JSON file per failure to this host's spool
folder (named by the recovery ``dag_run_id``, so a failure is spooled at most once). Both are
drained by every recovery run's collect step, by ``faultcat_sweep`` and by ``faultcat spool
replay``; a folder only by those that run on its host. An entry is removed only once the API
accepted it (or already had it: HTTP 409).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

#: The Redis hash of spooled failures (under ``[faultcat] redis_key_prefix``): run id -> entry.
REDIS_SPOOL = "spool"


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


def _payload(entry: SpoolEntry) -> str:
    return json.dumps(
        {"recovery_dag_id": entry.recovery_dag_id, "dag_run_id": entry.dag_run_id, "conf": entry.conf},
        default=str,
    )


def write_redis(entry: SpoolEntry, timeout: float, redis_conn_id: str | None = None) -> bool:
    """Hand ``entry`` to Redis within ``timeout`` seconds; ``False`` when it could not (then the
    caller writes the file spool). Never raises, never waits longer than ``timeout``: the lookup
    of the connection and the write run in a daemon thread.

    :param entry: the failure.
    :param timeout: seconds allowed.
    :param redis_conn_id: the Redis connection (default ``[faultcat] redis_conn_id``).
    """
    done = threading.Event()
    ok: list[bool] = []

    def go() -> None:
        try:
            from airflow_faultcat import conf
            from airflow_faultcat.hooks.state import FaultcatStateHook

            state = FaultcatStateHook(redis_conn_id or conf.get_str("redis_conn_id"), socket_timeout=timeout)
            state.client.hset(state.key(REDIS_SPOOL), entry.dag_run_id, _payload(entry))
            ok.append(True)
        except Exception as exc:
            log.info("faultcat: Redis did not take the spooled failure %s: %s", entry.dag_run_id, exc)
        finally:
            done.set()

    threading.Thread(target=go, name="faultcat-spool", daemon=True).start()
    done.wait(max(0.0, timeout))
    return bool(ok)


def pending_redis(redis_conn_id: str | None = None) -> list[SpoolEntry]:
    """Failures spooled in Redis (``[]`` when Redis cannot be read).

    :param redis_conn_id: the Redis connection (default ``[faultcat] redis_conn_id``).
    """
    try:
        from airflow_faultcat import conf
        from airflow_faultcat.hooks.state import FaultcatStateHook

        state = FaultcatStateHook(redis_conn_id or conf.get_str("redis_conn_id"))
        raw = state.client.hgetall(state.key(REDIS_SPOOL))
    except Exception as exc:
        log.info("faultcat: the Redis spool cannot be read: %s", exc)
        return []
    entries = []
    for value in raw.values():
        try:
            item = json.loads(value)
            entries.append(SpoolEntry(item["recovery_dag_id"], item["dag_run_id"], item["conf"]))
        except (ValueError, KeyError, TypeError):
            continue
    return entries


def _forget_redis(run_ids: list[str], redis_conn_id: str | None) -> None:
    if not run_ids:
        return
    try:
        from airflow_faultcat import conf
        from airflow_faultcat.hooks.state import FaultcatStateHook

        state = FaultcatStateHook(redis_conn_id or conf.get_str("redis_conn_id"))
        state.client.hdel(state.key(REDIS_SPOOL), *run_ids)
    except Exception as exc:  # sent twice next time: the API answers 409
        log.info("faultcat: sent failures stay in the Redis spool: %s", exc)


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


def replay(
    hook: _Trigger, folder: Path | None = None, *, redis: bool = True, redis_conn_id: str | None = None
) -> tuple[list[str], list[tuple[str, str]]]:
    """Send every spooled failure (Redis's, then this host's folder); remove each one the API
    accepted or already had.

    :param hook: an :class:`~airflow_faultcat.hooks.airflow_api.AirflowApiHook` (or anything with
        its ``trigger_dag_run``).
    :param folder: the spool folder (default ``[faultcat] spool_dir``).
    :param redis: drain the Redis spool too.
    :param redis_conn_id: its connection (default ``[faultcat] redis_conn_id``).
    :return: the ``dag_run_id``\\ s sent, and ``(dag_run_id, error)`` for those kept.
    """
    sent: list[str] = []
    kept: list[tuple[str, str]] = []
    if redis:
        from_redis: list[str] = []
        for entry in pending_redis(redis_conn_id):
            try:
                hook.trigger_dag_run(entry.recovery_dag_id, entry.dag_run_id, entry.conf)
            except Exception as exc:
                kept.append((entry.dag_run_id, str(exc)))
                continue
            from_redis.append(entry.dag_run_id)
        _forget_redis(from_redis, redis_conn_id)
        sent.extend(from_redis)
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
