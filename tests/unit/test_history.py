"""FailureHistory against a real (private) Redis."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_faultcat.core.fingerprint import FlakeSettings, fingerprint
from airflow_faultcat.history import MAX_EVENTS, FailureHistory


@pytest.fixture
def history(redis_conn):
    import redis

    return FailureHistory(
        redis.Redis(port=redis_conn.port), "t:", retention_seconds=3600, settings=FlakeSettings(min_runs=2)
    )


FP = fingerprint("etl", "load", exception_type="OSError", message="port 5432 refused")


def test_same_failure_in_three_runs_is_one_fingerprint_with_three_occurrences(history):
    for n in range(3):
        occurrences, first = history.record_failure(FP, run_id=f"r{n}", root_cause="NETWORK")
        assert (occurrences, first) == (n + 1, n == 0)
    # A recovery that runs twice for one try counts it once.
    assert history.record_failure(FP, run_id="r2") == (3, False)
    record = history.get(FP.id)
    assert record.occurrences == 3 and record.dags == ["etl"] and record.tasks == ["etl.load"]
    assert record.first_seen <= record.last_seen
    assert history.run_fingerprints("etl", "r1") == [FP.id]
    assert [r.fingerprint for r in history.records()] == [FP.id]
    assert history.records(dag_id="other") == []


def test_pass_on_retry_then_clean_runs_make_flaky_then_healthy(history):
    for n in range(2):
        history.record_failure(FP, run_id=f"r{n}", dag_version="v1")
        assert (
            history.record_success("etl", f"r{n}", "load", try_number=2, dag_version="v1") == "pass_on_retry"
        )
        # A second success report of the same TaskInstance is not a second flake.
        assert history.record_success("etl", f"r{n}", "load", try_number=2, dag_version="v1") is None
    record = history.get(FP.id)
    assert (record.status, record.pass_on_retry, record.flake_class) == ("flaky", 2, "FLAKE-LOGIC")
    for n in range(2, 5):
        assert history.record_success("etl", f"r{n}", "load", try_number=1) == "clean"
    assert history.get(FP.id).status == "healthy"


def test_a_new_dag_version_between_failure_and_success_is_a_fix_not_a_flake(history):
    history.record_failure(FP, run_id="r0", dag_version="v1")
    assert history.record_success("etl", "r0", "load", try_number=2, dag_version="v2") is None
    assert history.get(FP.id).pass_on_retry == 0


def test_memory_per_fingerprint_is_bounded_and_keys_expire(history, redis_conn):
    import redis

    for n in range(MAX_EVENTS + 20):
        history.record_failure(FP, run_id=f"r{n}")
    client = redis.Redis(port=redis_conn.port)
    assert client.llen(f"t:fp:{FP.id}:events") == MAX_EVENTS
    assert history.get(FP.id).occurrences == MAX_EVENTS + 20
    for key in client.scan_iter("t:*"):
        assert 0 < client.ttl(key) <= 3600, key


def test_quarantine_rules(history):
    now = datetime.now(timezone.utc)
    entry = history.quarantine_add(
        FP.id, owner="data-oncall", reason="JIRA-42", expires_at=now + timedelta(days=7)
    )
    assert entry.active() and history.quarantine_of(FP.id) == entry
    with pytest.raises(ValueError, match="at most 30 days"):
        history.quarantine_add(FP.id, owner="a", reason="b", expires_at=now + timedelta(days=31))
    with pytest.raises(ValueError, match="not in the future"):
        history.quarantine_add(FP.id, owner="a", reason="b", expires_at=now - timedelta(seconds=1))
    history.quarantine_add("fp-x", owner="a", reason="b", expires_at=now + timedelta(seconds=1))
    assert [e.fingerprint for e in history.quarantine_list()] == ["fp-x", FP.id]
    assert not history.quarantine_of("fp-x").active(now + timedelta(seconds=2))
    assert history.quarantine_remove(FP.id) and not history.quarantine_remove(FP.id)


def test_failures_between_windows(history):
    t0 = datetime.now(timezone.utc) - timedelta(hours=2)
    other = fingerprint("etl", "load", exception_type="KeyError", message="'customer_id'")
    history.record_failure(FP, run_id="a", at=t0)
    history.record_failure(FP, run_id="b", at=t0 + timedelta(minutes=70))
    history.record_failure(other, run_id="b", at=t0 + timedelta(minutes=80))
    first = history.failures_between(t0, t0 + timedelta(hours=1))
    second = history.failures_between(t0 + timedelta(hours=1), t0 + timedelta(hours=2))
    assert set(first) == {FP.id} and first[FP.id].occurrences == 1
    assert set(second) == {FP.id, other.id}
