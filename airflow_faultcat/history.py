"""Failure history in Redis: per fingerprint, what happened and when; quarantines.

Used by the recovery DAG and the success listener (through
:meth:`~airflow_faultcat.hooks.state.FaultcatStateHook.history`) and by the ``faultcat`` CLI
(through a plain redis-py client, without Airflow). Every key expires after the retention (30
days by default), renewed by each write; each fingerprint keeps at most :data:`MAX_EVENTS` events
and :data:`MAX_MEMBERS` affected Dags and tasks, so memory per fingerprint is bounded.

Keys (after the prefix, ``faultcat:`` by default):

- ``fp:<id>``: hash of the fingerprint's record (first and last seen, occurrences, outcomes...);
- ``fp:<id>:events``: its latest events (JSON, newest first);
- ``fp:<id>:dags``, ``fp:<id>:tasks``: the Dags and tasks affected;
- ``fps``: sorted set of fingerprint ids by last seen (listing, windows);
- ``fp-task:<dag_id>:<task_id>``: the fingerprints of a task (clean runs are recorded on them);
- ``fp-ti:<dag_id>:<run_id>:<task_id>:<map_index>``: the fingerprint of a TaskInstance's last
  failure (a later success of it is a pass on retry);
- ``fp-run:<dag_id>:<run_id>``: the fingerprints of a DagRun (triage against a baseline run);
- ``quarantine``: hash of quarantine entries by fingerprint id.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from airflow_faultcat.core.fingerprint import (
    FlakeSettings,
    FlakeStatus,
    HistoryEvent,
    flake_class,
    flake_status,
)

#: Events kept per fingerprint.
MAX_EVENTS = 200
#: Dags and tasks kept per fingerprint.
MAX_MEMBERS = 100
#: Default retention of every history key, in seconds.
RETENTION_SECONDS = 30 * 24 * 3600
#: The longest a quarantine may last.
MAX_QUARANTINE = timedelta(days=30)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class QuarantineEntry(BaseModel):
    """A fingerprint that is diagnosed and recorded but not escalated, until ``expires_at``.

    :param fingerprint: the fingerprint id.
    :param owner: who owns the fix (a person or team).
    :param reason: why it is quarantined (a ticket, a known upstream bug).
    :param created_at: when it was added.
    :param expires_at: when it stops applying (at most 30 days after ``created_at``).
    """

    model_config = ConfigDict(extra="forbid")

    fingerprint: str
    owner: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    created_at: datetime
    expires_at: datetime

    def active(self, at: datetime | None = None) -> bool:
        """Whether it still applies."""
        return (at or _now()) < self.expires_at


class FingerprintRecord(BaseModel):
    """What the history says about one fingerprint.

    :param status: ``new``, ``healthy``, ``flaky`` or ``broken`` (see
        :func:`~airflow_faultcat.core.fingerprint.flake_status`), with ``status_reason``.
    :param flake_class: the flake class of its root cause (meaningful when flaky).
    :param outcomes: how many recoveries ended how (``retry_succeeded``, ``retry_failed``,
        ``escalated``...).
    :param events: the latest events, newest first.
    """

    model_config = ConfigDict(extra="forbid")

    fingerprint: str
    dag_id: str
    task_id: str
    basis: str = ""
    exception_type: str = ""
    root_cause: str = "UNKNOWN"
    pattern_id: str | None = None
    severity: str | None = None
    first_seen: datetime
    last_seen: datetime
    occurrences: int = 0
    pass_on_retry: int = 0
    dags: list[str] = Field(default_factory=list)
    tasks: list[str] = Field(default_factory=list)
    outcomes: dict[str, int] = Field(default_factory=dict)
    status: FlakeStatus = "new"
    status_reason: str = ""
    flake_class: str = "FLAKE-LOGIC"
    quarantine: QuarantineEntry | None = None
    events: list[HistoryEvent] = Field(default_factory=list)


class FailureHistory:
    """Reads and writes the failure history in Redis.

    :param client: a redis-py client (``redis.Redis``), e.g. ``RedisHook(...).get_conn()``.
    :param prefix: the key prefix (``[faultcat] redis_key_prefix``).
    :param retention_seconds: how long a key lives after its last write.
    :param settings: the flake thresholds.
    """

    def __init__(
        self,
        client: Any,
        prefix: str = "faultcat:",
        *,
        retention_seconds: int = RETENTION_SECONDS,
        settings: FlakeSettings | None = None,
    ) -> None:
        self.r = client
        self.prefix = prefix
        self.retention = int(retention_seconds)
        self.settings = settings or FlakeSettings()

    def key(self, *parts: Any) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    # -- writing ---------------------------------------------------------------------------
    def record_failure(
        self,
        fp: Any,
        *,
        run_id: str,
        map_index: int = -1,
        try_number: int = 1,
        root_cause: str = "UNKNOWN",
        pattern_id: str | None = None,
        severity: str | None = None,
        dag_version: str | None = None,
        at: datetime | None = None,
    ) -> tuple[int, bool]:
        """Record one failed try with fingerprint ``fp`` (a :class:`Fingerprint`).

        Idempotent per try: recording the same (run, map index, try) again changes nothing.

        :return: (occurrences so far, whether this fingerprint was first seen now).
        """
        at = at or _now()
        fid = fp.id
        seen = self.key("fp-seen", fid, run_id, map_index, try_number)
        if not self.r.set(seen, "1", nx=True, ex=self.retention):
            return int(self.r.hget(self.key("fp", fid), "occurrences") or 0), False
        record = self.key("fp", fid)
        first = not self.r.exists(record)
        event = HistoryEvent(kind="fail", at=at, run_id=run_id, try_number=try_number)
        pipe = self.r.pipeline(transaction=True)
        pipe.hsetnx(record, "first_seen", at.isoformat())
        pipe.hset(
            record,
            mapping={
                "last_seen": at.isoformat(),
                "dag_id": fp.dag_id,
                "task_id": fp.task_id,
                "basis": fp.basis,
                "exception_type": fp.exception_type,
                "root_cause": root_cause,
                "pattern_id": pattern_id or "",
                "severity": severity or "",
            },
        )
        pipe.hincrby(record, "occurrences", 1)
        pipe.lpush(self.key("fp", fid, "events"), event.model_dump_json())
        pipe.ltrim(self.key("fp", fid, "events"), 0, MAX_EVENTS - 1)
        pipe.zadd(self.key("fps"), {fid: at.timestamp()})
        pipe.sadd(self.key("fp-task", fp.dag_id, fp.task_id), fid)
        pipe.set(
            self.key("fp-ti", fp.dag_id, run_id, fp.task_id, map_index),
            json.dumps({"fingerprint": fid, "try_number": try_number, "dag_version": dag_version}),
            ex=self.retention,
        )
        pipe.sadd(self.key("fp-run", fp.dag_id, run_id), fid)
        for name in (
            ("fp", fid),
            ("fp", fid, "events"),
            ("fp-task", fp.dag_id, fp.task_id),
            ("fp-run", fp.dag_id, run_id),
            ("fps",),
        ):
            pipe.expire(self.key(*name), self.retention)
        results = pipe.execute()
        self._add_member(fid, "dags", fp.dag_id)
        self._add_member(fid, "tasks", f"{fp.dag_id}.{fp.task_id}")
        return int(results[2]), first

    def _add_member(self, fid: str, kind: str, value: str) -> None:
        key = self.key("fp", fid, kind)
        if self.r.scard(key) < MAX_MEMBERS or self.r.sismember(key, value):
            self.r.sadd(key, value)
        self.r.expire(key, self.retention)

    def record_outcome(self, fingerprint_id: str, status: str) -> None:
        """Count how a recovery of this fingerprint ended (``escalated``, ``retry_succeeded``...)."""
        record = self.key("fp", fingerprint_id)
        if self.r.exists(record):
            self.r.hincrby(record, f"outcome:{status}", 1)

    def record_success(
        self,
        dag_id: str,
        run_id: str,
        task_id: str,
        map_index: int = -1,
        try_number: int = 1,
        dag_version: str | None = None,
        at: datetime | None = None,
    ) -> str | None:
        """Record a TaskInstance's success: a pass on retry of its fingerprinted failure (same Dag
        version: nothing changed), or a clean run of its task's fingerprints (first try).

        :return: ``pass_on_retry``, ``clean`` or ``None`` (nothing to record).
        """
        at = at or _now()
        if try_number >= 2:
            raw = self.r.get(self.key("fp-ti", dag_id, run_id, task_id, map_index))
            if not raw:
                return None
            failed = json.loads(_text(raw))
            if failed.get("dag_version") and dag_version and failed["dag_version"] != dag_version:
                # A new Dag version between the failure and the success: a fix, not a flake.
                return None
            fid = failed["fingerprint"]
            if not self.r.set(self.key("fp-pass", fid, run_id, map_index), "1", nx=True, ex=self.retention):
                return None
            self._event(fid, HistoryEvent(kind="pass_on_retry", at=at, run_id=run_id, try_number=try_number))
            self.r.hincrby(self.key("fp", fid), "pass_on_retry", 1)
            return "pass_on_retry"
        fids = [_text(f) for f in self.r.smembers(self.key("fp-task", dag_id, task_id))]
        for fid in fids:
            if self.r.set(self.key("fp-clean", fid, run_id, map_index), "1", nx=True, ex=self.retention):
                self._event(fid, HistoryEvent(kind="clean", at=at, run_id=run_id, try_number=try_number))
        return "clean" if fids else None

    def _event(self, fid: str, event: HistoryEvent) -> None:
        pipe = self.r.pipeline(transaction=True)
        pipe.lpush(self.key("fp", fid, "events"), event.model_dump_json())
        pipe.ltrim(self.key("fp", fid, "events"), 0, MAX_EVENTS - 1)
        pipe.expire(self.key("fp", fid, "events"), self.retention)
        pipe.expire(self.key("fp", fid), self.retention)
        pipe.execute()

    # -- reading ---------------------------------------------------------------------------
    def get(self, fingerprint_id: str) -> FingerprintRecord | None:
        """One fingerprint's record with its status, or ``None`` when unknown (or expired)."""
        raw = {_text(k): _text(v) for k, v in (self.r.hgetall(self.key("fp", fingerprint_id)) or {}).items()}
        if not raw:
            return None
        events = [
            HistoryEvent.model_validate_json(_text(e))
            for e in self.r.lrange(self.key("fp", fingerprint_id, "events"), 0, MAX_EVENTS - 1)
        ]
        status, why = flake_status(events, self.settings)
        outcomes = {k.split(":", 1)[1]: int(v) for k, v in raw.items() if k.startswith("outcome:")}
        return FingerprintRecord(
            fingerprint=fingerprint_id,
            dag_id=raw.get("dag_id", ""),
            task_id=raw.get("task_id", ""),
            basis=raw.get("basis", ""),
            exception_type=raw.get("exception_type", ""),
            root_cause=raw.get("root_cause") or "UNKNOWN",
            pattern_id=raw.get("pattern_id") or None,
            severity=raw.get("severity") or None,
            first_seen=datetime.fromisoformat(raw["first_seen"]),
            last_seen=datetime.fromisoformat(raw["last_seen"]),
            occurrences=int(raw.get("occurrences") or 0),
            pass_on_retry=int(raw.get("pass_on_retry") or 0),
            dags=sorted(_text(m) for m in self.r.smembers(self.key("fp", fingerprint_id, "dags"))),
            tasks=sorted(_text(m) for m in self.r.smembers(self.key("fp", fingerprint_id, "tasks"))),
            outcomes=outcomes,
            status=status,
            status_reason=why,
            flake_class=flake_class(raw.get("root_cause") or "UNKNOWN"),
            quarantine=self.quarantine_of(fingerprint_id),
            events=events,
        )

    def records(self, dag_id: str | None = None, since: datetime | None = None) -> list[FingerprintRecord]:
        """Every fingerprint seen since ``since`` (default: within the retention), newest first."""
        low = since.timestamp() if since else "-inf"
        ids = [_text(i) for i in self.r.zrevrangebyscore(self.key("fps"), "+inf", low)]
        out = []
        for fid in ids:
            record = self.get(fid)
            if record is not None and (dag_id is None or record.dag_id == dag_id):
                out.append(record)
        return out

    def run_fingerprints(self, dag_id: str, run_id: str) -> list[str]:
        """The fingerprints of a DagRun's failures."""
        return sorted(_text(f) for f in self.r.smembers(self.key("fp-run", dag_id, run_id)))

    def failures_between(
        self, start: datetime, end: datetime, dag_id: str | None = None
    ) -> dict[str, FingerprintRecord]:
        """Fingerprints with at least one failure in [start, end), their count there in
        ``occurrences`` (the record otherwise as stored)."""
        out = {}
        for record in self.records(dag_id, since=start):
            count = sum(1 for e in record.events if e.kind == "fail" and start <= e.at < end)
            if count:
                out[record.fingerprint] = record.model_copy(update={"occurrences": count})
        return out

    # -- quarantine ------------------------------------------------------------------------
    def quarantine_add(
        self, fingerprint_id: str, *, owner: str, reason: str, expires_at: datetime
    ) -> QuarantineEntry:
        """Quarantine a fingerprint until ``expires_at``.

        :raises ValueError: when the expiry is past or more than 30 days away, or owner or
            reason is empty.
        """
        now = _now()
        if expires_at.tzinfo is None:
            raise ValueError("the expiry needs a time zone (UTC)")
        if expires_at <= now:
            raise ValueError(f"the expiry {expires_at.isoformat()} is not in the future")
        if expires_at - now > MAX_QUARANTINE:
            raise ValueError(f"a quarantine lasts at most {MAX_QUARANTINE.days} days")
        entry = QuarantineEntry(
            fingerprint=fingerprint_id, owner=owner, reason=reason, created_at=now, expires_at=expires_at
        )
        self.r.hset(self.key("quarantine"), fingerprint_id, entry.model_dump_json())
        # Expired entries stay (reported as expired) until removed or the whole set ages out.
        self.r.expire(self.key("quarantine"), int(MAX_QUARANTINE.total_seconds()) * 2)
        return entry

    def quarantine_remove(self, fingerprint_id: str) -> bool:
        """Remove an entry; whether there was one."""
        return bool(self.r.hdel(self.key("quarantine"), fingerprint_id))

    def quarantine_of(self, fingerprint_id: str) -> QuarantineEntry | None:
        """The entry of a fingerprint, active or expired."""
        raw = self.r.hget(self.key("quarantine"), fingerprint_id)
        return QuarantineEntry.model_validate_json(_text(raw)) if raw else None

    def quarantine_list(self) -> list[QuarantineEntry]:
        """Every entry, active and expired, soonest expiry first."""
        raw = self.r.hgetall(self.key("quarantine")) or {}
        entries = [QuarantineEntry.model_validate_json(_text(v)) for v in raw.values()]
        return sorted(entries, key=lambda e: e.expires_at)
