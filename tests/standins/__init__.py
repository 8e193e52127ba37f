"""Local stand-ins for the services faultcat escalates to (GitHub REST v3, Slack Web API).

Each stand-in is a small threaded HTTP server on 127.0.0.1 (a free port) that keeps its state in
memory, validates every request against the JSON Schemas in ``contracts/`` (trimmed from the
services' published API descriptions, see ``contracts/SOURCES.md``) and rejects what the real API
would reject, with the real API's error shapes. Tests read :attr:`StandinServer.requests` (every
request) and :attr:`StandinServer.rejected` (those answered with an error) to assert on traffic::

    with GithubApiStandin(token="ghp_...") as github:
        conn = {"conn_type": "github", "host": github.url, "password": "ghp_..."}
        ...
        assert github.rejected == []
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jsonschema import Draft202012Validator

__all__ = ["CONTRACTS", "RecordedRequest", "Response", "StandinServer", "contract_errors", "validator"]

CONTRACTS = Path(__file__).parent / "contracts"


@cache
def _contract(name: str) -> dict[str, Any]:
    return json.loads((CONTRACTS / name).read_text())


@cache
def validator(contract: str, definition: str) -> Draft202012Validator:
    """Return a validator for one ``$defs`` entry of a contract file.

    :param contract: the file name in ``contracts/`` (``"github-issues.json"``).
    :param definition: the entry (``"issues-create-request"``).
    """
    document = dict(_contract(contract))
    if definition not in document["$defs"]:
        raise KeyError(f"{contract} has no definition {definition!r}")
    document["$ref"] = f"#/$defs/{definition}"
    return Draft202012Validator(document, format_checker=Draft202012Validator.FORMAT_CHECKER)


def contract_errors(contract: str, definition: str, instance: Any) -> list[str]:
    """Return what in ``instance`` breaks the contract, one message per error (empty: valid).

    :param contract: the file name in ``contracts/``.
    :param definition: the ``$defs`` entry.
    :param instance: the parsed JSON to check.
    """
    errors = validator(contract, definition).iter_errors(instance)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


@dataclass
class Response:
    """What a stand-in answers.

    :param status: the HTTP status.
    :param body: JSON-serialisable body (None: no body).
    :param headers: extra response headers.
    :param rejection: why the request was rejected; None for an accepted request.
    """

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    rejection: str | None = None


@dataclass
class RecordedRequest:
    """One request a stand-in received, with its answer.

    :param method: the HTTP method.
    :param path: the URL path.
    :param query: the query parameters (each a list of values).
    :param headers: the request headers (names lower-cased).
    :param body: the parsed body (JSON or form), None when empty.
    :param status: the status answered.
    :param response: the body answered.
    :param rejection: why it was rejected, None when accepted.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    status: int
    response: Any
    rejection: str | None


class StandinServer:
    """Base of the stand-ins: serve :meth:`handle` on 127.0.0.1 in a background thread.

    Use it as a context manager or call :meth:`start` and :meth:`stop`.
    """

    def __init__(self) -> None:
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self) -> StandinServer:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread; return self."""
        if self._httpd is not None:
            raise RuntimeError("stand-in already started")
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        # A short poll interval: stop() waits for it, once per test.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port served on."""
        if self._httpd is None:
            raise RuntimeError("stand-in not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def rejected(self) -> list[RecordedRequest]:
        """The requests answered with an error."""
        with self.lock:
            return [r for r in self.requests if r.rejection is not None]

    # ---- to implement ------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw: bytes
    ) -> tuple[Any, Response]:
        """Answer one request.

        :param method: the HTTP method.
        :param path: the URL path.
        :param query: the query parameters.
        :param headers: the request headers, names lower-cased.
        :param raw: the request body.
        :return: the parsed body (for the record) and the response.
        """
        raise NotImplementedError


def _handler_for(standin: StandinServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body are separate writes: without this, delayed ACKs stall keep-alive clients.
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            query = parse_qs(parts.query, keep_blank_values=True)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                body, response = standin.handle(self.command, parts.path, query, headers, raw)
            except Exception as err:
                # A stand-in bug must fail the test at once: 4xx, since clients retry a 5xx with backoff.
                body, response = None, Response(400, {"message": f"stand-in bug: {err!r}"}, rejection="bug")
            payload = b"" if response.body is None else json.dumps(response.body).encode("utf-8")
            with standin.lock:
                standin.requests.append(
                    RecordedRequest(
                        self.command,
                        parts.path,
                        query,
                        headers,
                        body,
                        response.status,
                        response.body,
                        response.rejection,
                    )
                )
            self.send_response(response.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

    return Handler
