"""Fingerprints and flake status: pure functions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from airflow_faultcat.core.fingerprint import (
    FlakeSettings,
    HistoryEvent,
    fingerprint,
    flake_class,
    flake_status,
    message_template,
    runs_of,
)
from airflow_faultcat.core.models import Category


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("connect to 10.0.0.7:5432 failed after 3 tries", "connect to 10.9.1.2:6543 failed after 12 tries"),
        (
            "[Errno 2] No such file or directory: '/data/in/2025-01-03/part-0007.csv'",
            "[Errno 2] No such file or directory: '/srv/x/part-9.csv'",
        ),
        ("pod etl-7f9c8d2-xk2p9 OOMKilled", "pod etl-a1b2c3d-q8w7e OOMKilled"),
        (
            "run 8c2e4a1b-1111-4222-8333-444455556666 at 2025-01-03T10:00:00Z",
            "run 0e2e4a1b-aaaa-4222-8333-444455556666 at 2026-11-21 09:13:44.123+00:00",
        ),
        ("HTTP 503 from https://api.example.com/v1/items?page=3", "HTTP 502 from http://10.0.0.1:8080/x"),
        ('host "db-3.prod.example.com" refused', 'host "db-11.stage.example.org" refused'),
        ("worker17 lost heartbeat", "worker203 lost heartbeat"),
    ],
)
def test_variants_of_one_failure_share_a_template(a, b):
    assert message_template(a) == message_template(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("No module named 'pandas'", "No module named 'numpy'"),
        ("connection refused", "connection reset by peer"),
        ("accepting TCP/IP connections on port 5432", "accepting TCP connections on port 5432"),
    ],
)
def test_different_failures_keep_different_templates(a, b):
    assert message_template(a) != message_template(b)


def test_template_is_one_line_and_bounded():
    assert message_template("first 1\nsecond 2") == "first <*>"
    assert len(message_template("x " * 5000)) <= 300
    assert message_template(None) == message_template("") == ""


def test_fingerprint_ignores_run_try_and_module_but_not_task_or_cause():
    one = fingerprint("etl", "load", exception_type="psycopg2.OperationalError", message="port 5432 refused")
    same = fingerprint("etl", "load", exception_type="OperationalError", message="port 6543 refused")
    assert one.id == same.id and one.id.startswith("fp-") and len(one.id) == 19
    assert (
        fingerprint("etl", "other", exception_type="OperationalError", message="port 1 refused").id != one.id
    )
    by_pattern = fingerprint(
        "etl", "load", exception_type="OperationalError", pattern_id="postgres_001", message="x"
    )
    assert by_pattern.basis == "pattern:postgres_001"
    other_pattern = fingerprint("etl", "load", exception_type="OperationalError", pattern_id="network_003")
    assert by_pattern.id != other_pattern.id != one.id


@pytest.mark.parametrize(
    ("category", "cls"),
    [
        (Category.TIMEOUT, "FLAKE-TIMING"),
        (Category.NETWORK, "FLAKE-NET"),
        (Category.RESOURCE_EXHAUSTION, "FLAKE-RES"),
        (Category.SERVICE_DEPENDENCY, "FLAKE-EXT"),
        (Category.CONFIGURATION, "FLAKE-ENV"),
        ("UNKNOWN", "FLAKE-LOGIC"),
    ],
)
def test_flake_class(category, cls):
    assert flake_class(category) == cls


T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _events(*runs: str) -> list[HistoryEvent]:
    """One run per letter: f failed for good, p failed then passed on retry, c clean."""
    out = []
    for n, kind in enumerate(runs):
        at = T0 + timedelta(minutes=n)
        run = f"r{n}"
        if kind in "fp":
            out.append(HistoryEvent(kind="fail", at=at, run_id=run, try_number=1))
        if kind == "p":
            out.append(
                HistoryEvent(kind="pass_on_retry", at=at + timedelta(seconds=5), run_id=run, try_number=2)
            )
        if kind == "c":
            out.append(HistoryEvent(kind="clean", at=at, run_id=run, try_number=1))
    return out


def test_runs_of_folds_events_per_run():
    assert runs_of(_events("f", "p", "c")) == ["failed", "flaky", "clean"]


@pytest.mark.parametrize(
    ("runs", "status"),
    [
        ("", "new"),
        ("p", "new"),
        ("pp", "flaky"),
        ("ppc", "flaky"),
        ("ppccc", "healthy"),
        ("fff", "broken"),
        ("pfff", "broken"),
        ("pffpf", "flaky"),
        ("ffccc", "healthy"),
        ("fcfcfcfcfc", "healthy"),
    ],
)
def test_flake_status(runs, status):
    got, why = flake_status(_events(*runs), FlakeSettings(min_runs=2, flaky_rate=0.2, healthy_after=3))
    assert got == status, why
    assert why
