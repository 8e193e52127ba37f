"""A stand-in for the part of Airflow 3's public REST API (``/api/v2``) that shadow scans use.

It serves, from generated in-memory data (:func:`generate`), what
:class:`~airflow_faultcat.hooks.airflow_api.AirflowApiHook` sends for a bulk shadow scan:

- ``POST /auth/token`` (the simple auth manager's token endpoint; JSON ``username``/``password``);
- ``POST /api/v2/dags/~/dagRuns/list`` (``DAGRunsBatchBody``: ``states``, ``dag_ids``,
  ``end_date_*``, ``order_by``, ``page_offset``/``page_limit``);
- ``POST /api/v2/dags/~/dagRuns/~/taskInstances/list`` (``TaskInstancesBatchBody``: ``dag_ids``,
  ``dag_run_ids``, ``task_ids``, ``state``, ``order_by``, paging);
- ``GET /api/v2/dags/{dag_id}/tasks``;
- ``GET /api/v2/assets`` (``uri_pattern``, ``limit``/``offset``);

and what the probes read of one DagRun or TaskInstance:

- ``GET /api/v2/dags/{dag_id}/dagRuns/{dag_run_id}``;
- ``GET .../taskInstances/{task_id}[/{map_index}]`` (the current try);
- ``GET .../taskInstances/{task_id}[/{map_index}]/tries`` (the history, then the current try
  unless it is ``up_for_retry``, as Airflow lists them).

Answers have the shapes of the contract ``airflow-v2-openapi.yaml`` (Airflow 3.3.2's generated
OpenAPI description, beside the checkout in ``shared/contracts``; :func:`response_errors` checks
an answer against it). Like Airflow, a page holds at most ``maximum_page_limit`` (100) entries
whatever the client asks, a request body with an undocumented field gets 422 (the batch bodies
forbid extra fields), and every ``/api/v2`` call needs a token from ``/auth/token``. A documented
filter this stand-in does not implement answers 400, so that a test never passes on a filter that
was silently ignored.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tests.standins import Response, StandinServer

__all__ = [
    "AIRFLOW_CONTRACT",
    "AirflowApiStandin",
    "AirflowData",
    "DAG_RUNS_BATCH_FIELDS",
    "MAXIMUM_PAGE_LIMIT",
    "SHARED_CONTRACTS",
    "TASK_INSTANCES_BATCH_FIELDS",
    "TRY_FIELDS",
    "generate",
    "operation_of",
    "response_errors",
]

#: Where the contracts shared by the checkouts live (beside this repository, not in it).
SHARED_CONTRACTS = Path(__file__).resolve().parents[3] / "shared" / "contracts"
AIRFLOW_CONTRACT = "airflow-v2-openapi.yaml"
AUTH_CONTRACT = "airflow-simple-auth-manager-openapi.yaml"
#: Airflow's default ``[api] maximum_page_limit``: larger pages are cut to this.
MAXIMUM_PAGE_LIMIT = 100
#: The documented fields of ``DAGRunsBatchBody`` (Airflow 3.3.2); anything else is a 422.
DAG_RUNS_BATCH_FIELDS = frozenset(
    ["order_by", "page_offset", "page_limit", "dag_ids", "states", "conf_contains"]
    + [
        f"{name}_{op}"
        for name in ("run_after", "logical_date", "start_date", "end_date", "duration")
        for op in ("gte", "gt", "lte", "lt")
    ]
)
#: The documented fields of ``TaskInstancesBatchBody`` (Airflow 3.3.2); anything else is a 422.
TASK_INSTANCES_BATCH_FIELDS = frozenset(
    ["dag_ids", "dag_run_ids", "task_ids", "state", "pool", "queue", "executor"]
    + ["page_offset", "page_limit", "order_by"]
    + [
        f"{name}_{op}"
        for name in ("run_after", "logical_date", "start_date", "end_date", "duration")
        for op in ("gte", "gt", "lte", "lt")
    ]
)
# Filters served; the other documented ones answer 400 (see the module docstring).
_DAG_RUN_FILTERS = {"end_date_gte", "end_date_gt", "end_date_lte", "end_date_lt"}
_DAG_RUN_ORDER = ("id", "dag_id", "run_id", "start_date", "end_date", "run_after")
_TI_ORDER = ("id", "start_date", "end_date", "map_index", "try_number")
_DAG_RUN_STATES = frozenset({"queued", "running", "success", "failed"})
_TI_STATES = frozenset(
    {
        "removed",
        "scheduled",
        "queued",
        "running",
        "success",
        "restarting",
        "failed",
        "up_for_retry",
        "up_for_reschedule",
        "upstream_failed",
        "skipped",
        "deferred",
        "awaiting_input",
    }
)
_ASSET_PARAMS = {"limit", "offset", "uri_pattern", "order_by", "only_active"}
_TI = r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/(?P<dag_run_id>[^/]+)/taskInstances/(?P<task_id>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/auth/token"), "create_token"),
    ("POST", re.compile(r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/list"), "get_list_dag_runs_batch"),
    (
        "POST",
        re.compile(r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/(?P<dag_run_id>[^/]+)/taskInstances/list"),
        "get_task_instances_batch",
    ),
    ("GET", re.compile(r"/api/v2/dags/(?P<dag_id>[^/]+)/tasks"), "get_tasks"),
    ("GET", re.compile(r"/api/v2/assets"), "get_assets"),
    ("GET", re.compile(r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/(?P<dag_run_id>[^/]+)"), "get_dag_run"),
    ("GET", re.compile(_TI + r"/tries"), "get_task_instance_tries"),
    ("GET", re.compile(_TI + r"/(?P<map_index>-?\d+)/tries"), "get_mapped_task_instance_tries"),
    ("GET", re.compile(_TI), "get_task_instance"),
    ("GET", re.compile(_TI + r"/(?P<map_index>-?\d+)"), "get_mapped_task_instance"),
]
#: The contract's response schema of each operation's 200/201 answer.
RESPONSE_SCHEMAS = {
    "create_token": (AUTH_CONTRACT, "LoginResponse"),
    "get_list_dag_runs_batch": (AIRFLOW_CONTRACT, "DAGRunCollectionResponse"),
    "get_task_instances_batch": (AIRFLOW_CONTRACT, "TaskInstanceCollectionResponse"),
    "get_tasks": (AIRFLOW_CONTRACT, "TaskCollectionResponse"),
    "get_assets": (AIRFLOW_CONTRACT, "AssetCollectionResponse"),
    "get_dag_run": (AIRFLOW_CONTRACT, "DAGRunResponse"),
    "get_task_instance_tries": (AIRFLOW_CONTRACT, "TaskInstanceHistoryCollectionResponse"),
    "get_mapped_task_instance_tries": (AIRFLOW_CONTRACT, "TaskInstanceHistoryCollectionResponse"),
    "get_task_instance": (AIRFLOW_CONTRACT, "TaskInstanceResponse"),
    "get_mapped_task_instance": (AIRFLOW_CONTRACT, "TaskInstanceResponse"),
}
#: The fields of ``TaskInstanceHistoryResponse`` (Airflow 3.3.2): a try as ``/tries`` lists it.
TRY_FIELDS = (
    "task_id",
    "dag_id",
    "dag_run_id",
    "map_index",
    "start_date",
    "end_date",
    "duration",
    "state",
    "try_number",
    "max_tries",
    "task_display_name",
    "dag_display_name",
    "hostname",
    "unixname",
    "pool",
    "pool_slots",
    "queue",
    "priority_weight",
    "operator",
    "operator_name",
    "queued_when",
    "scheduled_when",
    "pid",
    "executor",
    "executor_config",
    "dag_version",
)


# ---- the contract ------------------------------------------------------------------------------


@cache
def _spec(name: str) -> dict[str, Any]:
    import yaml

    text = (SHARED_CONTRACTS / name).read_text()
    # The Airflow description is 460 kB: the C loader reads it in a fraction of the time.
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506


#: RFC 3339 ``date-time`` (jsonschema checks that format only when rfc3339-validator is installed).
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


@cache
def _schema_validator(contract: str, schema: str) -> Any:
    from jsonschema import Draft202012Validator, FormatChecker

    checker = FormatChecker()
    checker.checks("date-time")(lambda value: not isinstance(value, str) or bool(_DATE_TIME.fullmatch(value)))
    # The whole document is the root so that '#/components/schemas/...' refs resolve (OpenAPI 3.1
    # schemas are JSON Schema 2020-12).
    document = {**_spec(contract), "$ref": f"#/components/schemas/{schema}"}
    return Draft202012Validator(document, format_checker=checker)


def schema_errors(contract: str, schema: str, instance: Any) -> list[str]:
    """What in ``instance`` breaks a schema of a contract in ``shared/contracts`` (empty: valid).

    :param contract: the file name (:data:`AIRFLOW_CONTRACT`).
    :param schema: the ``components.schemas`` entry (``"DAGRunResponse"``).
    :param instance: the parsed JSON.
    """
    errors = _schema_validator(contract, schema).iter_errors(instance)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def response_errors(operation_id: str, body: Any) -> list[str]:
    """What in a successful answer of an operation breaks the contract (empty: valid).

    :param operation_id: the contract's ``operationId`` (see :data:`RESPONSE_SCHEMAS`).
    :param body: the parsed JSON answered.
    """
    contract, schema = RESPONSE_SCHEMAS[operation_id]
    return schema_errors(contract, schema, body)


def operation_of(method: str, path: str) -> str | None:
    """The contract's ``operationId`` a request is for, or None when the stand-in serves none."""
    for route_method, pattern, operation in _ROUTES:
        if route_method == method and pattern.fullmatch(path):
            return operation
    return None


# ---- generated data ----------------------------------------------------------------------------


def _ts(value: datetime) -> str:
    """A UTC datetime the way the API serialises it (pydantic: ``...Z``)."""
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _uuid7(ms: int, seq: int) -> str:
    """A UUIDv7 (as Airflow gives TaskInstances) from a millisecond time and a sequence number."""
    value = (ms & (2**48 - 1)) << 80 | 0x7 << 76 | (seq >> 62 & 0xFFF) << 64 | 0b10 << 62
    return str(uuid.UUID(int=value | seq & (2**62 - 1)))


@dataclass
class AirflowData:
    """What the stand-in serves, in the API's shapes.

    :param dag_runs: ``DAGRunResponse`` dicts, in creation (``id``) order.
    :param task_instances: ``TaskInstanceResponse`` dicts (the current try of each).
    :param task_instance_history: ``TaskInstanceHistoryResponse`` dicts of the earlier tries.
    :param tasks: dag_id -> its ``TaskResponse`` dicts.
    :param assets: ``AssetResponse`` dicts, in ``id`` order.
    :param window: ``[start, end)`` of the ``end_date`` of the ``n_runs`` successful DagRuns
        :func:`generate` was asked for (the noise runs end outside it or did not succeed).
    """

    dag_runs: list[dict[str, Any]] = field(default_factory=list)
    task_instances: list[dict[str, Any]] = field(default_factory=list)
    task_instance_history: list[dict[str, Any]] = field(default_factory=list)
    tasks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    assets: list[dict[str, Any]] = field(default_factory=list)
    window: tuple[datetime, datetime] | None = None


def _dag_version(dag_id: str, created: datetime) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"dag-version:{dag_id}")),
        "version_number": 1,
        "dag_id": dag_id,
        "bundle_name": "dags-folder",
        "bundle_version": None,
        "created_at": _ts(created),
        "dag_display_name": dag_id,
        "bundle_url": None,
    }


def _task(dag_id: str, task_id: str, downstream: list[str], created: datetime) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "task_display_name": task_id,
        "owner": "airflow",
        "start_date": _ts(created),
        "end_date": None,
        "trigger_rule": "all_success",
        "depends_on_past": False,
        "wait_for_downstream": False,
        "retries": 0.0,
        "queue": "default",
        "pool": "default_pool",
        "pool_slots": 1.0,
        "execution_timeout": None,
        "retry_delay": {"__type": "TimeDelta", "days": 0, "seconds": 300, "microseconds": 0},
        "retry_exponential_backoff": 0.0,
        "priority_weight": 1.0,
        "weight_rule": "downstream",
        "ui_color": "#fff",
        "ui_fgcolor": "#000",
        "template_fields": [],
        "downstream_task_ids": downstream,
        "doc_md": None,
        "operator_name": "@task",
        "params": {},
        "class_ref": {
            "module_path": "airflow.providers.standard.decorators.python",
            "class_name": "_PythonDecoratedOperator",
        },
        "is_mapped": False,
        "extra_links": [],
    }


def generate(
    n_runs: int,
    *,
    n_dags: int = 20,
    vm_dags: int = 5,
    vm_names: Sequence[str | None] = ("vm-00000",),
    outlets: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    start: datetime = datetime(2025, 1, 1, tzinfo=timezone.utc),
    noise: bool = True,
) -> AirflowData:
    """Generate ``n_runs`` successful DagRuns over ``n_dags`` Dags, 3 tasks each, all successful.

    The first ``vm_dags`` Dags (``provision_vm_NN``: ``create_vm >> configure_vm >> smoke_test``)
    are triggered by hand with conf ``{"vm_name": ...}`` taken from ``vm_names`` in turn (``None``
    leaves ``vm_name`` out of the conf); the others (``etl_NN``: ``extract >> transform >> load``)
    run on an hourly schedule, so that Dags share run ids (``scheduled__<logical date>``), as in
    Airflow. DagRun ``i`` belongs to Dag ``i % n_dags``, starts ``start + 10 s * i`` and takes 5 s;
    its TaskInstances (try 1, unmapped) run one after the other within it.

    :param n_runs: successful DagRuns in the window.
    :param n_dags: Dags (at most 100).
    :param vm_dags: how many of them take a ``vm_name`` conf.
    :param vm_names: the VM names of the conf, in turn (``None``: no ``vm_name``).
    :param outlets: dag_id -> task_id -> asset URIs the task produces (``GET /assets``
        ``producing_tasks``). Assets nobody produces are added for the filters to skip: an
        ``s3://`` one and a ``libvirt://`` one that is only consumed.
    :param start: when the first DagRun starts.
    :param noise: add, per Dag, a successful DagRun that ended before the window and a failed one
        inside it (with a failed TaskInstance): both must be filtered out by a scan.
    """
    if not 0 < n_dags <= 100 or not 0 <= vm_dags <= n_dags:
        raise ValueError("need 0 < n_dags <= 100 and 0 <= vm_dags <= n_dags")
    data = AirflowData()
    created = start - timedelta(days=30)
    dag_ids = [f"provision_vm_{i:02d}" if i < vm_dags else f"etl_{i:02d}" for i in range(n_dags)]
    versions = {dag_id: _dag_version(dag_id, created) for dag_id in dag_ids}
    for dag_id in dag_ids:
        names = (
            ["create_vm", "configure_vm", "smoke_test"]
            if dag_id.startswith("provision_")
            else [
                "extract",
                "transform",
                "load",
            ]
        )
        data.tasks[dag_id] = [
            _task(dag_id, name, names[i + 1 : i + 2], created) for i, name in enumerate(names)
        ]
    ti_seq = 0

    def add_run(dag_id: str, begin: datetime, state: str, slot: int, conf: dict[str, Any]) -> None:
        nonlocal ti_seq
        end = begin + timedelta(seconds=5)
        if dag_id.startswith("provision_"):
            run_type, logical, interval = "manual", begin, (begin, begin)
            run_id = f"manual__{begin.isoformat()}"
            triggered_by, user = "rest_api", "admin"
        else:
            logical = start + timedelta(hours=slot)
            run_type, interval = "scheduled", (logical, logical + timedelta(hours=1))
            run_id = f"scheduled__{logical.isoformat()}"
            triggered_by, user = "timetable", None
        data.dag_runs.append(
            {
                "dag_run_id": run_id,
                "dag_id": dag_id,
                "logical_date": _ts(logical),
                "queued_at": _ts(begin - timedelta(seconds=1)),
                "start_date": _ts(begin),
                "end_date": _ts(end),
                "duration": 5.0,
                "data_interval_start": _ts(interval[0]),
                "data_interval_end": _ts(interval[1]),
                "run_after": _ts(interval[1] if run_type == "scheduled" else begin),
                "last_scheduling_decision": _ts(end),
                "run_type": run_type,
                "state": state,
                "triggered_by": triggered_by,
                "triggering_user_name": user,
                "conf": conf,
                "note": None,
                "dag_versions": [versions[dag_id]],
                "bundle_version": None,
                "dag_display_name": dag_id,
                "partition_key": None,
                "partition_date": None,
            }
        )
        for index, task in enumerate(data.tasks[dag_id]):
            ti_begin = begin + timedelta(seconds=1 + index)
            ti_state = "success" if state == "success" or index < 2 else "failed"
            ti_seq += 1
            data.task_instances.append(
                {
                    "id": _uuid7(int(ti_begin.timestamp() * 1000), ti_seq),
                    "task_id": task["task_id"],
                    "dag_id": dag_id,
                    "dag_run_id": run_id,
                    "map_index": -1,
                    "logical_date": _ts(logical),
                    "run_after": data.dag_runs[-1]["run_after"],
                    "start_date": _ts(ti_begin),
                    "end_date": _ts(ti_begin + timedelta(seconds=1)),
                    "duration": 1.0,
                    "state": ti_state,
                    "try_number": 1,
                    "max_tries": 0,
                    "task_display_name": task["task_id"],
                    "dag_display_name": dag_id,
                    "hostname": "worker-1",
                    "unixname": "airflow",
                    "pool": "default_pool",
                    "pool_slots": 1,
                    "queue": "default",
                    "priority_weight": 3 - index,
                    "operator": "_PythonDecoratedOperator",
                    "operator_name": "@task",
                    "queued_when": _ts(ti_begin - timedelta(milliseconds=200)),
                    "scheduled_when": _ts(ti_begin - timedelta(milliseconds=400)),
                    "pid": 1000 + ti_seq % 30000,
                    "executor": None,
                    "executor_config": "{}",
                    "note": None,
                    "rendered_map_index": None,
                    "rendered_fields": {},
                    "trigger": None,
                    "triggerer_job": None,
                    "dag_version": versions[dag_id],
                }
            )

    if noise:
        # Ended the day before the window: the end_date filter must drop them.
        for i, dag_id in enumerate(dag_ids):
            add_run(dag_id, start - timedelta(days=1) + timedelta(seconds=10 * i), "success", -24, {})
    vm_turn = 0
    for i in range(n_runs):
        dag_id = dag_ids[i % n_dags]
        conf: dict[str, Any] = {}
        if dag_id.startswith("provision_"):
            name = vm_names[vm_turn % len(vm_names)] if vm_names else None
            vm_turn += 1
            conf = {"requested_by": "bench"} if name is None else {"vm_name": name}
        add_run(dag_id, start + timedelta(seconds=10 * i), "success", i // n_dags, conf)
    last_end = start + timedelta(seconds=10 * max(n_runs - 1, 0) + 5)
    data.window = (start, last_end + timedelta(microseconds=1))
    if noise:
        # Failed inside the window: the states filter must drop them (and their failed TIs).
        for i, dag_id in enumerate(dag_ids):
            add_run(dag_id, start + timedelta(seconds=10 * i + 3), "failed", -1, {})

    producers: dict[str, list[dict[str, Any]]] = {}
    for dag_id, by_task in (outlets or {}).items():
        for task_id, uris in by_task.items():
            for uri in uris:
                ref = {
                    "dag_id": dag_id,
                    "task_id": task_id,
                    "created_at": _ts(created),
                    "updated_at": _ts(created),
                }
                producers.setdefault(uri, []).append(ref)
    consumer = {
        "dag_id": dag_ids[-1],
        "task_id": "extract",
        "created_at": _ts(created),
        "updated_at": _ts(created),
    }
    extra = {"s3://warehouse/daily/": [], "libvirt://libvirt_default/spare-consumed-only": []}
    for asset_id, (uri, refs) in enumerate({**producers, **extra}.items(), start=1):
        data.assets.append(
            {
                "id": asset_id,
                "name": uri,
                "uri": uri,
                "group": "asset",
                "extra": {},
                "created_at": _ts(created),
                "updated_at": _ts(created),
                "scheduled_dags": [],
                "producing_tasks": refs,
                "consuming_tasks": [] if refs else [consumer],
                "aliases": [],
                "watchers": [],
                "last_asset_event": None,
            }
        )
    return data


# ---- the server --------------------------------------------------------------------------------


def _detail(status: int, detail: str, rejection: str) -> Response:
    return Response(status, {"detail": detail}, rejection=rejection)


def _invalid(loc: list[Any], msg: str, kind: str, value: Any, rejection: str) -> Response:
    """FastAPI's 422 shape (``HTTPValidationError``)."""
    return Response(
        422, {"detail": [{"type": kind, "loc": loc, "msg": msg, "input": value}]}, rejection=rejection
    )


class AirflowApiStandin(StandinServer):
    """Serve the shadow-scan calls of Airflow's REST API from :class:`AirflowData`.

    :param data: what to serve (see :func:`generate`).
    :param username: the user :func:`POST /auth/token` accepts.
    :param password: its password.
    """

    def __init__(self, data: AirflowData, *, username: str = "admin", password: str = "admin") -> None:
        super().__init__()
        self.data = data
        self.username = username
        self.password = password
        self.tokens: set[str] = set()
        # Parsed once: every list call filters and sorts on them.
        self._run_rows = [
            (i, run, {k: _parse(run[k]) for k in ("start_date", "end_date", "run_after") if run[k]})
            for i, run in enumerate(data.dag_runs)
        ]
        self._tis_by_run: dict[str, list[dict[str, Any]]] = {}
        for ti in data.task_instances:
            self._tis_by_run.setdefault(ti["dag_run_id"], []).append(ti)
        self._tasks = {
            dag_id: sorted(tasks, key=lambda t: t["task_id"]) for dag_id, tasks in data.tasks.items()
        }
        # A run id is unique within its Dag only.
        self._runs_by_key = {(run["dag_id"], run["dag_run_id"]): run for run in data.dag_runs}
        # The last filtered and sorted list per endpoint: the pages of one listing share it.
        self._cache: dict[str, tuple[str, list[dict[str, Any]]]] = {}

    # ---- serving ---------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw: bytes
    ) -> tuple[Any, Response]:
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                return raw.decode("utf-8", "replace"), _invalid(
                    ["body", exc.args[0][:40] if exc.args else 0],
                    "JSON decode error",
                    "json_invalid",
                    {},
                    "bad JSON",
                )
        matches = [
            (route_method, match, operation)
            for route_method, pattern, operation in _ROUTES
            if (match := pattern.fullmatch(path)) is not None
        ]
        if matches and all(m != method for m, _, _ in matches):
            return body, _detail(405, "Method Not Allowed", "method")
        # Like Starlette, a route whose path and method match wins over an earlier path-only match
        # (GET /dags/d/dagRuns/list is the DagRun "list", not the batch listing).
        for route_method, match, operation in matches:
            if route_method != method:
                continue
            if operation != "create_token":
                token = headers.get("authorization", "").removeprefix("Bearer ")
                with self.lock:
                    known = token in self.tokens
                if not known:
                    return body, _detail(401, "Not authenticated", "auth")
            params = {k: unquote(v) for k, v in match.groupdict().items()}
            return body, getattr(self, f"_{operation}")(params, query, body)
        return body, _detail(404, "Not Found", "no such path")

    def _create_token(self, params: dict[str, str], query: Any, body: Any) -> Response:
        if not isinstance(body, dict) or set(body) != {"username", "password"}:
            return _invalid(
                ["body"], "username and password are required, nothing else", "missing", body, "body"
            )
        if (body["username"], body["password"]) != (self.username, self.password):
            return _detail(401, "Invalid credentials", "credentials")
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens.add(token)
        return Response(201, {"access_token": token})

    def _get_list_dag_runs_batch(self, params: dict[str, str], query: Any, body: Any) -> Response:
        if params["dag_id"] != "~":
            return _invalid(
                ["path", "dag_id"], "Input should be '~'", "literal_error", params["dag_id"], "path"
            )
        problem = _batch_problem(body, DAG_RUNS_BATCH_FIELDS, _DAG_RUN_FILTERS | {"states", "dag_ids"})
        if problem:
            return problem
        states = body.get("states")
        if states is not None and not set(states) <= _DAG_RUN_STATES | {None}:
            return _invalid(["body", "states"], "Input should be a DagRunState", "enum", states, "states")
        order = body.get("order_by") or "id"
        if order.lstrip("-") not in _DAG_RUN_ORDER:
            return _detail(
                400,
                f"Ordering with '{order}' is disallowed or the attribute does not exist on the model",
                "order",
            )
        bounds = {}
        for name in _DAG_RUN_FILTERS & set(body):
            if body[name] is not None:
                try:
                    bounds[name] = _parse(str(body[name]))
                except ValueError:
                    return _invalid(
                        ["body", name],
                        "Input should be a valid datetime",
                        "datetime_parsing",
                        body[name],
                        name,
                    )
        key = json.dumps(
            {k: v for k, v in body.items() if k not in ("page_offset", "page_limit")}, sort_keys=True
        )
        matched = self._cached(
            "dag_runs", key, lambda: self._dag_runs(states, body.get("dag_ids"), bounds, order)
        )
        return Response(
            200,
            {
                **_page(matched, body, "dag_runs"),
                "total_entries_limit": None,
                "next_cursor": None,
                "previous_cursor": None,
            },
        )

    def _dag_runs(
        self, states: Any, dag_ids: Any, bounds: dict[str, datetime], order: str
    ) -> list[dict[str, Any]]:
        wanted_states = None if states is None else set(states)
        wanted_dags = None if dag_ids is None else set(dag_ids)
        rows = []
        for row_id, run, times in self._run_rows:
            if wanted_states is not None and run["state"] not in wanted_states:
                continue
            if wanted_dags is not None and run["dag_id"] not in wanted_dags:
                continue
            end = times.get("end_date")
            if bounds and (end is None or not _within(end, bounds, "end_date")):
                continue
            rows.append((row_id, run, times))
        attr = order.lstrip("-")
        # Like Airflow's SortParam: the primary key breaks ties, so pages never overlap.
        if attr == "id":
            rows.sort(key=lambda r: r[0], reverse=order.startswith("-"))
        else:
            rows.sort(
                key=lambda r: (_sort_value(r[2].get(attr) or r[1].get(attr)), r[0]),
                reverse=order.startswith("-"),
            )
        return [run for _, run, _ in rows]

    def _get_task_instances_batch(self, params: dict[str, str], query: Any, body: Any) -> Response:
        if params["dag_id"] != "~" or params["dag_run_id"] != "~":
            return _invalid(["path"], "Input should be '~'", "literal_error", params, "path")
        problem = _batch_problem(
            body, TASK_INSTANCES_BATCH_FIELDS, {"dag_ids", "dag_run_ids", "task_ids", "state"}
        )
        if problem:
            return problem
        states = body.get("state")
        if states is not None and not set(states) <= _TI_STATES | {None}:
            return _invalid(["body", "state"], "Input should be a TaskInstanceState", "enum", states, "state")
        order = body.get("order_by") or "id"
        if order.lstrip("-") not in _TI_ORDER:
            return _detail(
                400,
                f"Ordering with '{order}' is disallowed or the attribute does not exist on the model",
                "order",
            )
        key = json.dumps(
            {k: v for k, v in body.items() if k not in ("page_offset", "page_limit")}, sort_keys=True
        )
        matched = self._cached("task_instances", key, lambda: self._task_instances(body, order))
        return Response(
            200,
            {
                **_page(matched, body, "task_instances"),
                "total_entries_limit": None,
                "next_cursor": None,
                "previous_cursor": None,
            },
        )

    def _task_instances(self, body: dict[str, Any], order: str) -> list[dict[str, Any]]:
        run_ids = body.get("dag_run_ids")
        if run_ids is None:
            candidates: Iterable[dict[str, Any]] = self.data.task_instances
        else:
            candidates = [ti for run_id in dict.fromkeys(run_ids) for ti in self._tis_by_run.get(run_id, [])]
        filters = [
            (name, set(body[key]))
            for key, name in (("dag_ids", "dag_id"), ("task_ids", "task_id"), ("state", "state"))
            if body.get(key) is not None
        ]
        out = [ti for ti in candidates if all(ti[name] in wanted for name, wanted in filters)]
        attr = order.lstrip("-")
        out.sort(key=lambda ti: (_sort_value(ti[attr]), ti["id"]), reverse=order.startswith("-"))
        return out

    def _get_tasks(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> Response:
        unknown = set(query) - {"order_by"}
        if unknown:
            return _detail(400, f"the stand-in does not implement {sorted(unknown)}", "unsupported")
        tasks = self._tasks.get(params["dag_id"])
        if tasks is None:
            return _detail(404, f"Dag with id {params['dag_id']} was not found", "unknown dag")
        return Response(200, {"tasks": tasks, "total_entries": len(tasks)})

    def _get_assets(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> Response:
        unknown = set(query) - _ASSET_PARAMS
        if unknown:
            return _detail(400, f"the stand-in does not implement {sorted(unknown)}", "unsupported")
        if (query.get("order_by") or ["id"]) != ["id"]:
            return _detail(400, "the stand-in orders assets by id only", "unsupported")
        paging = {}
        for name, default in (("limit", 50), ("offset", 0)):
            value = (query.get(name) or [str(default)])[-1]
            if not value.isdigit():
                return _invalid(
                    ["query", name], "Input should be a valid integer", "int_parsing", value, name
                )
            paging[name] = int(value)
        pattern = (query.get("uri_pattern") or [""])[-1].lower()
        # uri_pattern is SQL ILIKE '%pattern%': a case-insensitive substring.
        assets = [a for a in self.data.assets if pattern in a["uri"].lower()]
        limit = min(paging["limit"], MAXIMUM_PAGE_LIMIT)
        page = assets[paging["offset"] : paging["offset"] + limit]
        return Response(200, {"assets": page, "total_entries": len(assets)})

    def _get_dag_run(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> Response:
        if query:
            return _detail(400, f"the stand-in does not implement {sorted(query)}", "unsupported")
        run = self._runs_by_key.get((params["dag_id"], params["dag_run_id"]))
        if run is None:
            return _detail(
                404,
                f"The DagRun with dag_id: `{params['dag_id']}` and run_id: `{params['dag_run_id']}` "
                "was not found",
                "unknown dag run",
            )
        return Response(200, run)

    def _tis_of(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """The current TaskInstances of a task in a DagRun, every map index."""
        return [
            ti
            for ti in self._tis_by_run.get(params["dag_run_id"], [])
            if ti["dag_id"] == params["dag_id"] and ti["task_id"] == params["task_id"]
        ]

    def _get_task_instance(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> Response:
        if query:
            return _detail(400, f"the stand-in does not implement {sorted(query)}", "unsupported")
        tis = self._tis_of(params)
        if not tis:
            return _detail(
                404,
                f"The Task Instance with dag_id: `{params['dag_id']}`, run_id: `{params['dag_run_id']}` "
                f"and task_id: `{params['task_id']}` was not found",
                "unknown task instance",
            )
        unmapped = next((ti for ti in tis if ti["map_index"] == -1), None)
        if unmapped is None:
            return _detail(404, "Task instance is mapped, add the map_index value to the URL", "mapped")
        return Response(200, unmapped)

    def _get_mapped_task_instance(
        self, params: dict[str, str], query: dict[str, list[str]], body: Any
    ) -> Response:
        if query:
            return _detail(400, f"the stand-in does not implement {sorted(query)}", "unsupported")
        ti = next((t for t in self._tis_of(params) if t["map_index"] == int(params["map_index"])), None)
        if ti is None:
            return _detail(
                404,
                f"The Mapped Task Instance with dag_id: `{params['dag_id']}`, run_id: "
                f"`{params['dag_run_id']}`, task_id: `{params['task_id']}`, and map_index: "
                f"`{params['map_index']}` was not found",
                "unknown task instance",
            )
        return Response(200, ti)

    def _get_task_instance_tries(
        self, params: dict[str, str], query: dict[str, list[str]], body: Any
    ) -> Response:
        unknown = set(query) - {"map_index"}
        if unknown:
            return _detail(400, f"the stand-in does not implement {sorted(unknown)}", "unsupported")
        value = (query.get("map_index") or ["-1"])[-1]
        try:
            map_index = int(value)
        except ValueError:
            return _invalid(
                ["query", "map_index"], "Input should be a valid integer", "int_parsing", value, "map_index"
            )
        return self._tries(params, map_index)

    def _get_mapped_task_instance_tries(
        self, params: dict[str, str], query: dict[str, list[str]], body: Any
    ) -> Response:
        if query:
            return _detail(400, f"the stand-in does not implement {sorted(query)}", "unsupported")
        return self._tries(params, int(params["map_index"]))

    def _tries(self, params: dict[str, str], map_index: int) -> Response:
        """Like Airflow: the history rows, then the current try unless it is ``up_for_retry`` (its
        history row holds it already); no order."""
        key = (params["dag_id"], params["dag_run_id"], params["task_id"], map_index)

        def of_it(ti: dict[str, Any]) -> bool:
            return (ti["dag_id"], ti["dag_run_id"], ti["task_id"], ti["map_index"]) == key

        history = [t for t in self.data.task_instance_history if of_it(t)]
        current = [t for t in self._tis_of(params) if of_it(t) and t["state"] != "up_for_retry"]
        tries = [{name: t[name] for name in TRY_FIELDS} for t in history + current]
        if not tries:
            return _detail(
                404,
                f"The Task Instance with dag_id: `{key[0]}`, run_id: `{key[1]}`, task_id: `{key[2]}` "
                f"and map_index: `{map_index}` was not found",
                "unknown task instance",
            )
        return Response(200, {"task_instances": tries, "total_entries": len(tries)})

    def _cached(self, endpoint: str, key: str, compute: Any) -> list[dict[str, Any]]:
        with self.lock:
            known = self._cache.get(endpoint)
        if known is not None and known[0] == key:
            return known[1]
        result = compute()
        with self.lock:
            self._cache[endpoint] = (key, result)
        return result


def _batch_problem(body: Any, documented: frozenset[str], served: set[str]) -> Response | None:
    """The 422 for an invalid batch body, the 400 for a documented filter not served, else None."""
    if not isinstance(body, dict):
        return _invalid(["body"], "Input should be a valid dictionary", "dict_type", body, "body")
    for name in body:
        if name not in documented:
            return _invalid(
                ["body", name], "Extra inputs are not permitted", "extra_forbidden", body[name], "extra field"
            )
    for name in ("page_offset", "page_limit"):
        value = body.get(name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return _invalid(
                ["body", name],
                "Input should be greater than or equal to 0",
                "greater_than_equal",
                value,
                name,
            )
    for name in ("dag_ids", "dag_run_ids", "task_ids", "states", "state"):
        if body.get(name) is not None and not isinstance(body[name], list):
            return _invalid(["body", name], "Input should be a valid list", "list_type", body[name], name)
    unserved = {n for n in body if body[n] is not None} - served - {"page_offset", "page_limit", "order_by"}
    if unserved:
        return _detail(400, f"the stand-in does not implement {sorted(unserved)}", "unsupported")
    return None


def _page(matched: list[dict[str, Any]], body: dict[str, Any], key: str) -> dict[str, Any]:
    offset = body.get("page_offset", 0)
    limit = min(body.get("page_limit", 100), MAXIMUM_PAGE_LIMIT)
    return {key: matched[offset : offset + limit], "total_entries": len(matched)}


def _within(value: datetime, bounds: dict[str, datetime], name: str) -> bool:
    checks = (
        ("gte", lambda b: value >= b),
        ("gt", lambda b: value > b),
        ("lte", lambda b: value <= b),
        ("lt", lambda b: value < b),
    )
    return all(test(bounds[f"{name}_{op}"]) for op, test in checks if f"{name}_{op}" in bounds)


def _sort_value(value: Any) -> tuple[int, Any]:
    # NULLs sort last (PostgreSQL's default for ascending order).
    return (1, "") if value is None else (0, value)
