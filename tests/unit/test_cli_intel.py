"""``faultcat history / triage / quarantine`` against a real (private) Redis, without Airflow."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from airflow_faultcat.cli import main
from airflow_faultcat.core.fingerprint import fingerprint
from airflow_faultcat.history import FailureHistory


@pytest.fixture
def redis_url(redis_conn, monkeypatch):
    url = f"redis://127.0.0.1:{redis_conn.port}/0"
    monkeypatch.setenv("FAULTCAT_REDIS_URL", url)
    monkeypatch.setenv("AIRFLOW__FAULTCAT__REDIS_KEY_PREFIX", "cli:")
    return url


@pytest.fixture
def history(redis_url):
    import redis

    return FailureHistory(redis.Redis.from_url(redis_url), "cli:")


OLD = fingerprint("etl", "load", exception_type="OSError", message="disk full on /data")
NEW = fingerprint("etl", "load", exception_type="KeyError", message="'customer_id'")


def test_history_lists_fingerprints_and_filters_flaky(history, capsys):
    history.record_failure(OLD, run_id="r1", root_cause="STORAGE")
    assert main(["history"]) == 0
    out = capsys.readouterr().out
    assert OLD.id in out and "etl.load STORAGE" in out and "1 fingerprint(s)" in out
    assert main(["history", "--flaky", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_triage_by_runs_and_by_window(history, capsys):
    now = datetime.now(timezone.utc)
    history.record_failure(OLD, run_id="r1", at=now - timedelta(minutes=90))
    history.record_failure(OLD, run_id="r2", at=now - timedelta(minutes=10))
    history.record_failure(NEW, run_id="r2", at=now - timedelta(minutes=5))
    assert main(["triage", "--dag", "etl", "--run", "r2", "--baseline", "r1"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("regression: DagRun r2 against DagRun r1")
    assert main(["triage", "--dag", "etl", "--run", "r1", "--baseline", "r1"]) == 0
    assert capsys.readouterr().out.startswith("known_failures_only")
    assert main(["triage", "--baseline", "1h", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [(c["kind"], c["failure"]["fingerprint"]) for c in report["changes"]] == [
        ("new", NEW.id),
        ("recurring", OLD.id),
    ]


def test_quarantine_add_list_remove(history, capsys):
    assert main(["quarantine", "add", OLD.id, "--owner", "me", "--reason", "JIRA-1", "--expires", "7d"]) == 0
    assert "quarantined " + OLD.id in capsys.readouterr().out
    assert main(["quarantine", "add", OLD.id, "--owner", "me", "--reason", "x", "--expires", "31d"]) == 2
    assert "at most 30 days" in capsys.readouterr().err
    assert main(["quarantine", "list"]) == 0
    assert f"active  {OLD.id}" in capsys.readouterr().out
    assert main(["quarantine", "remove", OLD.id]) == 0
    assert main(["quarantine", "remove", OLD.id]) == 2


def test_bad_input_is_one_line(monkeypatch, capsys):
    monkeypatch.delenv("FAULTCAT_REDIS_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_REDIS_DEFAULT", raising=False)
    assert main(["history"]) == 2
    assert "no Redis" in capsys.readouterr().err
    assert main(["history", "--redis-url", "redis://127.0.0.1:1/0"]) == 2
    assert "Redis at redis://127.0.0.1:1/0: Error 111" in capsys.readouterr().err
    assert main(["history", "--redis-url", "redis://:hunter2@127.0.0.1:1/0"]) == 2
    assert "hunter2" not in capsys.readouterr().err
    assert main(["triage", "--baseline", "soon", "--redis-url", "redis://127.0.0.1:1/0"]) == 2
