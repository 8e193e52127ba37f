"""Guardrail state in Redis, through the redis provider's :class:`RedisHook`.

Keys (all under ``[faultcat] redis_key_prefix``, default ``faultcat:``; every key has a TTL):

- ``claim:<failure>``: the recovery run that handles one failed try (idempotency).
- ``outcome:<failure>``: what that run did (JSON).
- ``budget:<dag_id>:<task_id>``: sorted set of automatic retries, scored by time (sliding window).
- ``circuit:<dag_id>:failures`` (sorted set) and ``circuit:<dag_id>:open`` (expires when it closes).
- ``storm:<key>:tis`` (set of TaskInstances), ``storm:<key>:leader``, ``storm:<key>:escalation``.
- ``escalation:<dedup_key>``: where the failure was escalated (JSON), so that a later success
  can resolve it; ``escalated:<dag_id>:<task_id>``: the open escalations of a task (set).

Redis errors surface as :class:`GuardrailsUnavailable`; callers fail safe (no automatic retry).
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from airflow_faultcat.core.models import FailureContext, GuardrailState
from airflow_faultcat.core.policy import RecoveryPolicy
from airflow_faultcat.exceptions import FaultcatError

#: Atomically: drop entries older than the window, and add one if fewer than the budget remain.
#: KEYS[1] budget zset; ARGV: now, window, budget, member. Returns {acquired, used_after}.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
local used = redis.call('ZCARD', KEYS[1])
if used >= tonumber(ARGV[3]) then return {0, used} end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {1, used + 1}
"""

#: Record a failed recovery; open the circuit when the window holds ``threshold`` of them.
#: KEYS: failures zset, open key; ARGV: now, window, threshold, cooldown, member.
_FAIL = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1] - ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[5])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[3]) then
  local opened = redis.call('SET', KEYS[2], ARGV[1] + ARGV[4], 'NX', 'EX', ARGV[4])
  if opened then return {n, 1} end
end
return {n, 0}
"""


class GuardrailsUnavailable(FaultcatError):
    """Redis could not be reached or answered with an error."""


def failure_key(failure: FailureContext) -> str:
    """A short stable id of one failed try (dag_id, run_id, task_id, map_index, try_number).

    A shadow error adds its postcondition's key: it is not the failure of that try, and must not be
    taken for an earlier recovery of it.
    """
    parts = [failure.dag_id, failure.run_id, failure.task_id, failure.map_index, failure.try_number]
    if failure.extra.get("shadow_key"):
        parts.append(failure.extra["shadow_key"])
    raw = "\0".join(str(x) for x in parts)
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def ti_id(failure: FailureContext) -> str:
    """``run_id/task_id/map_index``: one TaskInstance, whatever its try."""
    return f"{failure.run_id}/{failure.task_id}/{failure.map_index}"


class FaultcatStateHook(BaseHook):
    """Guardrail state kept in Redis (idempotency, retry budgets, circuit breaker, storm dedup).

    :param redis_conn_id: the redis provider's connection (default ``redis_default``).
    :param key_prefix: prefix of every key (default ``[faultcat] redis_key_prefix``).
    :param socket_timeout: seconds to wait for Redis to connect or answer; a guardrail must never
        hold a recovery for long.
    """

    conn_name_attr = "redis_conn_id"
    default_conn_name = "redis_default"
    conn_type = "redis"
    hook_name = "faultcat guardrail state (Redis)"

    def __init__(
        self,
        redis_conn_id: str = default_conn_name,
        key_prefix: str | None = None,
        socket_timeout: float = 2.0,
    ) -> None:
        super().__init__()
        self.redis_conn_id = redis_conn_id
        if key_prefix is None:
            from airflow_faultcat import conf

            key_prefix = conf.redis_key_prefix()
        self.prefix = key_prefix
        self.socket_timeout = socket_timeout

    @cached_property
    def client(self) -> Any:
        """The ``redis.Redis`` client of the connection, with short socket timeouts."""
        from airflow.providers.redis.hooks.redis import RedisHook

        try:
            client = RedisHook(redis_conn_id=self.redis_conn_id).get_conn()
        except Exception as exc:
            raise GuardrailsUnavailable(f"Redis connection {self.redis_conn_id!r}: {exc}") from exc
        # The provider sets no timeouts; a blackholed Redis would block the task for minutes.
        client.connection_pool.connection_kwargs.update(
            socket_timeout=self.socket_timeout, socket_connect_timeout=self.socket_timeout
        )
        db = self._db_from_uri()
        if db is not None:
            client.connection_pool.connection_kwargs["db"] = db
        return client

    def _db_from_uri(self) -> int | None:
        """The database number of ``redis://host:6379/1`` (the connection's schema), which the redis
        provider ignores (it reads only the extra's ``db``): ``None`` when the extra sets it."""
        try:
            connection = self.get_connection(self.redis_conn_id)
        except Exception:  # the provider's hook found it a moment ago; nothing more to read
            return None
        schema = (connection.schema or "").strip("/")
        if "db" in (connection.extra_dejson or {}) or not schema.isdigit():
            return None
        return int(schema)

    def get_conn(self) -> Any:
        """Return the ``redis.Redis`` client."""
        return self.client

    def history(self) -> Any:
        """The :class:`~airflow_faultcat.history.FailureHistory` on this Redis, with the
        ``[faultcat]`` retention and flake settings. Its calls raise ``redis`` errors as they come."""
        from airflow_faultcat import conf
        from airflow_faultcat.history import FailureHistory

        return FailureHistory(
            self.client,
            self.prefix,
            retention_seconds=conf.history_retention_seconds(),
            settings=conf.flake_settings(),
        )

    def test_connection(self) -> tuple[bool, str]:
        """PING Redis."""
        try:
            self._call(lambda r: r.ping())
        except GuardrailsUnavailable as exc:
            return False, str(exc)
        return True, "Redis answered PING"

    def key(self, *parts: Any) -> str:
        """A namespaced key."""
        return self.prefix + ":".join(str(p) for p in parts)

    def _call(self, fn: Any) -> Any:
        import redis

        try:
            return fn(self.client)
        except GuardrailsUnavailable:
            raise
        except (redis.RedisError, OSError) as exc:
            raise GuardrailsUnavailable(f"Redis ({self.redis_conn_id}): {type(exc).__name__}: {exc}") from exc

    # -- idempotency -------------------------------------------------------------------------

    def claim(self, failure: FailureContext, owner: str, ttl_seconds: int) -> str | None:
        """Claim one failed try for the recovery run ``owner``.

        :return: ``None`` when this run may act (it claimed it now, or claimed it before and has
            recorded no outcome yet); otherwise the run that already handled it.
        """
        key = self.key("claim", failure_key(failure))

        def go(r: Any) -> str | None:
            if r.set(key, owner, nx=True, ex=ttl_seconds):
                return None
            holder = r.get(key)
            holder = holder.decode() if isinstance(holder, bytes) else holder
            if holder == owner and not r.exists(self.key("outcome", failure_key(failure))):
                return None
            return holder or "unknown"

        return self._call(go)

    def handled_by(self, failure: FailureContext) -> str | None:
        """The recovery run that claimed this failed try (any recovery DAG), or ``None``."""
        raw = self._call(lambda r: r.get(self.key("claim", failure_key(failure))))
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def record_outcome(self, failure: FailureContext, outcome: dict[str, Any], ttl_seconds: int) -> None:
        """Store what the recovery did about one failed try."""
        key = self.key("outcome", failure_key(failure))
        self._call(lambda r: r.set(key, json.dumps(outcome, default=str), ex=ttl_seconds))

    def get_outcome(self, failure: FailureContext) -> dict[str, Any] | None:
        """What a recovery did about one failed try, if recorded."""
        raw = self._call(lambda r: r.get(self.key("outcome", failure_key(failure))))
        return json.loads(raw) if raw else None

    def store_bundle(
        self, failure: FailureContext, bundle: dict[str, Any], location: str, ttl_seconds: int
    ) -> None:
        """Keep a failure's (scrubbed) evidence bundle where every later step can read it.

        :param failure: the failed try.
        :param bundle: the bundle as written (already scrubbed).
        :param location: where the bundle file is (a path on one worker, or a shared URL).
        :param ttl_seconds: how long it is kept.
        """
        key = self.key("bundle", failure_key(failure))
        payload = json.dumps({"location": location, "bundle": bundle}, default=str)
        self._call(lambda r: r.set(key, payload, ex=ttl_seconds))

    def get_bundle(self, failure: FailureContext) -> tuple[dict[str, Any], str] | None:
        """A failure's bundle and its file's location, as :meth:`store_bundle` kept them."""
        raw = self._call(lambda r: r.get(self.key("bundle", failure_key(failure))))
        if not raw:
            return None
        kept = json.loads(raw)
        return kept["bundle"], kept["location"]

    # -- retry budget ------------------------------------------------------------------------

    def _budget_key(self, failure: FailureContext) -> str:
        return self.key("budget", failure.dag_id, failure.task_id)

    def retries_used(self, failure: FailureContext, window_seconds: int) -> int:
        """Automatic retries of (dag_id, task_id) in the last ``window_seconds``."""
        key, now = self._budget_key(failure), time.time()
        return int(self._call(lambda r: r.zcount(key, now - window_seconds, "+inf")))

    def acquire_retry(self, failure: FailureContext, budget: int, window_seconds: int) -> tuple[bool, int]:
        """Take one retry from the (dag_id, task_id) budget, atomically (mapped storms race here).

        :return: (acquired, retries used in the window afterwards).
        """
        member = f"{ti_id(failure)}/{failure.try_number}"
        now = time.time()
        acquired, used = self._call(
            lambda r: r.eval(_ACQUIRE, 1, self._budget_key(failure), now, window_seconds, budget, member)
        )
        return bool(acquired), int(used)

    # -- circuit breaker ---------------------------------------------------------------------

    def circuit(self, dag_id: str) -> tuple[bool, int, datetime | None]:
        """(open, failed recoveries in the window, when it closes) for ``dag_id``."""

        def go(r: Any) -> tuple[bool, int, datetime | None]:
            until = r.get(self.key("circuit", dag_id, "open"))
            failures = r.zcard(self.key("circuit", dag_id, "failures"))
            when = datetime.fromtimestamp(float(until), tz=timezone.utc) if until else None
            return until is not None, int(failures), when

        return self._call(go)

    def record_recovery_result(self, failure: FailureContext, ok: bool, policy: RecoveryPolicy) -> bool:
        """Record how a recovery's rerun ended; a success resets the Dag's failure count.

        :return: whether this failure opened the circuit.
        """
        fails, opened = (
            self.key("circuit", failure.dag_id, "failures"),
            self.key("circuit", failure.dag_id, "open"),
        )
        if ok:
            self._call(lambda r: r.delete(fails))
            return False
        member = f"{ti_id(failure)}/{failure.try_number}"
        _, did_open = self._call(
            lambda r: r.eval(
                _FAIL,
                2,
                fails,
                opened,
                time.time(),
                policy.circuit_window_seconds,
                policy.circuit_failure_threshold,
                policy.circuit_cooldown_seconds,
                member,
            )
        )
        return bool(did_open)

    # -- storms ------------------------------------------------------------------------------

    def storm_register(self, storm_key: str, failure: FailureContext, window_seconds: int) -> int:
        """Count a TaskInstance into the storm of ``storm_key`` (a set: tries count once).

        :return: TaskInstances in the storm so far.
        """
        key = self.key("storm", storm_key, "tis")

        def go(r: Any) -> int:
            pipe = r.pipeline()
            pipe.sadd(key, ti_id(failure))
            pipe.expire(key, window_seconds, nx=True)
            pipe.scard(key)
            return int(pipe.execute()[-1])

        return self._call(go)

    def storm_members(self, storm_key: str) -> list[str]:
        """The TaskInstances of a storm, sorted."""
        raw = self._call(lambda r: r.smembers(self.key("storm", storm_key, "tis")))
        return sorted(m.decode() if isinstance(m, bytes) else m for m in raw)

    def storm_lead(self, storm_key: str, owner: str, window_seconds: int) -> str | None:
        """Become the one run that escalates a storm, for ``window_seconds``.

        :return: ``None`` if ``owner`` leads (now or already), else the leading run.
        """
        key = self.key("storm", storm_key, "leader")

        def go(r: Any) -> str | None:
            if r.set(key, owner, nx=True, ex=window_seconds):
                return None
            holder = r.get(key)
            holder = holder.decode() if isinstance(holder, bytes) else holder
            return None if holder == owner else holder

        return self._call(go)

    def release_storm_lead(self, storm_key: str, owner: str) -> None:
        """Give up leading a storm (the escalation failed), if ``owner`` still leads it."""
        key = self.key("storm", storm_key, "leader")

        def go(r: Any) -> None:
            holder = r.get(key)
            if (holder.decode() if isinstance(holder, bytes) else holder) == owner:
                r.delete(key)

        self._call(go)

    def storm_escalation(self, storm_key: str) -> dict[str, Any] | None:
        """Where the storm's leader escalated, once it has."""
        raw = self._call(lambda r: r.get(self.key("storm", storm_key, "escalation")))
        return json.loads(raw) if raw else None

    def set_storm_escalation(self, storm_key: str, info: dict[str, Any], window_seconds: int) -> None:
        """Remember where the storm was escalated, for the followers that arrive later."""
        key = self.key("storm", storm_key, "escalation")
        self._call(lambda r: r.set(key, json.dumps(info, default=str), ex=window_seconds))

    # -- escalations -------------------------------------------------------------------------

    def remember_escalation(self, dedup_key: str, info: dict[str, Any], ttl_seconds: int) -> None:
        """Remember an open escalation (e.g. the GitHub issue) of ``dedup_key``."""
        key = self.key("escalation", dedup_key)
        self._call(lambda r: r.set(key, json.dumps(info, default=str), ex=ttl_seconds))

    def open_escalation(self, dedup_key: str) -> dict[str, Any] | None:
        """The escalation remembered for ``dedup_key``, if any."""
        raw = self._call(lambda r: r.get(self.key("escalation", dedup_key)))
        return json.loads(raw) if raw else None

    def forget_escalation(
        self, dedup_key: str, dag_id: str | None = None, task_id: str | None = None
    ) -> None:
        """Forget an escalation once it is resolved (and its entry in the task's index)."""

        def go(r: Any) -> None:
            r.delete(self.key("escalation", dedup_key))
            if dag_id and task_id:
                r.srem(self.key("escalated", dag_id, task_id), dedup_key)

        self._call(go)

    def index_escalation(self, dag_id: str, task_id: str, dedup_key: str, ttl_seconds: int) -> None:
        """Note that (dag_id, task_id) has an open escalation, for the success listener to find."""
        key = self.key("escalated", dag_id, task_id)

        def go(r: Any) -> None:
            pipe = r.pipeline()
            pipe.sadd(key, dedup_key)
            pipe.expire(key, ttl_seconds)
            pipe.execute()

        self._call(go)

    def escalations_of(self, dag_id: str, task_id: str) -> list[str]:
        """Dedup keys of the open escalations of (dag_id, task_id)."""
        raw = self._call(lambda r: r.smembers(self.key("escalated", dag_id, task_id)))
        return sorted(m.decode() if isinstance(m, bytes) else m for m in raw)

    # -- shadow-error scans ------------------------------------------------------------------

    def open_violations(self, scope: str = "shadow") -> dict[str, dict[str, Any]]:
        """The violations open after the last scan (key -> what was recorded when it fired)."""
        raw = self._call(lambda r: r.hgetall(self.key(scope, "open")))
        return {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()}

    def apply_transitions(
        self, fired: dict[str, dict[str, Any]], cleared: list[str], ttl_seconds: int, scope: str = "shadow"
    ) -> None:
        """Open the violations that fired and close the ones that cleared, in one transaction.

        :param fired: key -> what to remember (observed state, when, where it was reported).
        :param cleared: keys to close.
        :param ttl_seconds: how long the set of open violations lives without a scan.
        """
        key = self.key(scope, "open")

        def go(r: Any) -> None:
            pipe = r.pipeline(transaction=True)
            if fired:
                pipe.hset(key, mapping={k: json.dumps(v, default=str) for k, v in fired.items()})
            if cleared:
                pipe.hdel(key, *cleared)
            pipe.expire(key, ttl_seconds)
            pipe.execute()

        self._call(go)

    def zombies_first_seen(self, scope: str = "canary") -> dict[str, str]:
        """When the canary first saw each zombie it still saw last cycle (key -> ISO timestamp)."""
        raw = self._call(lambda r: r.hgetall(self.key(scope, "zombies")))
        return {_text(k): _text(v) for k, v in raw.items()}

    def set_zombies_first_seen(self, seen: dict[str, str], ttl_seconds: int, scope: str = "canary") -> None:
        """Replace the zombies the canary sees now with when each was first seen."""
        key = self.key(scope, "zombies")

        def go(r: Any) -> None:
            pipe = r.pipeline(transaction=True)
            pipe.delete(key)
            if seen:
                pipe.hset(key, mapping=seen)
                pipe.expire(key, ttl_seconds)
            pipe.execute()

        self._call(go)

    def scan_watermark(self, scope: str = "shadow") -> str | None:
        """Where the last complete scan ended (an ISO timestamp), or ``None`` before the first."""
        raw = self._call(lambda r: r.get(self.key(scope, "watermark")))
        return raw.decode() if isinstance(raw, bytes) else raw

    def set_scan_watermark(self, value: str, ttl_seconds: int, scope: str = "shadow") -> None:
        """Record where a complete scan ended; the next scan starts there (nothing skipped)."""
        self._call(lambda r: r.set(self.key(scope, "watermark"), value, ex=ttl_seconds))

    # -- all at once -------------------------------------------------------------------------

    def guardrail_state(self, failure: FailureContext, policy: RecoveryPolicy) -> GuardrailState:
        """Read budgets and the circuit for one failure; unreachable Redis gives ``available=False``."""
        try:
            used = self.retries_used(failure, policy.retry_budget_window_seconds)
            is_open, failures, until = self.circuit(failure.dag_id)
        except GuardrailsUnavailable as exc:
            return GuardrailState(
                available=False,
                error=str(exc),
                retry_budget=policy.retry_budget,
                budget_window_seconds=policy.retry_budget_window_seconds,
            )
        return GuardrailState(
            retries_used=used,
            retry_budget=policy.retry_budget,
            budget_window_seconds=policy.retry_budget_window_seconds,
            circuit_open=is_open,
            circuit_failures=failures,
            circuit_open_until=until,
        )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
