"""Marquez, the OpenLineage metadata service: find the lineage run of a DagRun or a task try.

Shadow-error detection asks "did this successful DagRun emit lineage?". The Airflow OpenLineage
provider names the DagRun's job ``<dag_id>`` and a task's job ``<dag_id>.<task_id>`` in its
configured namespace, and derives the run ids deterministically (UUIDv7 from
``openlineage.client.uuid.generate_static_uuid``). This hook asks the provider for those ids
(imported lazily: the provider is optional) and looks the run up by id; when that finds nothing (a
cleared DagRun gets a new id, the provider is absent, the namespace differs) it lists the job's runs
and matches the Airflow run id the provider puts in the run facets.

Only calls of Marquez's OpenAPI description are used: ``GET /api/v1/jobs/runs/{id}`` and
``GET /api/v1/namespaces/{namespace}/jobs/{job}/runs``.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Any
from urllib.parse import quote

import httpx
from airflow.sdk import BaseHook

from airflow_faultcat.exceptions import FaultcatError

#: Marquez's default page size for run lists (its ``limit`` parameter default).
PAGE_SIZE = 100


class MarquezUnavailable(FaultcatError):
    """Marquez could not say whether a run exists: unreachable, 5xx, refused credentials, bad JSON.

    A caller reports UNAVAILABLE for this, never a violation.

    :param message: what failed.
    :param status_code: the HTTP status (0 when no answer came).
    """

    def __init__(self, message: str, status_code: int = 0) -> None:
        super().__init__(message)
        self.status_code = status_code


def _path(value: str) -> str:
    return quote(str(value), safe="")


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


class MarquezHook(BaseHook):
    """Reads runs from a Marquez API server (``/api/v1``).

    The connection (type ``marquez``) gives the host, port and scheme (``schema``: ``http`` or
    ``https``); an API key in the password is sent as ``Authorization: Bearer`` (for a Marquez
    behind an authenticating proxy). Extra ``namespace``: the OpenLineage namespace of the Airflow
    jobs (default: the OpenLineage provider's ``[openlineage] namespace`` if the provider is
    installed, else ``"default"``).

    :param marquez_conn_id: the connection id (default ``marquez_default``).
    :param timeout: seconds for connecting and for each read (default 10).
    """

    conn_name_attr = "marquez_conn_id"
    default_conn_name = "marquez_default"
    conn_type = "marquez"
    hook_name = "Faultcat: Marquez"

    def __init__(self, marquez_conn_id: str = default_conn_name, *, timeout: float = 10.0) -> None:
        super().__init__()
        self.marquez_conn_id = marquez_conn_id
        self.timeout = timeout

    @cached_property
    def _connection(self) -> Any:
        return self.get_connection(self.marquez_conn_id)

    @cached_property
    def base_url(self) -> str:
        """``scheme://host:port`` of the Marquez API server, from the connection."""
        conn = self._connection
        host = conn.host or "localhost"
        if "://" in host:
            return host.rstrip("/")
        scheme = conn.schema or "http"
        return f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")

    @cached_property
    def namespace(self) -> str:
        """The OpenLineage namespace of the Airflow jobs."""
        configured = self._connection.extra_dejson.get("namespace")
        if configured:
            return str(configured)
        try:
            from airflow.providers.openlineage import conf as ol_conf
        except ImportError:
            return "default"
        return ol_conf.namespace()

    def get_conn(self) -> httpx.Client:
        """An httpx client for the Marquez API server."""
        return self._client

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._connection.password:
            headers["Authorization"] = f"Bearer {self._connection.password}"
        return headers

    @cached_property
    def _client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=self.timeout, headers=self._headers())

    def close(self) -> None:
        """Close the HTTP connection pool."""
        if "_client" in self.__dict__:
            self._client.close()
            del self.__dict__["_client"]

    # -- calls --------------------------------------------------------------------------------
    def _get_json(self, url: str, params: dict[str, Any] | None = None) -> Any | None:
        """GET ``/api/v1{url}``; ``None`` for 404.

        :raises MarquezUnavailable: no answer, or any answer but 200 and 404.
        """
        full = f"/api/v1{url}"
        try:
            response = self._client.get(full, params=params)
        except httpx.HTTPError as exc:
            raise MarquezUnavailable(f"GET {full} failed: {exc}") from exc
        return self._answer(full, response)

    @staticmethod
    def _answer(full: str, response: httpx.Response) -> Any | None:
        """The JSON of a 200, ``None`` for a 404; :class:`MarquezUnavailable` for anything else."""
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            # 401/403 too: without access, Marquez's silence is no evidence of missing lineage.
            raise MarquezUnavailable(
                f"GET {full} answered HTTP {response.status_code}: {response.text[:200]}",
                response.status_code,
            )
        try:
            return response.json()
        except ValueError as exc:
            raise MarquezUnavailable(f"GET {full} answered with invalid JSON: {exc}", 200) from exc

    def test_connection(self) -> tuple[bool, str]:
        """Check that Marquez answers a run list (``GET /namespaces/{namespace}/jobs/{job}/runs``).

        A job that does not exist answers 404, which still proves Marquez is there and readable.
        """
        try:
            self._get_json(
                f"/namespaces/{_path(self.namespace)}/jobs/{_path('faultcat-connection-test')}/runs",
                {"limit": 1},
            )
        except MarquezUnavailable as exc:
            return False, str(exc)
        return True, f"Connected to Marquez at {self.base_url} (namespace {self.namespace!r})"

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """One run by its id (``GET /api/v1/jobs/runs/{id}``).

        :param run_id: the OpenLineage run id (a UUID).
        :return: the run (Marquez's ``Run``), or ``None`` when Marquez does not know it.
        :raises MarquezUnavailable: when Marquez cannot answer.
        """
        return self._get_json(f"/jobs/runs/{_path(run_id)}")

    def list_job_runs(
        self, namespace: str, job: str, limit: int = 100, *, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Runs of a job, newest first, fetched in pages (``GET .../jobs/{job}/runs``).

        :param namespace: the job's namespace.
        :param job: the job name.
        :param limit: the most runs returned (without ``since``).
        :param since: go on past ``limit``, a page at a time, until a run created before this
            instant is listed (so that every run created since is in the list).
        :return: the runs; empty when the job is unknown (404).
        :raises MarquezUnavailable: when Marquez cannot answer.
        """
        url = f"/namespaces/{_path(namespace)}/jobs/{_path(job)}/runs"
        out: list[dict[str, Any]] = []
        while len(out) < limit or (since is not None and out and _created_since(out[-1], since)):
            size = min(PAGE_SIZE, limit - len(out)) if len(out) < limit else PAGE_SIZE
            page = self._get_json(url, {"limit": size, "offset": len(out)})
            runs = (page or {}).get("runs") or []
            out.extend(runs)
            if len(runs) < size:
                break
        return out if since is not None else out[:limit]

    # -- asynchronous (for triggers) -----------------------------------------------------------
    async def alatest_task_run(
        self, dag_id: str, task_id: str, run_id: str, map_index: int = -1, *, limit: int = 100
    ) -> tuple[dict[str, Any] | None, str]:
        """The OpenLineage run of a TaskInstance's latest try, with asyncio (a trigger's call).

        Lists the job ``<dag_id>.<task_id>``'s newest ``limit`` runs with an ``httpx.AsyncClient``
        and keeps the highest try whose ``airflow`` run facet names ``run_id`` and ``map_index``.
        The connection is read in a thread first (Airflow's connection lookup is synchronous).

        :return: the Marquez run or None, and the query made.
        :raises MarquezUnavailable: when Marquez cannot answer.
        """
        from asgiref.sync import sync_to_async

        await sync_to_async(self._prepare)()
        job = f"{dag_id}.{task_id}"
        url = f"/api/v1/namespaces/{_path(self.namespace)}/jobs/{_path(job)}/runs"
        runs: list[dict[str, Any]] = []
        async with httpx.AsyncClient(
            base_url=self.base_url, timeout=self.timeout, headers=self._headers()
        ) as client:
            while len(runs) < limit:
                size = min(PAGE_SIZE, limit - len(runs))
                try:
                    response = await client.get(url, params={"limit": size, "offset": len(runs)})
                except httpx.HTTPError as exc:
                    raise MarquezUnavailable(f"GET {url} failed: {exc}") from exc
                page = self._answer(url, response)
                batch = (page or {}).get("runs") or []
                runs.extend(batch)
                if len(batch) < size:
                    break
        query = f"GET {url} (facet airflow.dagRun.run_id={run_id!r} in {len(runs)} runs)"
        return _latest_try(runs, run_id, map_index), query

    def latest_task_run(
        self, dag_id: str, task_id: str, run_id: str, map_index: int = -1, *, limit: int = 100
    ) -> tuple[dict[str, Any] | None, str]:
        """The OpenLineage run of a TaskInstance's latest try (the synchronous
        :meth:`alatest_task_run`).

        :raises MarquezUnavailable: when Marquez cannot answer.
        """
        job = f"{dag_id}.{task_id}"
        runs = self.list_job_runs(self.namespace, job, limit=limit)
        url = f"/api/v1/namespaces/{_path(self.namespace)}/jobs/{_path(job)}/runs"
        return _latest_try(runs, run_id, map_index), (
            f"GET {url} (facet airflow.dagRun.run_id={run_id!r} in {len(runs)} runs)"
        )

    def _prepare(self) -> None:
        """Read the connection (base URL, namespace, credentials) into the cached properties."""
        _ = self.base_url, self.namespace, self._connection.password

    # -- many runs at once ----------------------------------------------------------------------
    def dag_run_index(
        self, dag_id: str, limit: int, *, since: datetime | None = None
    ) -> tuple[dict[str, dict[str, Any]], str]:
        """The job ``<dag_id>``'s newest ``limit`` runs, by the Airflow run id in their facets.

        One paged list call per :data:`PAGE_SIZE` runs, however many DagRuns are looked up.
        A cleared DagRun has one run per clear: the highest ``clear_number`` is kept.

        :param since: list past ``limit`` back to runs created at this instant (an older DagRun).
        :return: Airflow run_id -> Marquez run, and the query made.
        :raises MarquezUnavailable: when Marquez cannot answer.
        """
        runs = self.list_job_runs(self.namespace, dag_id, limit=limit, since=since)
        index: dict[str, tuple[tuple[int, str], dict[str, Any]]] = {}
        for run in runs:
            dag_run = _get(run, "facets", "airflowDagRun", "dagRun")
            if not isinstance(dag_run, dict) or not dag_run.get("run_id"):
                continue
            key = (int(dag_run.get("clear_number") or 0), str(run.get("createdAt") or ""))
            known = index.get(dag_run["run_id"])
            if known is None or key > known[0]:
                index[dag_run["run_id"]] = (key, run)
        query = f"GET /api/v1/namespaces/{_path(self.namespace)}/jobs/{_path(dag_id)}/runs ({len(runs)} runs)"
        return {k: v[1] for k, v in index.items()}, query

    def task_run_index(
        self, dag_id: str, task_id: str, limit: int, *, since: datetime | None = None
    ) -> tuple[dict[tuple[str, int, int], dict[str, Any]], str]:
        """The job ``<dag_id>.<task_id>``'s newest ``limit`` runs, by (run_id, try_number, map_index).

        ``map_index`` is -1 for an unmapped task (the provider writes None).

        :param since: list past ``limit`` back to runs created at this instant.
        :return: the index and the query made.
        :raises MarquezUnavailable: when Marquez cannot answer.
        """
        job = f"{dag_id}.{task_id}"
        runs = self.list_job_runs(self.namespace, job, limit=limit, since=since)
        index: dict[tuple[str, int, int], dict[str, Any]] = {}
        for run in runs:
            airflow = _get(run, "facets", "airflow")
            run_id = _get(airflow, "dagRun", "run_id")
            ti = _get(airflow, "taskInstance") or {}
            if not run_id or ti.get("try_number") is None:
                continue
            map_index = ti.get("map_index")
            key = (run_id, int(ti["try_number"]), -1 if map_index is None else int(map_index))
            index.setdefault(key, run)
        query = f"GET /api/v1/namespaces/{_path(self.namespace)}/jobs/{_path(job)}/runs ({len(runs)} runs)"
        return index, query

    # -- finding Airflow's runs -----------------------------------------------------------------
    def find_dag_run(
        self,
        dag_id: str,
        run_id: str,
        logical_date_or_run_after: datetime | None,
        clear_number: int | None = 0,
        *,
        limit: int = 100,
    ) -> tuple[dict[str, Any] | None, str]:
        """The OpenLineage run of a DagRun (job ``<dag_id>``), with the queries that looked.

        First by the id the OpenLineage provider computes (when the provider is installed and the
        date and clear number are known), then among the job's newest ``limit`` runs by the
        ``airflowDagRun`` run facet's ``dagRun.run_id``; among several matches (a cleared DagRun
        emits one run per clear) the highest ``dagRun.clear_number`` wins.

        :param dag_id: the Dag id.
        :param run_id: the Airflow run id.
        :param logical_date_or_run_after: the DagRun's logical date, or its ``run_after`` when the
            logical date is None (what the provider hashes); None skips the lookup by id.
        :param clear_number: the DagRun's clear number; None when unknown (skips the lookup by id,
            since clear 0's run would hide a later clear's).
        :param limit: the most runs of the job searched.
        :return: the Marquez run or None, and the queries made, for the evidence.
        :raises MarquezUnavailable: when Marquez cannot answer.
        """
        queries: list[str] = []
        if logical_date_or_run_after is not None and clear_number is not None:
            ol_run_id = _provider_dag_run_id(dag_id, logical_date_or_run_after, clear_number)
            if ol_run_id is not None:
                run = self.get_run(ol_run_id)
                queries.append(f"GET /api/v1/jobs/runs/{ol_run_id}" + ("" if run else " (404)"))
                if run is not None:
                    return run, queries[0]

        def key(run: dict[str, Any]) -> tuple[int, str] | None:
            dag_run = _get(run, "facets", "airflowDagRun", "dagRun")
            if not isinstance(dag_run, dict) or dag_run.get("run_id") != run_id:
                return None
            return int(dag_run.get("clear_number") or 0), str(run.get("createdAt") or "")

        facet = f"airflowDagRun.dagRun.run_id={run_id!r}"
        return self._find_in_job(dag_id, key, facet, queries, limit)

    def find_task_run(
        self,
        dag_id: str,
        task_id: str,
        run_id: str,
        try_number: int,
        map_index: int = -1,
        logical_date_or_run_after: datetime | None = None,
        *,
        limit: int = 100,
    ) -> tuple[dict[str, Any] | None, str]:
        """The OpenLineage run of one task try (job ``<dag_id>.<task_id>``), with the queries made.

        First by the id the OpenLineage provider computes, then among the job's newest ``limit``
        runs by the ``airflow`` run facet: ``dagRun.run_id``, ``taskInstance.try_number`` and
        ``taskInstance.map_index`` (the provider writes None for an unmapped task).

        :param dag_id: the Dag id.
        :param task_id: the task id.
        :param run_id: the Airflow run id.
        :param try_number: the try number.
        :param map_index: the map index (-1: not mapped).
        :param logical_date_or_run_after: the DagRun's logical date, or its ``run_after`` when the
            logical date is None; None skips the lookup by id.
        :param limit: the most runs of the job searched.
        :return: the Marquez run or None, and the queries made, for the evidence.
        :raises MarquezUnavailable: when Marquez cannot answer.
        """
        queries: list[str] = []
        if logical_date_or_run_after is not None:
            ol_run_id = _provider_task_run_id(
                dag_id, task_id, try_number, logical_date_or_run_after, map_index
            )
            if ol_run_id is not None:
                run = self.get_run(ol_run_id)
                queries.append(f"GET /api/v1/jobs/runs/{ol_run_id}" + ("" if run else " (404)"))
                if run is not None:
                    return run, queries[0]

        wanted_map_index = None if map_index is None or int(map_index) < 0 else int(map_index)

        def key(run: dict[str, Any]) -> tuple[int, str] | None:
            airflow = _get(run, "facets", "airflow")
            if _get(airflow, "dagRun", "run_id") != run_id:
                return None
            ti = _get(airflow, "taskInstance") or {}
            if ti.get("try_number") != try_number or ti.get("map_index") != wanted_map_index:
                return None
            return 0, str(run.get("createdAt") or "")

        facet = (
            f"airflow.dagRun.run_id={run_id!r}, airflow.taskInstance.try_number={try_number}, "
            f"airflow.taskInstance.map_index={wanted_map_index}"
        )
        return self._find_in_job(f"{dag_id}.{task_id}", key, facet, queries, limit)

    def _find_in_job(
        self, job: str, key: Any, facet: str, queries: list[str], limit: int
    ) -> tuple[dict[str, Any] | None, str]:
        runs = self.list_job_runs(self.namespace, job, limit=limit)
        matches = [(k, run) for run in runs if (k := key(run)) is not None]
        query = f"GET /api/v1/namespaces/{_path(self.namespace)}/jobs/{_path(job)}/runs"
        if matches:
            queries.append(f"{query} (matched facet {facet} in {len(runs)} runs)")
            return max(matches, key=lambda m: m[0])[1], "; ".join(queries)
        queries.append(f"{query} (no run with facet {facet} in {len(runs)} runs)")
        return None, "; ".join(queries)


def _created_since(run: dict[str, Any], since: datetime) -> bool:
    """Whether a listed run was created at or after ``since`` (unknown: no, which stops paging)."""
    try:
        created = datetime.fromisoformat(str(run.get("createdAt")).replace("Z", "+00:00"))
    except ValueError:
        return False
    return (created if created.tzinfo else created.replace(tzinfo=since.tzinfo)) >= since


def _latest_try(runs: list[dict[str, Any]], run_id: str, map_index: int | None) -> dict[str, Any] | None:
    """Among task runs, the highest try whose ``airflow`` facet names ``run_id`` and ``map_index``."""
    wanted = None if map_index is None or int(map_index) < 0 else int(map_index)
    best: tuple[int, dict[str, Any]] | None = None
    for run in runs:
        airflow = _get(run, "facets", "airflow")
        ti = _get(airflow, "taskInstance") or {}
        if _get(airflow, "dagRun", "run_id") != run_id or ti.get("map_index") != wanted:
            continue
        tried = int(ti.get("try_number") or 0)
        if best is None or tried > best[0]:
            best = (tried, run)
    return best[1] if best else None


# The provider hashes its own configured namespace ([openlineage] namespace) into the ids; calling
# its functions, not a copy of them, keeps the ids right when the provider changes what it hashes.
def _provider_dag_run_id(dag_id: str, logical_date: datetime, clear_number: int) -> str | None:
    try:
        from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter
    except ImportError:
        return None
    return OpenLineageAdapter.build_dag_run_id(
        dag_id=dag_id, logical_date=logical_date, clear_number=clear_number
    )


def _provider_task_run_id(
    dag_id: str, task_id: str, try_number: int, logical_date: datetime, map_index: int
) -> str | None:
    try:
        from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter
    except ImportError:
        return None
    return OpenLineageAdapter.build_task_instance_run_id(
        dag_id=dag_id,
        task_id=task_id,
        try_number=try_number,
        logical_date=logical_date,
        map_index=map_index,
    )
