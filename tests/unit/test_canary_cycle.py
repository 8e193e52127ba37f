"""The canary's cycle pieces that need no Airflow stack: collectors on a real private Redis and this
host, alert texts, the report table, settings and ``faultcat canary list``."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

import pytest

from airflow_faultcat.cli import main
from airflow_faultcat.core.invariants import InvariantViolation, Snapshot, run_checks
from airflow_faultcat.hooks.canary import collect_snapshot, read_host, read_redis
from airflow_faultcat.operators.canary import clear_text, fire_text, report_table, settings_from_conf


class _Unreachable:
    """An API hook whose server is gone: every call raises as httpx does."""

    def __getattr__(self, name):
        def call(*args, **kwargs):
            raise ConnectionRefusedError(111, "Connection refused")

        return call

    def close(self) -> None:
        pass


@pytest.fixture
def redis_client(redis_conn):
    import redis

    client = redis.Redis(host="127.0.0.1", port=redis_conn.port)
    yield client
    client.flushdb()


def test_redis_keys_and_ttls_are_read_with_scan(redis_client):
    redis_client.set("canary-unit:lock", "x")
    redis_client.set("canary-unit:ok", "x", ex=60)
    redis_client.set("other:key", "x")
    snap = Snapshot(taken_at=datetime.now(timezone.utc))
    read_redis(redis_client, "canary-unit:", snap)
    assert {k.key: k.ttl for k in snap.redis_keys}["canary-unit:lock"] == -1
    assert sorted(k.key for k in snap.redis_keys) == ["canary-unit:lock", "canary-unit:ok"]


def test_host_zombie_made_with_fork_is_seen_then_gone():
    import psutil

    child = os.fork()
    if child == 0:
        os._exit(0)
    try:
        # The child may not have exited yet on a busy machine.
        deadline = time.monotonic() + 10
        while psutil.Process(child).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.05)
        snap = Snapshot(taken_at=datetime.now(timezone.utc))
        read_host(snap)
        [zombie] = [p for p in snap.processes if p.pid == child]
        assert zombie.status == "zombie" and zombie.ppid == os.getpid()
    finally:
        os.waitpid(child, 0)
    snap = Snapshot(taken_at=datetime.now(timezone.utc))
    read_host(snap)
    assert child not in {p.pid for p in snap.processes}


def test_unreachable_api_is_unavailable_and_its_checks_skipped(redis_client):
    snap = collect_snapshot(
        api=_Unreachable(),
        redis_client=redis_client,
        redis_prefix="canary-unit:",
        libvirt_snapshot_of=lambda c: None,
    )
    assert {"api", "health", "libvirt"} <= set(snap.sources_unavailable)
    assert "Connection refused" in snap.sources_unavailable["api"]
    assert snap.sources_not_configured == ["containers"]
    report = run_checks(snap, [])
    assert report.violations == []
    assert {"E-01", "E-03", "E-05", "E-09"} <= {s.invariant_id for s in report.checks_skipped}
    assert "E-07" in report.checks_run


def test_no_redis_client_means_redis_unavailable():
    snap = collect_snapshot(api=_Unreachable(), redis_client=None, redis_prefix="x:", host=False)
    assert snap.sources_unavailable["redis"] == "no Redis client"
    assert "host" in snap.sources_not_configured


def test_alert_texts_name_the_invariant_and_are_scrubbed():
    v = InvariantViolation(
        invariant_id="E-07",
        subject="faultcat:lock",
        message="Redis key faultcat:lock has no expiry",
        observed_state={"key": "faultcat:lock", "ttl": -1, "dsn": "redis://app:s3cr3t-pass@db:6379/0"},
        signal_query="SCAN MATCH faultcat:* + TTL per key",
    )
    text = fire_text(v)
    assert "E-07" in text and "Runbook:" in text and "SCAN MATCH" in text
    assert "s3cr3t-pass" not in text
    cleared = clear_text(v.key, {"message": v.message, "fired_at": "2026-11-21T10:00:00+00:00"})
    assert "cleared" in cleared and "open since 2026-11-21T10:00:00" in cleared


def test_report_table_lists_unavailable_sources_and_transitions():
    snap = Snapshot(taken_at=datetime.now(timezone.utc), sources_unavailable={"redis": "ConnectionError"})
    table = report_table(run_checks(snap, ["E-07|faultcat:lock"]))
    assert "source unavailable: redis: ConnectionError" in table
    assert "skipped E-07" in table and "undecided E-07|faultcat:lock" in table
    assert "cycle_duration_ms=" in table


def test_settings_from_conf_reject_bad_values(monkeypatch):
    monkeypatch.setenv("AIRFLOW__FAULTCAT__CANARY_RESTART_COUNT", "0")
    with pytest.raises(ValueError, match="restart_count"):
        settings_from_conf()
    monkeypatch.setenv("AIRFLOW__FAULTCAT__CANARY_RESTART_COUNT", "5")
    monkeypatch.setenv("AIRFLOW__FAULTCAT__CANARY_QUEUED_SECONDS", "soon")
    with pytest.raises(ValueError, match="canary_queued_seconds"):
        settings_from_conf()


def test_cli_canary_list(capsys):
    assert main(["canary", "list"]) == 0
    out = capsys.readouterr().out
    assert out.count("runbook:") == 11 and "E-01" in out and "E-11" in out
