"""Every REST call the hook makes exists, with that method, in Airflow's v2 API contract."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

CONTRACTS = Path(__file__).resolve().parents[3] / "shared" / "contracts"
HOOK = Path(__file__).resolve().parents[2] / "airflow_faultcat" / "hooks" / "airflow_api.py"

# (method, path template) as the hook builds them.
CALLS = [
    ("post", "/api/v2/dags/{dag_id}/dagRuns"),
    ("get", "/api/v2/dags/{dag_id}/dagRuns"),
    ("get", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}"),
    ("get", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances"),
    ("get", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}"),
    ("get", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}"),
    ("patch", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}"),
    ("patch", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}"),
    ("get", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/tries"),
    ("get", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/tries"),
    ("get", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/logs/{try_number}"),
    ("get", "/api/v2/dags"),
    ("get", "/api/v2/version"),
    ("get", "/api/v2/dags/{dag_id}/details"),
    ("post", "/api/v2/dags/{dag_id}/clearTaskInstances"),
    ("patch", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/{task_id}/{map_index}/hitlDetails"),
    ("get", "/api/v2/dags/{dag_id}/tasks"),
    ("post", "/api/v2/dags/{dag_id}/dagRuns/list"),
    ("post", "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/list"),
]


@pytest.fixture(scope="module")
def spec():
    path = CONTRACTS / "airflow-v2-openapi.yaml"
    if not path.exists():
        pytest.skip("the API contract is not beside this checkout")
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize(("method", "path"), CALLS)
def test_call_is_in_the_contract(spec, method, path):
    assert method in spec["paths"].get(path, {}), f"{method.upper()} {path} is not in the v2 API"


def test_bodies_use_only_contract_fields(spec):
    schemas = spec["components"]["schemas"]
    trigger = set(schemas["TriggerDAGRunPostBody"]["properties"])
    assert {"dag_run_id", "logical_date", "conf", "note"} <= trigger
    assert "note" in schemas["PatchTaskInstanceBody"]["properties"]
    assert schemas["PatchTaskInstanceBody"]["properties"]["note"]["anyOf"][0]["maxLength"] == 1000
    # The clear body the hook sends: only documented fields, dry_run false explicitly.
    clear = schemas["ClearTaskInstancesBody"]["properties"]
    sent = {
        "dry_run",
        "only_failed",
        "reset_dag_runs",
        "dag_run_id",
        "task_ids",
        "include_downstream",
        "include_upstream",
        "include_future",
        "include_past",
    }
    assert sent <= set(clear)
    assert clear["dry_run"]["default"] is True, "the API dry-runs by default: the hook must say false"
    assert {"tags", "params"} <= set(schemas["DAGDetailsResponse"]["properties"])
    # The batch bodies reject unknown fields: send only documented ones.
    runs = set(schemas["DAGRunsBatchBody"]["properties"])
    assert {
        "order_by",
        "states",
        "dag_ids",
        "end_date_gte",
        "end_date_lt",
        "page_offset",
        "page_limit",
    } <= runs
    tis = set(schemas["TaskInstancesBatchBody"]["properties"])
    assert {"dag_run_ids", "state", "page_offset", "page_limit"} <= tis
    assert {"trigger_rule", "downstream_task_ids"} <= set(schemas["TaskResponse"]["properties"])


def test_token_endpoint_is_in_the_auth_contract():
    path = CONTRACTS / "airflow-simple-auth-manager-openapi.yaml"
    if not path.exists():
        pytest.skip("the auth contract is not beside this checkout")
    spec = yaml.safe_load(path.read_text())
    assert "post" in spec["paths"]["/auth/token"]
    assert re.search(r"\.post\(\s*\"/auth/token\"", HOOK.read_text())
