"""Airflow's public REST API v2, as the faultcat components use it.

Authentication is a JWT from ``POST /auth/token`` (the auth manager's token endpoint), fetched
lazily and fetched again once when a call answers 401. Every call has a timeout. The contract is
Airflow 3's ``v2-rest-api-generated.yaml``; only the calls listed here are used.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from functools import cached_property
from typing import Any
from urllib.parse import quote

import httpx
from airflow.sdk import BaseHook

from airflow_faultcat.exceptions import FaultcatError

#: The note on a TaskInstance holds at most this many characters (API limit).
NOTE_MAX_CHARS = 1000


class AirflowApiError(FaultcatError):
    """The Airflow REST API answered with an error.

    :param status_code: the HTTP status (0 when no answer came).
    :param detail: the API's ``detail`` or the transport error.
    """

    def __init__(self, message: str, status_code: int = 0, detail: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


def _path(value: str) -> str:
    return quote(str(value), safe="")


class AirflowApiHook(BaseHook):
    """Talks to an Airflow 3 API server's public REST API (``/api/v2``).

    The connection (type ``faultcat_api``) gives the host, port, scheme (``schema``: ``http`` or
    ``https``), and the login and password of a user of the auth manager. Extras: ``verify``
    (bool or CA bundle path, default true) and ``base_path`` (when the API server is under a path).

    :param faultcat_api_conn_id: the connection id (default ``faultcat_api_default``).
    :param timeout: seconds for connecting and for each read (default 10).
    :param deadline: a ``time.monotonic()`` instant after which no call may run: each call's timeout
        is cut to what is left (the failure callback's 2-second budget).
    """

    conn_name_attr = "faultcat_api_conn_id"
    default_conn_name = "faultcat_api_default"
    conn_type = "faultcat_api"
    hook_name = "Faultcat: Airflow REST API"

    def __init__(
        self,
        faultcat_api_conn_id: str = default_conn_name,
        *,
        timeout: float = 10.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.faultcat_api_conn_id = faultcat_api_conn_id
        self.timeout = timeout
        self.deadline = deadline
        self._token: str | None = None

    @cached_property
    def base_url(self) -> str:
        """``scheme://host:port[/base_path]`` of the API server, from the connection."""
        conn = self.get_connection(self.faultcat_api_conn_id)
        host = conn.host or "localhost"
        if "://" in host:
            base = host.rstrip("/")
        else:
            scheme = conn.schema or "http"
            base = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        base_path = (conn.extra_dejson.get("base_path") or "").strip("/")
        return f"{base}/{base_path}" if base_path else base

    @cached_property
    def _credentials(self) -> tuple[str | None, str | None, Any]:
        conn = self.get_connection(self.faultcat_api_conn_id)
        return conn.login, conn.password, conn.extra_dejson.get("verify", True)

    def get_conn(self) -> httpx.Client:
        """An httpx client for the API server (not yet authenticated)."""
        return self._client

    @cached_property
    def _client(self) -> httpx.Client:
        _, _, verify = self._credentials
        return httpx.Client(base_url=self.base_url, timeout=self.timeout, verify=verify)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        if "_client" in self.__dict__:
            self._client.close()
            del self.__dict__["_client"]

    # -- authentication -----------------------------------------------------------------------
    def _call_timeout(self) -> float:
        if self.deadline is None:
            return self.timeout
        left = self.deadline - time.monotonic()
        if left <= 0.05:
            raise AirflowApiError("the time budget for calling the Airflow API is spent")
        return min(self.timeout, left)

    def _fetch_token(self) -> str:
        login, password, _ = self._credentials
        try:
            response = self._client.post(
                "/auth/token",
                json={"username": login or "", "password": password or ""},
                timeout=self._call_timeout(),
            )
        except httpx.HTTPError as exc:
            raise AirflowApiError(f"cannot reach the Airflow API at {self.base_url}: {exc}") from exc
        if response.status_code not in (200, 201):
            raise AirflowApiError(
                f"the Airflow API refused a token for user {login!r} (HTTP {response.status_code})",
                response.status_code,
                _detail(response),
            )
        return response.json()["access_token"]

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one authenticated call to ``/api/v2{path}``; refresh the token once on 401.

        :raises AirflowApiError: when the API cannot be reached.
        """
        url = f"/api/v2{path}"
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._fetch_token()
            headers = {"Authorization": f"Bearer {self._token}", **kwargs.pop("headers", {})}
            try:
                response = self._client.request(
                    method, url, headers=headers, timeout=self._call_timeout(), **kwargs
                )
            except httpx.HTTPError as exc:
                raise AirflowApiError(f"{method} {url} failed: {exc}") from exc
            if response.status_code == 401 and attempt == 1:
                self._token = None
                continue
            return response
        return response

    def _json(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code not in ok:
            raise AirflowApiError(
                f"{method} /api/v2{path} answered HTTP {response.status_code}: {_detail(response)}",
                response.status_code,
                _detail(response),
            )
        return response.json() if response.content else None

    # -- calls --------------------------------------------------------------------------------
    def test_connection(self) -> tuple[bool, str]:
        """Check that a token can be had and an authenticated call answers (``GET /api/v2/dags``)."""
        try:
            self._json("GET", "/dags", params={"limit": 1})
            version = self._json("GET", "/version")
        except (AirflowApiError, KeyError, ValueError) as exc:
            return False, str(exc)
        return True, f"Connected to Airflow {version.get('version')} at {self.base_url}"

    def trigger_dag_run(
        self, dag_id: str, dag_run_id: str, conf: dict[str, Any] | None = None, note: str | None = None
    ) -> dict[str, Any] | None:
        """Trigger a DagRun with a given ``dag_run_id`` (``POST /dags/{dag_id}/dagRuns``).

        :return: the DagRun, or ``None`` when a run with that id exists already (HTTP 409): a
            repeated trigger is a no-op.
        :raises AirflowApiError: for any other error (unknown Dag: 404, bad conf: 422, ...).
        """
        body: dict[str, Any] = {"dag_run_id": dag_run_id, "logical_date": None, "conf": conf or {}}
        if note:
            body["note"] = note[:NOTE_MAX_CHARS]
        response = self._request("POST", f"/dags/{_path(dag_id)}/dagRuns", json=body)
        if response.status_code == 409:
            return None
        if response.status_code not in (200, 201):
            raise AirflowApiError(
                f"triggering {dag_id} answered HTTP {response.status_code}: {_detail(response)}",
                response.status_code,
                _detail(response),
            )
        return response.json()

    def get_dag_run(self, dag_id: str, dag_run_id: str) -> dict[str, Any]:
        """One DagRun (``GET /dags/{dag_id}/dagRuns/{dag_run_id}``)."""
        return self._json("GET", f"/dags/{_path(dag_id)}/dagRuns/{_path(dag_run_id)}")

    def _paged(self, path: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every entry of a list endpoint, page by page (the API caps a page at its
        ``maximum_page_limit``, 100 by default); ``limit`` is the most entries wanted."""
        wanted = int(params.pop("limit", 100))
        offset = int(params.pop("offset", 0))
        out: list[dict[str, Any]] = []
        while len(out) < wanted:
            page = self._json(
                "GET", path, params={**params, "limit": min(100, wanted - len(out)), "offset": offset}
            )
            entries = page.get(key) or []
            out.extend(entries)
            offset += len(entries)
            if not entries or offset >= int(page.get("total_entries") or 0):
                break
        return out

    def list_dag_runs(self, dag_id: str = "~", **params: Any) -> list[dict[str, Any]]:
        """DagRuns of a Dag (``~`` for all), with the API's filters (``state``, ``order_by``...).

        :param params: query filters; ``limit`` is the most DagRuns returned (default 100), fetched
            in pages.
        """
        return self._paged(f"/dags/{_path(dag_id)}/dagRuns", "dag_runs", params)

    def _ti_path(self, dag_id: str, dag_run_id: str, task_id: str, map_index: int) -> str:
        path = f"/dags/{_path(dag_id)}/dagRuns/{_path(dag_run_id)}/taskInstances/{_path(task_id)}"
        return f"{path}/{int(map_index)}" if map_index is not None and int(map_index) >= 0 else path

    def get_task_instance(
        self, dag_id: str, dag_run_id: str, task_id: str, map_index: int = -1
    ) -> dict[str, Any]:
        """One TaskInstance (its current try)."""
        return self._json("GET", self._ti_path(dag_id, dag_run_id, task_id, map_index))

    def get_task_instance_tries(
        self, dag_id: str, dag_run_id: str, task_id: str, map_index: int = -1
    ) -> list[dict[str, Any]]:
        """Every try of a TaskInstance, oldest first."""
        tries = self._json("GET", self._ti_path(dag_id, dag_run_id, task_id, map_index) + "/tries")
        return sorted(tries["task_instances"], key=lambda t: t.get("try_number") or 0)

    def list_task_instances(self, dag_id: str, dag_run_id: str, **params: Any) -> list[dict[str, Any]]:
        """TaskInstances of a DagRun, with the API's filters (``state``, ``task_id``...)."""
        path = f"/dags/{_path(dag_id)}/dagRuns/{_path(dag_run_id)}/taskInstances"
        return self._paged(path, "task_instances", params)

    def iter_task_log(
        self, dag_id: str, dag_run_id: str, task_id: str, try_number: int, map_index: int = -1
    ) -> Iterator[str]:
        """Yield the log of one try as text lines: Airflow 3 structured records as JSON lines.

        Pages through the log with the API's ``continuation_token``.

        :raises AirflowApiError: when the log cannot be read (404: no such TaskInstance or try).
        """
        path = (
            f"/dags/{_path(dag_id)}/dagRuns/{_path(dag_run_id)}/taskInstances/{_path(task_id)}"
            f"/logs/{int(try_number)}"
        )
        params: dict[str, Any] = {"full_content": "false"}
        if map_index is not None and int(map_index) >= 0:
            params["map_index"] = int(map_index)
        seen_tokens: set[str] = set()
        in_sources = False
        for _ in range(10000):
            page = self._json("GET", path, params=params, headers={"Accept": "application/json"})
            for record in page.get("content") or []:
                if isinstance(record, dict):
                    event = str(record.get("event", ""))
                    if set(record) <= {"event", "timestamp", "level"} and event.startswith("::"):
                        # UI groups; the "Log message source details" group is about where the API
                        # server looked for the log, not about the task.
                        in_sources = event == "::group::Log message source details"
                        continue
                    if in_sources:
                        continue
                    yield json.dumps(record, default=str)
                else:
                    yield str(record)
            token = page.get("continuation_token")
            if not token or token in seen_tokens or not page.get("content"):
                return
            seen_tokens.add(token)
            params["token"] = token

    def set_task_instance_note(
        self, dag_id: str, dag_run_id: str, task_id: str, note: str, map_index: int = -1
    ) -> dict[str, Any]:
        """Set the note of a TaskInstance (cut to the API's 1000 characters)."""
        params: dict[str, Any] = {"update_mask": "note"}
        return self._json(
            "PATCH",
            self._ti_path(dag_id, dag_run_id, task_id, map_index),
            params=params,
            json={"note": note[:NOTE_MAX_CHARS]},
        )

    def get_dag_details(self, dag_id: str) -> dict[str, Any]:
        """``GET /dags/{dag_id}/details``: the Dag's tags, params, owners, timeouts."""
        return self._json("GET", f"/dags/{_path(dag_id)}/details")

    def clear_task_instance(
        self,
        dag_id: str,
        dag_run_id: str,
        task_id: str,
        map_index: int = -1,
        *,
        include_downstream: bool = True,
        dry_run: bool = False,
    ) -> list[dict[str, Any]]:
        """Clear one failed TaskInstance so that the scheduler runs it again.

        ``POST /dags/{dag_id}/clearTaskInstances`` with ``only_failed`` (a running or successful
        TaskInstance is left alone), the exact ``[task_id, map_index]`` and ``reset_dag_runs`` (the
        DagRun goes back to running and can end successful). ``include_downstream`` also clears its
        failed and upstream_failed downstream tasks, which the failure had stopped.

        :return: the TaskInstances cleared (empty when nothing was in a failed state).
        :raises AirflowApiError: on an API error (404 unknown Dag/run, 409 conflict, ...).
        """
        body = {
            "dry_run": dry_run,
            "only_failed": True,
            "reset_dag_runs": True,
            "dag_run_id": dag_run_id,
            "task_ids": [[task_id, map_index]] if map_index >= 0 else [task_id],
            "include_downstream": include_downstream,
            "include_upstream": False,
            "include_future": False,
            "include_past": False,
        }
        data = self._json("POST", f"/dags/{_path(dag_id)}/clearTaskInstances", json=body)
        return list(data.get("task_instances", []))

    def list_tasks(self, dag_id: str) -> dict[str, dict[str, Any]]:
        """``GET /dags/{dag_id}/tasks``: the Dag's tasks by task_id (trigger rules, downstream ids)."""
        data = self._json("GET", f"/dags/{_path(dag_id)}/tasks")
        return {t["task_id"]: t for t in data.get("tasks", [])}

    def get_pool(self, pool_name: str) -> dict[str, Any]:
        """``GET /pools/{pool_name}``: one pool with its slots.

        :raises AirflowApiError: ``status_code`` 404 when there is no such pool.
        """
        return self._json("GET", f"/pools/{_path(pool_name)}")

    def list_pools(self) -> list[dict[str, Any]]:
        """``GET /pools``: every pool with its slots (``open_slots``, ``running_slots``...)."""
        return self._paged("/pools", "pools", {"limit": 10000})

    def health(self) -> dict[str, Any]:
        """``GET /monitor/health``: the metadatabase, scheduler, triggerer and dag-processor status
        with their latest heartbeats (ISO timestamps, ``None`` when never seen)."""
        return self._json("GET", "/monitor/health")

    def list_assets(self, uri_pattern: str | None = None, limit: int = 10000) -> list[dict[str, Any]]:
        """Assets with their producing tasks (``GET /assets``), fetched in pages.

        :param uri_pattern: only assets whose URI contains this text (the API's ``uri_pattern``).
        :param limit: the most assets returned.
        """
        params: dict[str, Any] = {"limit": limit}
        if uri_pattern:
            params["uri_pattern"] = uri_pattern
        return self._paged("/assets", "assets", params)

    def _batch(
        self, path: str, key: str, body: dict[str, Any], page_limit: int
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of a batch list endpoint (``POST .../list``), ``page_limit`` entries each."""
        offset = 0
        while True:
            page = self._json("POST", path, json={**body, "page_offset": offset, "page_limit": page_limit})
            entries = page.get(key) or []
            if entries:
                yield entries
            offset += len(entries)
            if not entries or offset >= int(page.get("total_entries") or 0):
                return

    def iter_dag_runs_batch(
        self,
        *,
        states: list[str] | None = None,
        dag_ids: list[str] | None = None,
        end_date_gte: str | None = None,
        end_date_lt: str | None = None,
        page_limit: int = 100,
    ) -> Iterator[list[dict[str, Any]]]:
        """DagRuns of many Dags, a page per call: ``POST /dags/~/dagRuns/list``.

        :param states: e.g. ``["success"]``.
        :param dag_ids: only these Dags (default: all).
        :param end_date_gte: ISO timestamp, inclusive lower bound of ``end_date``.
        :param end_date_lt: ISO timestamp, exclusive upper bound of ``end_date``.
        :param page_limit: DagRuns per call (the API caps it at its ``maximum_page_limit``).
        """
        body: dict[str, Any] = {"order_by": "end_date"}
        for name, value in (
            ("states", states),
            ("dag_ids", dag_ids),
            ("end_date_gte", end_date_gte),
            ("end_date_lt", end_date_lt),
        ):
            if value is not None:
                body[name] = value
        yield from self._batch("/dags/~/dagRuns/list", "dag_runs", body, page_limit)

    def iter_task_instances_batch(
        self,
        dag_run_ids: list[str] | None,
        *,
        dag_ids: list[str] | None = None,
        states: list[str] | None = None,
        page_limit: int = 100,
    ) -> Iterator[list[dict[str, Any]]]:
        """TaskInstances of many DagRuns, a page per call: ``POST /dags/~/dagRuns/~/taskInstances/list``.

        :param dag_run_ids: the DagRuns' run ids (a run id is unique within a Dag only: filter the
            entries by ``dag_id`` too when Dags may share run ids); ``None``: every DagRun.
        :param dag_ids: only TaskInstances of these Dags.
        :param states: only TaskInstances in these states.
        :param page_limit: TaskInstances per call.
        """
        body: dict[str, Any] = {}
        if dag_run_ids is not None:
            body["dag_run_ids"] = dag_run_ids
        if dag_ids is not None:
            body["dag_ids"] = dag_ids
        if states is not None:
            body["state"] = states
        yield from self._batch("/dags/~/dagRuns/~/taskInstances/list", "task_instances", body, page_limit)

    def get_hitl_detail(
        self, dag_id: str, dag_run_id: str, task_id: str, map_index: int = -1
    ) -> dict[str, Any]:
        """The human-in-the-loop request of a TaskInstance (options, subject, response so far)."""
        return self._json("GET", self._hitl_path(dag_id, dag_run_id, task_id, map_index))

    def respond_hitl(
        self,
        dag_id: str,
        dag_run_id: str,
        task_id: str,
        chosen_options: list[str],
        map_index: int = -1,
        params_input: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Answer a human-in-the-loop request, e.g. ``["Approve"]`` for an ``ApprovalOperator``.

        :raises AirflowApiError: 404 when the TaskInstance has no request, 409 when it was answered.
        """
        body: dict[str, Any] = {"chosen_options": chosen_options}
        if params_input is not None:
            body["params_input"] = params_input
        return self._json("PATCH", self._hitl_path(dag_id, dag_run_id, task_id, map_index), json=body)

    def _hitl_path(self, dag_id: str, dag_run_id: str, task_id: str, map_index: int) -> str:
        # Unlike the TaskInstance endpoints, this one always names the map index (-1: not mapped).
        path = f"/dags/{_path(dag_id)}/dagRuns/{_path(dag_run_id)}/taskInstances/{_path(task_id)}"
        return f"{path}/{int(map_index)}/hitlDetails"


def _detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return body.get("detail", body) if isinstance(body, dict) else body
