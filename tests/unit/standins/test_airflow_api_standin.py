"""Keep the Airflow REST API stand-in honest: Airflow's shapes, Airflow's paging, Airflow's refusals.

Answers are validated against Airflow 3.3.2's OpenAPI description (``shared/contracts`` beside the
checkout; those checks skip when it is absent). Paging is driven through
:class:`~airflow_faultcat.hooks.airflow_api.AirflowApiHook`, as a shadow scan drives it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from airflow_faultcat.hooks.airflow_api import AirflowApiHook
from tests.standins.airflow_api import (
    AIRFLOW_CONTRACT,
    AUTH_CONTRACT,
    DAG_RUNS_BATCH_FIELDS,
    MAXIMUM_PAGE_LIMIT,
    SHARED_CONTRACTS,
    TASK_INSTANCES_BATCH_FIELDS,
    AirflowApiStandin,
    AirflowData,
    _spec,
    generate,
    operation_of,
    response_errors,
    schema_errors,
)

CONN_ID = "faultcat_api_standin"
N_RUNS = 250
N_DAGS = 6
OUTLETS = {
    "etl_02": {"load": ["libvirt://libvirt_default/db-primary", "libvirt://libvirt_default/db-replica"]},
    "etl_03": {"load": ["libvirt://libvirt_default/db-primary"], "extract": ["s3://lake/raw/"]},
}

needs_contract = pytest.mark.skipif(
    not (SHARED_CONTRACTS / AIRFLOW_CONTRACT).exists(),
    reason="the Airflow contract is not beside this checkout",
)


@pytest.fixture(scope="module")
def data() -> AirflowData:
    return generate(N_RUNS, n_dags=N_DAGS, vm_dags=2, vm_names=["vm-a", None, "vm-b"], outlets=OUTLETS)


@pytest.fixture
def airflow(data: AirflowData) -> Iterator[AirflowApiStandin]:
    with AirflowApiStandin(data) as standin:
        yield standin


@pytest.fixture
def hook(airflow: AirflowApiStandin, monkeypatch: pytest.MonkeyPatch) -> Iterator[AirflowApiHook]:
    conn = {
        "conn_type": "faultcat_api",
        "host": "127.0.0.1",
        "port": airflow.port,
        "schema": "http",
        "login": "admin",
        "password": "admin",
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))
    hook = AirflowApiHook(CONN_ID, timeout=5)
    yield hook
    hook.close()


def _client(airflow: AirflowApiStandin) -> httpx.Client:
    client = httpx.Client(base_url=airflow.url, timeout=5)
    token = client.post("/auth/token", json={"username": "admin", "password": "admin"}).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def _window(data: AirflowData) -> dict[str, str]:
    assert data.window is not None
    return {"end_date_gte": data.window[0].isoformat(), "end_date_lt": data.window[1].isoformat()}


# ---- shapes ------------------------------------------------------------------------------------


@needs_contract
def test_batch_body_fields_are_the_contracts() -> None:
    schemas = _spec(AIRFLOW_CONTRACT)["components"]["schemas"]
    assert set(schemas["DAGRunsBatchBody"]["properties"]) == DAG_RUNS_BATCH_FIELDS
    assert set(schemas["TaskInstancesBatchBody"]["properties"]) == TASK_INSTANCES_BATCH_FIELDS
    assert schemas["DAGRunsBatchBody"]["additionalProperties"] is False


@needs_contract
def test_generated_entries_follow_the_contract(data: AirflowData) -> None:
    for schema, entries in (
        ("DAGRunResponse", data.dag_runs),
        ("TaskInstanceResponse", data.task_instances),
        ("TaskResponse", [t for tasks in data.tasks.values() for t in tasks]),
        ("AssetResponse", data.assets),
    ):
        problems = [e for entry in entries for e in schema_errors(AIRFLOW_CONTRACT, schema, entry)]
        assert problems == [], schema


@needs_contract
def test_every_answer_and_request_body_follows_the_contract(
    airflow: AirflowApiStandin, hook: AirflowApiHook, data: AirflowData
) -> None:
    runs = [r for page in hook.iter_dag_runs_batch(states=["success"], **_window(data)) for r in page]
    run_ids = sorted({r["dag_run_id"] for r in runs})
    dag_ids = sorted(data.tasks)
    list(hook.iter_task_instances_batch(run_ids, dag_ids=dag_ids, states=["success"]))
    hook.list_assets("libvirt://")
    for dag_id in dag_ids:
        hook.list_tasks(dag_id)

    assert airflow.rejected == []
    operations = Counter(operation_of(r.method, r.path) for r in airflow.requests)
    assert set(operations) == {
        "create_token",
        "get_list_dag_runs_batch",
        "get_task_instances_batch",
        "get_assets",
        "get_tasks",
    }
    bodies = {
        "get_list_dag_runs_batch": "DAGRunsBatchBody",
        "get_task_instances_batch": "TaskInstancesBatchBody",
    }
    for request in airflow.requests:
        operation = operation_of(request.method, request.path)
        assert response_errors(operation, request.response) == [], f"{request.method} {request.path}"
        if operation in bodies:
            assert schema_errors(AIRFLOW_CONTRACT, bodies[operation], request.body) == []
        if operation == "create_token":
            assert schema_errors(AUTH_CONTRACT, "LoginBody", request.body) == []


@needs_contract
def test_refusals_have_airflows_shapes(airflow: AirflowApiStandin) -> None:
    raw = httpx.Client(base_url=airflow.url, timeout=5)
    client = _client(airflow)
    no_token = raw.post("/api/v2/dags/~/dagRuns/list", json={})
    bad_login = raw.post("/auth/token", json={"username": "admin", "password": "nope"})
    extra = client.post("/api/v2/dags/~/dagRuns/list", json={"state": ["success"]})
    negative = client.post("/api/v2/dags/~/dagRuns/~/taskInstances/list", json={"page_offset": -1})
    not_tilde = client.post("/api/v2/dags/etl_02/dagRuns/list", json={})
    unknown_dag = client.get("/api/v2/dags/nope/tasks")
    unserved = client.post("/api/v2/dags/~/dagRuns/list", json={"conf_contains": "vm"})
    bad_order = client.post("/api/v2/dags/~/dagRuns/list", json={"order_by": "colour"})

    assert [r.status_code for r in (no_token, bad_login)] == [401, 401]
    assert [r.status_code for r in (extra, negative, not_tilde)] == [422, 422, 422]
    assert extra.json()["detail"][0]["type"] == "extra_forbidden"
    assert [r.status_code for r in (unknown_dag, unserved, bad_order)] == [404, 400, 400]
    for response in (no_token, bad_login, unknown_dag, unserved, bad_order):
        assert schema_errors(AIRFLOW_CONTRACT, "HTTPExceptionResponse", response.json()) == []
    for response in (extra, negative, not_tilde):
        assert schema_errors(AIRFLOW_CONTRACT, "HTTPValidationError", response.json()) == []
    assert len(airflow.rejected) == 8


# ---- paging and filters ------------------------------------------------------------------------


def test_paging_returns_every_dag_run_and_task_instance_once(
    airflow: AirflowApiStandin, hook: AirflowApiHook, data: AirflowData
) -> None:
    pages = list(hook.iter_dag_runs_batch(states=["success"], page_limit=250, **_window(data)))
    runs = [r for page in pages for r in page]
    keys = [(r["dag_id"], r["dag_run_id"]) for r in runs]
    assert len(keys) == len(set(keys)) == N_RUNS
    assert max(len(p) for p in pages) == MAXIMUM_PAGE_LIMIT, "a page is cut to maximum_page_limit"
    assert len(pages) == -(-N_RUNS // MAXIMUM_PAGE_LIMIT)
    assert all(r["state"] == "success" for r in runs)
    ends = [r["end_date"] for r in runs]
    assert ends == sorted(ends), "order_by end_date"
    # Scheduled Dags share run ids, as in Airflow: a run id alone does not name a DagRun.
    assert len({r["dag_run_id"] for r in runs}) < N_RUNS

    run_ids = sorted({r["dag_run_id"] for r in runs})
    ti_pages = list(hook.iter_task_instances_batch(run_ids, dag_ids=sorted(data.tasks), page_limit=37))
    tis = [ti for page in ti_pages for ti in page]
    assert len(tis) == len({ti["id"] for ti in tis}) == 3 * N_RUNS
    assert {len(p) for p in ti_pages[:-1]} == {37}
    assert Counter((ti["dag_id"], ti["dag_run_id"]) for ti in tis) == Counter({k: 3 for k in keys})
    assert {(ti["state"], ti["try_number"], ti["map_index"]) for ti in tis} == {("success", 1, -1)}


def test_filters(airflow: AirflowApiStandin, hook: AirflowApiHook, data: AirflowData) -> None:
    everything = [r for page in hook.iter_dag_runs_batch() for r in page]
    failed = [r for page in hook.iter_dag_runs_batch(states=["failed"]) for r in page]
    one_dag = [r for page in hook.iter_dag_runs_batch(dag_ids=["etl_02"], **_window(data)) for r in page]
    assert data.window is not None
    later = data.window[0] + timedelta(seconds=100)
    tail = [r for page in hook.iter_dag_runs_batch(end_date_gte=later.isoformat()) for r in page]
    assert len(everything) == N_RUNS + 2 * N_DAGS
    assert len(failed) == N_DAGS and {r["state"] for r in failed} == {"failed"}
    # The window holds the successful runs and the failed noise, not the runs of the day before.
    assert {r["dag_id"] for r in one_dag} == {"etl_02"}
    assert len(one_dag) == sum(1 for i in range(N_RUNS) if i % N_DAGS == 2) + 1
    assert len(tail) == N_RUNS - 10

    failed_tis = [
        ti
        for page in hook.iter_task_instances_batch([r["dag_run_id"] for r in failed], states=["failed"])
        for ti in page
    ]
    assert len(failed_tis) == N_DAGS and {ti["task_id"] for ti in failed_tis} <= {"load", "smoke_test"}

    libvirt = hook.list_assets("LIBVIRT://")
    assert {a["uri"] for a in libvirt} == {
        "libvirt://libvirt_default/db-primary",
        "libvirt://libvirt_default/db-replica",
        "libvirt://libvirt_default/spare-consumed-only",
    }
    primary = next(a for a in libvirt if a["uri"].endswith("db-primary"))
    assert {(p["dag_id"], p["task_id"]) for p in primary["producing_tasks"]} == {
        ("etl_02", "load"),
        ("etl_03", "load"),
    }
    assert len(hook.list_assets()) == len(data.assets) == 5
    tasks = hook.list_tasks("provision_vm_00")
    assert list(tasks) == ["configure_vm", "create_vm", "smoke_test"]
    assert tasks["create_vm"]["downstream_task_ids"] == ["configure_vm"]
    assert airflow.rejected == []


def test_conf_carries_the_vm_names_in_turn(data: AirflowData) -> None:
    confs = [
        r["conf"] for r in data.dag_runs if r["dag_id"].startswith("provision_") and r["state"] == "success"
    ]
    in_window = confs[2:]  # the first two are the runs of the day before
    assert in_window[:4] == [
        {"vm_name": "vm-a"},
        {"requested_by": "bench"},
        {"vm_name": "vm-b"},
        {"vm_name": "vm-a"},
    ]
    assert all(r["conf"] == {} for r in data.dag_runs if r["dag_id"].startswith("etl_"))
