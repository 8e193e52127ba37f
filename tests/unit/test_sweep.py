"""The sweep's window, filters and dedupe (the REST API and Redis are stood in by two small
objects with their methods; the integration suite runs it against the real stack)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow_faultcat.failures import recovery_run_id
from airflow_faultcat.sweep import OVERLAP, SETTLE, failure_from_task_instance, sweep

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def _ti(dag_id: str, task_id: str = "load", try_number: int = 1, map_index: int = -1) -> dict:
    return {
        "dag_id": dag_id,
        "dag_run_id": "manual__1",
        "task_id": task_id,
        "map_index": map_index,
        "try_number": try_number,
        "hostname": "worker-2",
        "operator": "PythonOperator",
        "end_date": (NOW - timedelta(minutes=3)).isoformat(),
    }


class _Api:
    def __init__(self, tis: list[dict], existing: set[str] = frozenset(), fail: set[str] = frozenset()):
        self.tis, self.existing, self.fail = tis, set(existing), set(fail)
        self.listed: dict = {}
        self.triggered: list[tuple[str, str, dict]] = []

    def list_task_instances(self, dag_id, dag_run_id, **params):
        self.listed = {"dag_id": dag_id, "dag_run_id": dag_run_id, **params}
        return self.tis

    def trigger_dag_run(self, dag_id, dag_run_id, conf=None, note=None):
        if dag_run_id in self.fail:
            raise RuntimeError("503 Service Unavailable")
        if dag_run_id in self.existing:
            return None
        self.existing.add(dag_run_id)
        self.triggered.append((dag_id, dag_run_id, conf))
        return {"dag_run_id": dag_run_id}


class _Claims:
    def __init__(self, claimed: set[str] = frozenset(), broken: bool = False):
        self.claimed, self.broken = claimed, broken

    def handled_by(self, failure):
        if self.broken:
            raise ConnectionError("redis down")
        return "other_recovery" if failure.task_id in self.claimed else None


def test_the_window_starts_before_the_watermark_and_ends_before_now():
    api = _Api([])
    result = sweep(api, recovery_dag_id="faultcat_recovery", watermark=NOW - timedelta(minutes=5), now=NOW)
    assert result.start == NOW - timedelta(minutes=5) - OVERLAP
    assert result.end == NOW - SETTLE
    assert api.listed["state"] == "failed" and api.listed["dag_id"] == "~"
    assert api.listed["end_date_gte"] == result.start.isoformat()


def test_failures_are_handed_over_once_with_the_callbacks_run_id():
    api = _Api([_ti("etl"), _ti("faultcat_recovery"), _ti("etl", "map", map_index=3)])
    first = sweep(api, recovery_dag_id="faultcat_recovery", watermark=None, now=NOW)
    expected = recovery_run_id("etl", "manual__1", "load", -1, 1)
    assert first.failed == 2  # faultcat's own Dags are never swept
    assert expected in first.triggered and len(first.triggered) == 2
    conf = next(c for _, run_id, c in api.triggered if run_id == expected)
    assert conf["extra"]["captured_by"] == "sweep" and conf["hostname"] == "worker-2"
    again = sweep(api, recovery_dag_id="faultcat_recovery", watermark=None, now=NOW)
    assert again.triggered == [] and sorted(again.already) == sorted(first.triggered)


def test_a_failure_claimed_by_another_recovery_dag_is_not_handed_over_again():
    api = _Api([_ti("etl", "load"), _ti("etl", "other")])
    result = sweep(
        api, recovery_dag_id="faultcat_recovery", watermark=None, now=NOW, claims=_Claims({"load"})
    )
    assert [run_id.split("__")[1] for run_id in result.triggered] == ["etl.other.try1"]
    # Redis unreadable: the run id still dedupes within the recovery DAG.
    broken = sweep(
        _Api([_ti("etl")]), recovery_dag_id="r", watermark=None, now=NOW, claims=_Claims(broken=True)
    )
    assert len(broken.triggered) == 1


def test_errors_are_kept_for_the_next_sweep_and_the_pattern_filters():
    failing = recovery_run_id("etl", "manual__1", "load", -1, 1)
    api = _Api([_ti("etl"), _ti("reports")], fail={failing})
    result = sweep(
        api, recovery_dag_id="faultcat_recovery", watermark=None, now=NOW, dag_pattern="etl|reports"
    )
    assert [run_id for run_id, _ in result.errors] == [failing]
    only = sweep(
        _Api([_ti("etl"), _ti("reports")]), recovery_dag_id="r", watermark=None, now=NOW, dag_pattern="rep.*"
    )
    assert only.failed == 1


def test_a_failure_from_a_task_instance_names_its_try_and_host():
    failure = failure_from_task_instance(_ti("etl", try_number=3, map_index=2))
    assert (failure.try_number, failure.map_index, failure.hostname) == (3, 2, "worker-2")
    assert failure.exception_type is None  # the log says what happened
