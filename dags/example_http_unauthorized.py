"""
### Example: an HTTP API that rejects the task's credentials

**Purpose.** Show how faultcat diagnoses a call that an API refuses with ``401 Unauthorized``.

**The real failure.** The task starts a tiny HTTP server on ``127.0.0.1:0`` (a thread of its own)
that answers every request with ``401 Unauthorized`` and a ``WWW-Authenticate`` header, calls it
with httpx, and ``raise_for_status()`` raises ``httpx.HTTPStatusError: Client error '401
Unauthorized' for url 'http://127.0.0.1:<port>/api/v1/orders'``. The server is shut down in a
``finally``.

**Expected root cause:** ``CREDENTIAL``.

**Prerequisites.** ``httpx`` (installed with Airflow). The failure is handed to the
``faultcat_recovery`` DAG by ``RecoveryDagNotifier``, or spooled when no API server is reachable.
"""

from __future__ import annotations

import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "CREDENTIAL"


class UnauthorizedHandler(BaseHTTPRequestHandler):
    """Answers every GET with 401 and a bearer-token challenge, like an API with an expired token."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server naming
        body = b'{"detail": "Invalid or expired token"}'
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Bearer realm="orders-api", error="invalid_token"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the http.server signature
        print("orders-api: " + format % args)


@dag(
    dag_id="example_http_unauthorized",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example"],
    default_args={"retries": 0, "on_failure_callback": RecoveryDagNotifier()},
    doc_md=__doc__,
)
def example_http_unauthorized():
    @task
    def fetch_orders() -> dict:
        """Fetch the orders from an API that rejects the task's token."""
        import httpx

        server = ThreadingHTTPServer(("127.0.0.1", 0), UnauthorizedHandler)
        thread = threading.Thread(target=server.serve_forever, name="orders-api", daemon=True)
        thread.start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/api/v1/orders"
            # trust_env=False: a loopback call must not go through an HTTP(S)_PROXY of the worker.
            with httpx.Client(timeout=5, trust_env=False) as client:
                response = client.get(url, headers={"Authorization": "Bearer expired-example-token"})
                response.raise_for_status()
                return response.json()
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

    fetch_orders()


example_http_unauthorized()
