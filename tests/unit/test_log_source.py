"""Where a recovery step reads the failed try's log: the evidence store's copy, the REST API, or
a diagnostics gap (the REST API path runs against the real Airflow in the integration suite)."""

from __future__ import annotations

import pytest

from airflow_faultcat.core.models import Category, Diagnosis
from airflow_faultcat.log_source import (
    collected_log,
    executor_is_local,
    is_local_store,
    store_warning,
    with_gap,
)

CONTEXT = {"dag_id": "etl", "run_id": "r1", "task_id": "load", "try_number": 1, "map_index": -1}


def test_the_copy_in_the_evidence_store_is_read_when_this_host_sees_it(tmp_path):
    copy = tmp_path / "task.log"
    copy.write_bytes(b"first\nsecond\n")
    collected = {"context": CONTEXT, "log_path": f"file://{copy}", "log_lines": 2}
    with collected_log(collected, "faultcat_api_default") as (stream, source, gap):
        assert stream is not None and stream.read() == b"first\nsecond\n"
    assert (source, gap) == ("evidence store", None)


def test_no_log_read_by_collect_is_a_gap_not_a_silent_empty_log(tmp_path):
    collected = {"context": CONTEXT, "log_path": f"file://{tmp_path}/elsewhere/task.log", "log_lines": 0}
    with collected_log(collected, "faultcat_api_default") as (stream, source, gap):
        assert stream is None
    assert source == "none"
    assert "could not be read" in gap


def test_a_gap_is_added_to_the_diagnosis():
    diagnosis = Diagnosis(root_cause=Category.UNKNOWN, confidence=0, confidence_reason="x", summary="s")
    assert with_gap(diagnosis, None) is diagnosis
    first = with_gap(diagnosis, "no log")
    assert first.diagnostics_gap == "no log"
    assert with_gap(first, "no probes").diagnostics_gap == "no log; no probes"


@pytest.mark.parametrize(
    ("path", "local"),
    [
        ("/opt/airflow/faultcat/evidence", True),
        ("file:///opt/airflow/faultcat/evidence", True),
        ("s3://bucket/faultcat", False),
        ("gs://bucket/faultcat", False),
    ],
)
def test_local_stores(path, local):
    assert is_local_store(path) is local


@pytest.mark.parametrize(
    ("executor", "local"),
    [
        ("LocalExecutor", True),
        ("CeleryExecutor", False),
        ("KubernetesExecutor", False),
        ("LocalExecutor,CeleryExecutor", False),
        ("airflow.providers.celery.executors.celery_executor.CeleryExecutor", False),
    ],
)
def test_a_local_store_under_a_distributed_executor_is_said_loudly(monkeypatch, executor, local):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    assert executor_is_local() is local
    warning = store_warning("file:///opt/airflow/faultcat/evidence")
    assert (warning is None) is local
    if warning:
        assert "shared storage" in warning
    assert store_warning("s3://bucket/faultcat") is None
