"""A stand-in for the part of Marquez's API (``/api/v1``) that lineage checks use.

It receives OpenLineage run events at ``POST /api/v1/lineage`` (as the OpenLineage provider's HTTP
transport sends them) and builds runs from them the way Marquez does: a run's ``state`` follows its
latest event (START -> RUNNING, COMPLETE -> COMPLETED, FAIL -> FAILED, ABORT -> ABORTED, RUNNING
-> RUNNING; OTHER leaves it), run facets are merged, later events winning. It answers
``GET /api/v1/jobs/runs/{id}`` and ``GET /api/v1/namespaces/{namespace}/jobs/{job}/runs``
(``limit``/``offset``, newest first) with the ``Run`` and ``RunList`` shapes of
``contracts/marquez-openapi.yml`` (trimmed from Marquez's OpenAPI description, see
``contracts/SOURCES.md``); :func:`response_errors` checks an answer against that contract.

Errors use Marquez's (Dropwizard's) shape ``{"code": <status>, "message": ...}``, which the OpenAPI
description does not document. :meth:`MarquezApiStandin.down` makes every call answer 503.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from typing import Any
from urllib.parse import unquote

import yaml
from jsonschema import Draft202012Validator

from tests.standins import CONTRACTS, Response, StandinServer

__all__ = ["CONTRACT", "MarquezApiStandin", "StandinRun", "operation_of", "response_errors"]

CONTRACT = "marquez-openapi.yml"
_STATES = {
    "START": "RUNNING",
    "RUNNING": "RUNNING",
    "COMPLETE": "COMPLETED",
    "FAIL": "FAILED",
    "ABORT": "ABORTED",
}
_SEGMENT = r"(?P<{}>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("POST", re.compile(r"/api/v1/lineage"), "recordLineage"),
    ("GET", re.compile(r"/api/v1/jobs/runs/" + _SEGMENT.format("id")), "getRun"),
    (
        "GET",
        re.compile(
            r"/api/v1/namespaces/"
            + _SEGMENT.format("namespace")
            + "/jobs/"
            + _SEGMENT.format("job")
            + "/runs"
        ),
        "getRuns",
    ),
]


@cache
def _contract() -> dict[str, Any]:
    return yaml.safe_load((CONTRACTS / CONTRACT).read_text())


@cache
def _operations() -> dict[str, dict[str, Any]]:
    return {
        op["operationId"]: op
        for item in _contract()["paths"].values()
        for method, op in item.items()
        if method != "parameters"
    }


@cache
def _schema_validator(ref: str) -> Draft202012Validator:
    # The whole document is the root so that the spec's '#/components/schemas/...' refs resolve.
    document = {**_contract(), "$ref": ref}
    return Draft202012Validator(document, format_checker=Draft202012Validator.FORMAT_CHECKER)


def operation_of(method: str, path: str) -> str | None:
    """The contract's ``operationId`` that a request is for, or None when the stand-in serves none."""
    for route_method, pattern, operation in _ROUTES:
        if route_method == method and pattern.fullmatch(path):
            return operation
    return None


def response_errors(operation_id: str, status: int, body: Any) -> list[str]:
    """What in an answer breaks the contract, one message per error (empty: valid).

    :param operation_id: the contract's ``operationId`` (``getRun``, ``getRuns``, ``recordLineage``).
    :param status: the HTTP status answered.
    :param body: the parsed JSON body (None: none).
    """
    responses = _operations()[operation_id]["responses"]
    if str(status) not in responses:
        return [f"{operation_id} documents no HTTP {status} answer"]
    content = responses[str(status)].get("content")
    if content is None:
        return [] if body is None else [f"{operation_id} HTTP {status} documents no body"]
    ref = content["application/json"]["schema"]["$ref"]
    errors = _schema_validator(ref).iter_errors(body)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class StandinRun:
    """A run as the stand-in keeps it, built from the events received."""

    id: str
    namespace: str
    job: str
    created_at: str
    updated_at: str
    seq: int = 0
    state: str = "NEW"
    nominal_start_time: str | None = None
    nominal_end_time: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    facets: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The run in the contract's ``Run`` shape."""
        duration = None
        if self.started_at and self.ended_at:
            delta = _parse(self.ended_at) - _parse(self.started_at)
            duration = int(delta.total_seconds() * 1000)
        return {
            "id": self.id,
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
            "nominalStartTime": self.nominal_start_time,
            "nominalEndTime": self.nominal_end_time,
            "state": self.state,
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
            "durationMs": duration,
            "args": {},
            "inputDatasetVersions": [],
            "outputDatasetVersions": [],
            "facets": json.loads(json.dumps(self.facets)),
        }


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class MarquezApiStandin(StandinServer):
    """The Marquez stand-in.

    :param api_key: when set, every call must carry ``Authorization: Bearer <api_key>`` (as a
        Marquez behind an authenticating proxy); otherwise 401.
    """

    def __init__(self, api_key: str | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.runs: dict[str, StandinRun] = {}
        self.available = True

    # ---- test controls -----------------------------------------------------------------------

    def down(self) -> None:
        """Answer every call with 503 (Marquez or its database unavailable)."""
        with self.lock:
            self.available = False

    def up(self) -> None:
        """Answer normally again."""
        with self.lock:
            self.available = True

    def reset(self) -> None:
        """Forget every run and recorded request; answer normally."""
        with self.lock:
            self.runs.clear()
            self.requests.clear()
            self.available = True

    def job_runs(self, namespace: str, job: str) -> list[StandinRun]:
        """The runs of a job, newest first (as ``getRuns`` lists them)."""
        with self.lock:
            runs = [r for r in self.runs.values() if r.namespace == namespace and r.job == job]
        return sorted(runs, key=lambda r: (r.created_at, r.seq), reverse=True)

    # ---- serving -----------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw: bytes
    ) -> tuple[Any, Response]:
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return raw.decode("utf-8", "replace"), _error(400, "Unable to process JSON", "bad JSON")
        with self.lock:
            if not self.available:
                return body, _error(503, "Service Unavailable", "down")
            if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
                return body, _error(401, "Credentials are required to access this resource.", "auth")
            for route_method, pattern, operation in _ROUTES:
                match = pattern.fullmatch(path)
                if match and route_method == method:
                    params = {k: unquote(v) for k, v in match.groupdict().items()}
                    return body, getattr(self, f"_{operation}")(params, query, body)
            if any(p.fullmatch(path) for _, p, _ in _ROUTES):
                return body, _error(405, "HTTP 405 Method Not Allowed", "method")
            return body, _error(404, "HTTP 404 Not Found", "no such path")

    def _recordLineage(self, params: dict[str, str], query: Any, event: Any) -> Response:  # noqa: N802
        problem = _event_problem(event)
        if problem:
            return _error(422, problem, problem)
        run_id = event["run"]["runId"]
        job = event["job"]
        run = self.runs.get(run_id)
        if run is None:
            now = _now()
            seq = len(self.runs)
            run = StandinRun(run_id, job["namespace"], job["name"], created_at=now, updated_at=now, seq=seq)
            self.runs[run_id] = run
        run.updated_at = _now()
        run.events.append(event)
        run.facets.update(event["run"].get("facets") or {})
        nominal = (event["run"].get("facets") or {}).get("nominalTime") or {}
        run.nominal_start_time = nominal.get("nominalStartTime", run.nominal_start_time)
        run.nominal_end_time = nominal.get("nominalEndTime", run.nominal_end_time)
        event_type = event.get("eventType")
        if event_type == "START":
            run.started_at = event["eventTime"]
        elif event_type in ("COMPLETE", "FAIL", "ABORT"):
            run.ended_at = event["eventTime"]
        run.state = _STATES.get(event_type, run.state)
        return Response(200)

    def _getRun(self, params: dict[str, str], query: Any, body: Any) -> Response:  # noqa: N802
        try:
            run_id = str(uuid.UUID(params["id"]))
        except ValueError:
            return _error(400, f"Invalid UUID string: {params['id']}", "bad uuid")
        run = self.runs.get(run_id)
        if run is None:
            return _error(404, f"Run '{run_id}' not found.", "unknown run")
        return Response(200, run.as_json())

    def _getRuns(self, params: dict[str, str], query: dict[str, list[str]], body: Any) -> Response:  # noqa: N802
        try:
            limit = int((query.get("limit") or ["100"])[0])
            offset = int((query.get("offset") or ["0"])[0])
        except ValueError:
            return _error(400, "query param limit and offset must be integers", "bad paging")
        if limit < 0 or offset < 0:
            return _error(422, "limit and offset must be greater than or equal to 0", "bad paging")
        runs = self.job_runs(params["namespace"], params["job"])
        if not runs:
            return _error(404, f"Job '{params['job']}' not found.", "unknown job")
        return Response(200, {"runs": [r.as_json() for r in runs[offset : offset + limit]]})


def _event_problem(event: Any) -> str | None:
    """Why Marquez would refuse an OpenLineage run event (its required fields), or None."""
    if not isinstance(event, dict):
        return "the body is not an OpenLineage event"
    for name in ("eventTime", "producer", "run", "job"):
        if name not in event:
            return f"{name} must not be null"
    try:
        uuid.UUID(str(event["run"].get("runId")))
    except (AttributeError, ValueError):
        return "run.runId must be a UUID"
    if (
        not isinstance(event["job"], dict)
        or not event["job"].get("namespace")
        or not event["job"].get("name")
    ):
        return "job.namespace and job.name must not be blank"
    if event.get("eventType") not in (None, "START", "RUNNING", "COMPLETE", "ABORT", "FAIL", "OTHER"):
        return f"unknown eventType {event.get('eventType')!r}"
    return None


def _error(status: int, message: str, rejection: str) -> Response:
    return Response(status, {"code": status, "message": message}, rejection=rejection)
