"""FaultcatStateHook against a real (private) Redis: claims, budgets, circuit, storms, failure."""

from __future__ import annotations

import json
import threading

import pytest
import redis

from airflow_faultcat.core.models import FailureContext
from airflow_faultcat.core.policy import RecoveryPolicy
from airflow_faultcat.hooks.state import FaultcatStateHook, GuardrailsUnavailable, failure_key


def _failure(map_index: int = -1, try_number: int = 1, task_id: str = "load") -> FailureContext:
    return FailureContext(
        dag_id="etl", run_id="manual__1", task_id=task_id, map_index=map_index, try_number=try_number
    )


@pytest.fixture
def hook(redis_conn):
    return FaultcatStateHook(key_prefix="t:")


def test_every_key_expires(hook, redis_conn):
    f = _failure()
    policy = RecoveryPolicy()
    hook.claim(f, "run-a", 60)
    hook.record_outcome(f, {"status": "retried"}, 60)
    hook.acquire_retry(f, 3, 3600)
    hook.record_recovery_result(f, False, policy)
    hook.storm_register("k", f, 900)
    hook.storm_lead("k", "run-a", 900)
    hook.set_storm_escalation("k", {"github": {"number": 1}}, 900)
    hook.remember_escalation("k", {"github": {"number": 1}}, 900)
    r = redis.Redis(port=redis_conn.port)
    keys = r.keys("t:*")
    assert len(keys) == 8
    assert all(r.ttl(k) > 0 for k in keys), {k: r.ttl(k) for k in keys}


def test_claim_is_idempotent_per_failed_try(hook):
    f = _failure()
    assert hook.claim(f, "run-a", 60) is None
    assert hook.claim(f, "run-a", 60) is None, "the same run may go on until it records an outcome"
    assert hook.claim(f, "run-b", 60) == "run-a"
    hook.record_outcome(f, {"status": "retried"}, 60)
    assert hook.claim(f, "run-a", 60) == "run-a", "a re-run of the same run does nothing twice"
    assert hook.get_outcome(f) == {"status": "retried"}
    assert hook.claim(_failure(try_number=2), "run-c", 60) is None, "the next try is a new failure"
    assert failure_key(f) != failure_key(_failure(map_index=0))


def test_retry_budget_is_atomic_under_a_mapped_storm(hook):
    results = []

    def take(i):
        results.append(hook.acquire_retry(_failure(map_index=i), 3, 3600)[0])

    threads = [threading.Thread(target=take, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 3
    assert hook.retries_used(_failure(), 3600) == 3
    assert hook.retries_used(_failure(task_id="other"), 3600) == 0, "budgets are per (dag_id, task_id)"


def test_circuit_opens_after_threshold_and_a_success_resets_the_count(hook):
    policy = RecoveryPolicy(circuit_failure_threshold=3, circuit_cooldown_seconds=600)
    assert hook.record_recovery_result(_failure(try_number=1), False, policy) is False
    assert hook.record_recovery_result(_failure(try_number=1), False, policy) is False, "one try counts once"
    assert hook.record_recovery_result(_failure(try_number=2), False, policy) is False
    assert hook.record_recovery_result(_failure(try_number=3), False, policy) is True
    is_open, failures, until = hook.circuit("etl")
    assert is_open and failures == 3 and until is not None
    state = hook.guardrail_state(_failure(), policy)
    assert state.circuit_open and state.available
    hook.record_recovery_result(_failure(try_number=4), True, policy)
    assert hook.circuit("etl")[1] == 0, "a success resets the failure count"
    assert hook.circuit("etl")[0], "an open circuit stays open for its cooldown"


def test_storm_counts_task_instances_once_and_has_one_leader(hook):
    for i in range(50):
        hook.storm_register("k", _failure(map_index=i), 900)
    assert hook.storm_register("k", _failure(map_index=0, try_number=2), 900) == 50
    assert len(hook.storm_members("k")) == 50
    assert hook.storm_lead("k", "run-1", 900) is None
    assert hook.storm_lead("k", "run-1", 900) is None
    assert hook.storm_lead("k", "run-2", 900) == "run-1"


def test_unreachable_redis(monkeypatch, redis_conn):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DEFAULT", f"redis://127.0.0.1:{port}/0")
    hook = FaultcatStateHook(key_prefix="t:", socket_timeout=0.5)
    state = hook.guardrail_state(_failure(), RecoveryPolicy())
    assert state.available is False and "Connection" in state.error
    with pytest.raises(GuardrailsUnavailable):
        hook.claim(_failure(), "run", 60)
    ok, message = hook.test_connection()
    assert not ok and "Redis" in message


def test_shadow_transitions_and_watermark_persist(hook, redis_conn):
    assert hook.open_violations() == {} and hook.scan_watermark() is None
    hook.apply_transitions({"vm_running|d|r|c|web-01": {"state": "shutoff"}}, [], 3600)
    hook.apply_transitions({"lineage|d|r2||": {"run": None}}, [], 3600)
    assert set(hook.open_violations()) == {"vm_running|d|r|c|web-01", "lineage|d|r2||"}
    hook.apply_transitions({}, ["vm_running|d|r|c|web-01"], 3600)
    assert hook.open_violations() == {"lineage|d|r2||": {"run": None}}
    hook.set_scan_watermark("2026-01-01T00:15:00+00:00", 3600)
    assert hook.scan_watermark() == "2026-01-01T00:15:00+00:00"
    r = redis.Redis(port=redis_conn.port)
    assert all(r.ttl(k) > 0 for k in r.keys("t:shadow*"))


def test_the_database_number_of_a_redis_url_is_used(monkeypatch, redis_conn):
    import redis

    # The redis provider reads only the extra's "db": redis://host:port/3 would use database 0.
    monkeypatch.setenv("AIRFLOW_CONN_REDIS_DB3", f"redis://127.0.0.1:{redis_conn.port}/3")
    state = FaultcatStateHook("redis_db3")
    state.client.set("faultcat-test-db", "3")
    assert redis.Redis(port=redis_conn.port, db=3).get("faultcat-test-db") == b"3"
    assert redis.Redis(port=redis_conn.port, db=0).get("faultcat-test-db") is None
    # An explicit extra wins.
    monkeypatch.setenv(
        "AIRFLOW_CONN_REDIS_EXTRA",
        json.dumps(
            {
                "conn_type": "redis",
                "host": "127.0.0.1",
                "port": redis_conn.port,
                "schema": "3",
                "extra": {"db": 4},
            }
        ),
    )
    FaultcatStateHook("redis_extra").client.set("faultcat-test-extra", "4")
    assert redis.Redis(port=redis_conn.port, db=4).get("faultcat-test-extra") == b"4"
