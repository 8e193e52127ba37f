"""Tests for :class:`airflow_faultcat.hooks.marquez.MarquezHook` against the Marquez stand-in.

Real HTTP over loopback. Events reach the stand-in the way the OpenLineage provider sends them: the
OpenLineage client's event classes, the provider's facet classes and the client's HTTP transport,
when those packages are installed; literal OpenLineage JSON otherwise. Every answer the stand-in
gives in any test is checked against ``tests/standins/contracts/marquez-openapi.yml``.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from airflow_faultcat.hooks import marquez as marquez_module
from airflow_faultcat.hooks.marquez import MarquezHook, MarquezUnavailable
from tests.standins import CONTRACTS
from tests.standins.marquez_api import CONTRACT, MarquezApiStandin, operation_of, response_errors

CONN_ID = "faultcat_marquez_standin"
API_KEY = "mqz_Standin0Key1For2Faultcat3Tests"
PRODUCER = "https://github.com/apache/airflow/tree/providers-openlineage/2.20.3"
DAG_ID = "etl_daily"
TASK_ID = "load"
RUN_ID = "scheduled__2025-01-01T00:00:00+00:00"
LOGICAL_DATE = datetime(2025, 1, 1, tzinfo=timezone.utc)

try:
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter
except ImportError:  # the provider is optional: the hook then finds runs by their facets only
    OpenLineageAdapter = None

needs_provider = pytest.mark.skipif(
    OpenLineageAdapter is None, reason="apache-airflow-providers-openlineage is not installed"
)


# ---- fixtures ---------------------------------------------------------------------------------


def _check_answers(standin: MarquezApiStandin) -> list[str]:
    problems = []
    for request in standin.requests:
        where = f"{request.method} {request.path} -> {request.status}"
        if request.status < 300:
            operation = operation_of(request.method, request.path)
            problems += [
                f"{where}: {e}" for e in response_errors(operation, request.status, request.response)
            ]
        elif not (
            isinstance(request.response, dict)
            and request.response.get("code") == request.status
            and isinstance(request.response.get("message"), str)
        ):
            problems.append(f"{where}: not Marquez's error shape: {request.response!r}")
    return problems


@pytest.fixture
def marquez() -> Iterator[MarquezApiStandin]:
    """A running Marquez stand-in; every answer it gave is checked against the contract afterwards."""
    with MarquezApiStandin() as standin:
        yield standin
        problems = _check_answers(standin)
    assert problems == []


def _set_conn(monkeypatch: pytest.MonkeyPatch, port: int, **fields: Any) -> str:
    conn = {
        "conn_type": "marquez",
        "host": "127.0.0.1",
        "port": port,
        "schema": "http",
        "extra": {"namespace": "default"},
        **fields,
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    return CONN_ID


@pytest.fixture
def hook(marquez: MarquezApiStandin, monkeypatch: pytest.MonkeyPatch) -> Iterator[MarquezHook]:
    """A hook on a ``marquez`` connection to the stand-in."""
    hook = MarquezHook(_set_conn(monkeypatch, marquez.port), timeout=5)
    yield hook
    hook.close()


# ---- events -----------------------------------------------------------------------------------


def _dag_run_facets(run_id: str, clear_number: int) -> dict[str, Any]:
    dag_run = {"dag_id": DAG_ID, "run_id": run_id, "clear_number": clear_number}
    return {"airflowDagRun": {"dag": {"dag_id": DAG_ID}, "dagRun": dag_run}}


def _task_facets(run_id: str, try_number: int, map_index: int | None) -> dict[str, Any]:
    return {
        "airflow": {
            "dag": {"dag_id": DAG_ID},
            "dagRun": {"dag_id": DAG_ID, "run_id": run_id, "clear_number": 0},
            "task": {"task_id": TASK_ID},
            "taskInstance": {"try_number": try_number, "map_index": map_index},
            "taskUuid": str(uuid.uuid4()),
        }
    }


def emit(standin: MarquezApiStandin, event_type: str, ol_run_id: str, job: str, facets: dict) -> None:
    """Send one OpenLineage run event to the stand-in, as the provider would."""
    event_time = datetime.now(timezone.utc)
    try:
        from airflow.providers.openlineage.plugins.facets import AirflowDagRunFacet, AirflowRunFacet
        from openlineage.client import OpenLineageClient
        from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
        from openlineage.client.transport.http import HttpConfig, HttpTransport
    except ImportError:
        literal = {
            name: {"_producer": PRODUCER, "_schemaURL": f"{PRODUCER}#/{name}", **value}
            for name, value in facets.items()
        }
        event = {
            "eventType": event_type,
            "eventTime": event_time.isoformat(),
            "run": {"runId": ol_run_id, "facets": literal},
            "job": {"namespace": "default", "name": job, "facets": {}},
            "inputs": [],
            "outputs": [],
            "producer": PRODUCER,
            "schemaURL": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent",
        }
        httpx.post(f"{standin.url}/api/v1/lineage", json=event, timeout=5).raise_for_status()
        return
    classes = {"airflowDagRun": AirflowDagRunFacet, "airflow": AirflowRunFacet}
    run_facets = {name: classes[name](**value) for name, value in facets.items()}
    event = RunEvent(
        eventType=RunState[event_type],
        eventTime=event_time.isoformat(),
        run=Run(runId=ol_run_id, facets=run_facets),
        job=Job(namespace="default", name=job),
        producer=PRODUCER,
    )
    client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=standin.url, timeout=5)))
    client.emit(event)


def provider_dag_run_id(clear_number: int = 0) -> str:
    return OpenLineageAdapter.build_dag_run_id(
        dag_id=DAG_ID, logical_date=LOGICAL_DATE, clear_number=clear_number
    )


def provider_task_run_id(try_number: int, map_index: int = -1) -> str:
    return OpenLineageAdapter.build_task_instance_run_id(
        dag_id=DAG_ID, task_id=TASK_ID, try_number=try_number, logical_date=LOGICAL_DATE, map_index=map_index
    )


# ---- DagRuns ----------------------------------------------------------------------------------


@needs_provider
def test_find_dag_run_by_the_provider_run_id(marquez: MarquezApiStandin, hook: MarquezHook) -> None:
    ol_id = provider_dag_run_id()
    emit(marquez, "START", ol_id, DAG_ID, _dag_run_facets(RUN_ID, 0))
    emit(marquez, "COMPLETE", ol_id, DAG_ID, _dag_run_facets(RUN_ID, 0))

    run, query = hook.find_dag_run(DAG_ID, RUN_ID, LOGICAL_DATE)

    assert run is not None and run["id"] == ol_id and run["state"] == "COMPLETED"
    assert run["facets"]["airflowDagRun"]["dagRun"]["run_id"] == RUN_ID
    assert query == f"GET /api/v1/jobs/runs/{ol_id}"
    # One call: found by id, no listing.
    assert [r.path for r in marquez.requests if r.method == "GET"] == [f"/api/v1/jobs/runs/{ol_id}"]


def test_find_dag_run_falls_back_to_the_run_facet(marquez: MarquezApiStandin, hook: MarquezHook) -> None:
    other = str(uuid.uuid4())
    emit(marquez, "START", other, DAG_ID, _dag_run_facets("manual__other", 0))
    # An id the provider would not compute for these inputs (as after a clear, or another namespace).
    ol_id = str(uuid.uuid4())
    emit(marquez, "START", ol_id, DAG_ID, _dag_run_facets(RUN_ID, 0))

    run, query = hook.find_dag_run(DAG_ID, RUN_ID, LOGICAL_DATE)

    assert run is not None and run["id"] == ol_id and run["state"] == "RUNNING"
    assert f"GET /api/v1/namespaces/default/jobs/{DAG_ID}/runs (matched facet airflowDagRun" in query
    if OpenLineageAdapter is not None:
        assert query.startswith(f"GET /api/v1/jobs/runs/{provider_dag_run_id()} (404); ")


@needs_provider
def test_cleared_dag_run_with_unknown_clear_number_takes_the_latest_clear(
    marquez: MarquezApiStandin, hook: MarquezHook
) -> None:
    first, second = provider_dag_run_id(0), provider_dag_run_id(1)
    emit(marquez, "FAIL", first, DAG_ID, _dag_run_facets(RUN_ID, 0))
    emit(marquez, "COMPLETE", second, DAG_ID, _dag_run_facets(RUN_ID, 1))

    by_id, _ = hook.find_dag_run(DAG_ID, RUN_ID, LOGICAL_DATE, clear_number=1)
    latest, query = hook.find_dag_run(DAG_ID, RUN_ID, LOGICAL_DATE, clear_number=None)

    assert by_id is not None and by_id["id"] == second
    assert latest is not None and latest["id"] == second and latest["state"] == "COMPLETED"
    assert "/runs/" not in query  # unknown clear number: no lookup by the clear-0 id


def test_without_the_provider_runs_are_found_by_facet(
    marquez: MarquezApiStandin, hook: MarquezHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "airflow.providers.openlineage.plugins.adapter", None)
    ol_id = str(uuid.uuid4())
    emit(marquez, "COMPLETE", ol_id, DAG_ID, _dag_run_facets(RUN_ID, 0))

    run, query = hook.find_dag_run(DAG_ID, RUN_ID, LOGICAL_DATE)

    assert run is not None and run["id"] == ol_id
    assert query.startswith(f"GET /api/v1/namespaces/default/jobs/{DAG_ID}/runs (matched facet")


def test_dag_run_without_lineage_is_none(marquez: MarquezApiStandin, hook: MarquezHook) -> None:
    emit(marquez, "COMPLETE", str(uuid.uuid4()), DAG_ID, _dag_run_facets("manual__other", 0))

    run, query = hook.find_dag_run(DAG_ID, RUN_ID, LOGICAL_DATE)
    unknown_job, _ = hook.find_dag_run("never_ran", RUN_ID, None)

    assert run is None and unknown_job is None
    assert f"(no run with facet airflowDagRun.dagRun.run_id='{RUN_ID}' in 1 runs)" in query


# ---- task tries -------------------------------------------------------------------------------


@needs_provider
def test_find_task_run_by_the_provider_run_id(marquez: MarquezApiStandin, hook: MarquezHook) -> None:
    job = f"{DAG_ID}.{TASK_ID}"
    emit(marquez, "FAIL", provider_task_run_id(1), job, _task_facets(RUN_ID, 1, None))
    emit(marquez, "START", provider_task_run_id(2), job, _task_facets(RUN_ID, 2, None))

    run, query = hook.find_task_run(DAG_ID, TASK_ID, RUN_ID, 1, logical_date_or_run_after=LOGICAL_DATE)

    assert run is not None and run["id"] == provider_task_run_id(1) and run["state"] == "FAILED"
    assert query == f"GET /api/v1/jobs/runs/{provider_task_run_id(1)}"


def test_find_task_run_by_facet_matches_try_and_map_index(
    marquez: MarquezApiStandin, hook: MarquezHook
) -> None:
    job = f"{DAG_ID}.{TASK_ID}"
    ids = {(t, m): str(uuid.uuid4()) for t in (1, 2) for m in (0, 1)}
    for (try_number, map_index), ol_id in ids.items():
        emit(marquez, "COMPLETE", ol_id, job, _task_facets(RUN_ID, try_number, map_index))
    unmapped = str(uuid.uuid4())
    emit(marquez, "ABORT", unmapped, job, _task_facets(RUN_ID, 1, None))

    run, query = hook.find_task_run(DAG_ID, TASK_ID, RUN_ID, 2, map_index=1)
    plain, _ = hook.find_task_run(DAG_ID, TASK_ID, RUN_ID, 1)
    missing, _ = hook.find_task_run(DAG_ID, TASK_ID, RUN_ID, 3, map_index=0)

    assert run is not None and run["id"] == ids[(2, 1)]
    assert "airflow.taskInstance.try_number=2, airflow.taskInstance.map_index=1" in query
    assert plain is not None and plain["id"] == unmapped and plain["state"] == "ABORTED"
    assert missing is None


# ---- plain calls ------------------------------------------------------------------------------


def test_get_run_and_missing_run(marquez: MarquezApiStandin, hook: MarquezHook) -> None:
    ol_id = str(uuid.uuid4())
    emit(marquez, "START", ol_id, DAG_ID, _dag_run_facets(RUN_ID, 0))
    emit(marquez, "COMPLETE", ol_id, DAG_ID, {})

    run = hook.get_run(ol_id)

    assert run is not None and run["state"] == "COMPLETED" and run["durationMs"] >= 0
    assert "airflowDagRun" in run["facets"]  # facets merged over the events
    assert hook.get_run(str(uuid.uuid4())) is None


def test_list_job_runs_pages_newest_first(
    marquez: MarquezApiStandin, hook: MarquezHook, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(marquez_module, "PAGE_SIZE", 2)
    ids = [str(uuid.uuid4()) for _ in range(5)]
    for ol_id in ids:
        emit(marquez, "START", ol_id, DAG_ID, {})

    runs = hook.list_job_runs("default", DAG_ID, limit=10)
    first_four = hook.list_job_runs("default", DAG_ID, limit=4)

    assert [r["id"] for r in runs] == ids[::-1]
    assert [r["id"] for r in first_four] == ids[::-1][:4]
    offsets = [r.query["offset"][0] for r in marquez.requests if r.path.endswith("/runs")]
    assert offsets == ["0", "2", "4", "0", "2"]
    assert hook.list_job_runs("default", "unknown_job") == []


def test_api_key_is_sent_as_bearer(monkeypatch: pytest.MonkeyPatch) -> None:
    with MarquezApiStandin(api_key=API_KEY) as standin:
        good = MarquezHook(_set_conn(monkeypatch, standin.port, password=API_KEY))
        assert good.get_run(str(uuid.uuid4())) is None
        bad = MarquezHook(_set_conn(monkeypatch, standin.port, password="wrong"))
        with pytest.raises(MarquezUnavailable) as err:
            bad.get_run(str(uuid.uuid4()))
        problems = _check_answers(standin)
    assert err.value.status_code == 401
    assert problems == []


# ---- unavailable ------------------------------------------------------------------------------


def test_marquez_down_is_unavailable(marquez: MarquezApiStandin, hook: MarquezHook) -> None:
    assert hook.test_connection()[0] is True
    marquez.down()

    with pytest.raises(MarquezUnavailable) as err:
        hook.find_dag_run(DAG_ID, RUN_ID, LOGICAL_DATE)
    ok, message = hook.test_connection()

    assert err.value.status_code == 503
    assert ok is False and "503" in message
    marquez.up()
    assert hook.test_connection()[0] is True
    marquez.reset()
    assert marquez.requests == [] and marquez.runs == {}


def test_connection_refused_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    standin = MarquezApiStandin().start()
    port = standin.port
    standin.stop()  # nothing listens on the port any more
    hook = MarquezHook(_set_conn(monkeypatch, port), timeout=2)

    with pytest.raises(MarquezUnavailable) as err:
        hook.get_run(str(uuid.uuid4()))
    ok, message = hook.test_connection()

    assert err.value.status_code == 0
    assert ok is False and "GET /api/v1/namespaces/default/jobs/" in message and "failed" in message


def test_namespace_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "marquez", "host": "https://marquez.example", "password": API_KEY}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    monkeypatch.delenv("OPENLINEAGE_NAMESPACE", raising=False)
    hook = MarquezHook(CONN_ID)

    assert hook.base_url == "https://marquez.example"
    assert hook.namespace == "default"
    assert hook.get_conn().headers["Authorization"] == f"Bearer {API_KEY}"
    assert (MarquezHook.conn_type, MarquezHook.default_conn_name) == ("marquez", "marquez_default")


# ---- contract ---------------------------------------------------------------------------------


def test_every_stand_in_answer_follows_the_contract(marquez: MarquezApiStandin, hook: MarquezHook) -> None:
    ol_id = str(uuid.uuid4())
    emit(marquez, "START", ol_id, DAG_ID, _dag_run_facets(RUN_ID, 0))
    emit(marquez, "COMPLETE", ol_id, DAG_ID, _dag_run_facets(RUN_ID, 0))
    hook.get_run(ol_id)
    hook.get_run(str(uuid.uuid4()))
    hook.list_job_runs("default", DAG_ID)
    httpx.post(f"{marquez.url}/api/v1/lineage", json={"eventType": "START"}, timeout=5)

    assert {operation_of(r.method, r.path) for r in marquez.requests} == {
        "recordLineage",
        "getRun",
        "getRuns",
    }
    assert {r.status for r in marquez.requests} == {200, 404, 422}
    assert _check_answers(marquez) == []
    # The check is not vacuous: a run in a state the contract does not know is caught.
    broken = {**marquez.runs[ol_id].as_json(), "state": "SUCCESS"}
    assert response_errors("getRun", 200, broken)
    assert response_errors("getRuns", 200, {"runs": [{**broken, "facets": {"x": {}}}]})


#: The shared Marquez contract, beside the checkout (as the Airflow contract test looks for it).
SHARED_CONTRACT = Path(__file__).resolve().parents[4] / "shared" / "contracts" / "marquez-openapi.yml"


def _without_examples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_examples(v) for k, v in value.items() if k != "example"}
    if isinstance(value, list):
        return [_without_examples(v) for v in value]
    return value


@pytest.mark.skipif(not SHARED_CONTRACT.exists(), reason="the shared Marquez contract is not here")
def test_trimmed_contract_matches_its_source() -> None:
    source = _without_examples(yaml.safe_load(SHARED_CONTRACT.read_text()))
    trimmed = yaml.safe_load((CONTRACTS / CONTRACT).read_text())
    # Undo the two documented changes (SOURCES.md); everything else is the source's text.
    for prop in trimmed["components"]["schemas"]["IncompleteRun"]["properties"].values():
        if isinstance(prop.get("type"), list):
            prop["type"] = prop["type"][0]
    run = trimmed["components"]["schemas"]["Run"]
    run["anyOf"] = run.pop("allOf")
    for kind, entries in trimmed["components"].items():
        for name, value in entries.items():
            assert value == source["components"][kind][name], f"{kind}.{name} differs from the source"
    for path, item in trimmed["paths"].items():
        for method, operation in item.items():
            assert operation == source["paths"][path][method], f"{method} {path} differs from the source"


def test_run_timestamps_parse(marquez: MarquezApiStandin, hook: MarquezHook) -> None:
    ol_id = str(uuid.uuid4())
    emit(marquez, "START", ol_id, DAG_ID, {})
    run = hook.get_run(ol_id)

    created = datetime.fromisoformat(run["createdAt"].replace("Z", "+00:00"))
    assert abs(created - datetime.now(timezone.utc)) < timedelta(minutes=1)
    assert run["endedAt"] is None and run["durationMs"] is None


# ---- many runs at once, and the trigger's async lookup ----------------------------------------


def test_dag_run_index_pages_and_keeps_the_latest_clear(
    marquez: MarquezApiStandin, hook: MarquezHook
) -> None:
    for n in range(130):
        emit(marquez, "COMPLETE", str(uuid.uuid4()), DAG_ID, _dag_run_facets(f"manual__{n}", 0))
    cleared = str(uuid.uuid4())
    emit(marquez, "START", cleared, DAG_ID, _dag_run_facets("manual__7", 1))
    before = len(marquez.requests)
    index, query = hook.dag_run_index(DAG_ID, limit=500)
    assert len(index) == 130
    assert index["manual__7"]["id"] == cleared and index["manual__7"]["state"] == "RUNNING"
    assert index["manual__8"]["state"] == "COMPLETED"
    # 131 runs in pages of 100: two list calls, however many DagRuns are looked up.
    assert len(marquez.requests) - before == 2
    assert query.startswith(f"GET /api/v1/namespaces/default/jobs/{DAG_ID}/runs (131 runs)")


def test_task_run_index_by_run_try_and_map_index(marquez: MarquezApiStandin, hook: MarquezHook) -> None:
    job = f"{DAG_ID}.{TASK_ID}"
    emit(marquez, "FAIL", str(uuid.uuid4()), job, _task_facets(RUN_ID, 1, None))
    emit(marquez, "COMPLETE", str(uuid.uuid4()), job, _task_facets(RUN_ID, 2, None))
    emit(marquez, "COMPLETE", str(uuid.uuid4()), job, _task_facets(RUN_ID, 1, 3))
    index, _ = hook.task_run_index(DAG_ID, TASK_ID, limit=100)
    assert index[(RUN_ID, 1, -1)]["state"] == "FAILED"
    assert index[(RUN_ID, 2, -1)]["state"] == "COMPLETED"
    assert index[(RUN_ID, 1, 3)]["state"] == "COMPLETED"
    assert (RUN_ID, 3, -1) not in index
    assert hook.dag_run_index("no_such_dag", limit=10) == (
        {},
        "GET /api/v1/namespaces/default/jobs/no_such_dag/runs (0 runs)",
    )


def test_latest_task_run_sync_and_async_agree(marquez: MarquezApiStandin, hook: MarquezHook) -> None:
    import asyncio

    job = f"{DAG_ID}.{TASK_ID}"
    emit(marquez, "FAIL", str(uuid.uuid4()), job, _task_facets(RUN_ID, 1, None))
    latest = str(uuid.uuid4())
    emit(marquez, "COMPLETE", latest, job, _task_facets(RUN_ID, 2, None))
    run, query = hook.latest_task_run(DAG_ID, TASK_ID, RUN_ID)
    arun, aquery = asyncio.run(hook.alatest_task_run(DAG_ID, TASK_ID, RUN_ID))
    assert run["id"] == arun["id"] == latest
    assert query == aquery
    assert asyncio.run(hook.alatest_task_run(DAG_ID, TASK_ID, "other_run"))[0] is None


def test_async_lookup_of_a_down_marquez_is_unavailable(marquez: MarquezApiStandin, hook: MarquezHook) -> None:
    import asyncio

    marquez.down()
    with pytest.raises(MarquezUnavailable, match="HTTP 503"):
        asyncio.run(hook.alatest_task_run(DAG_ID, TASK_ID, RUN_ID))


def test_dag_run_index_lists_back_to_since(marquez: MarquezApiStandin, hook: MarquezHook) -> None:
    """A DagRun older than the newest ``limit`` runs (rechecked from an earlier scan) is still found."""
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    for n in range(150):
        emit(marquez, "COMPLETE", str(uuid.uuid4()), DAG_ID, _dag_run_facets(f"manual__{n}", 0))
    newest, _ = hook.dag_run_index(DAG_ID, limit=10)
    assert "manual__0" not in newest
    everything, query = hook.dag_run_index(DAG_ID, limit=10, since=since)
    assert len(everything) == 150 and "manual__0" in everything
    assert "(150 runs)" in query
