"""
### Example: an HTTP API that rejects the task's credentials

**Purpose.** Show how faultcat diagnoses a call that an API refuses for its credentials.

**The real failure.** The task lists DAGs through this Airflow's own REST API (``[api] base_url``,
``GET /api/v2/dags``) with a bearer token that is not valid, as a task holding an expired token
would. The API server refuses it (``403 Forbidden``, "Invalid JWT token") and
``raise_for_status()`` raises ``httpx.HTTPStatusError: Client error '403 Forbidden' for url
'http://<api server>/api/v2/dags'``. The server stays up, so faultcat's explore step can ask it
again, without credentials, and see that it still wants them (``401``).

**Expected root cause:** ``CREDENTIAL``.

**Prerequisites.** ``httpx`` (installed with Airflow) and a reachable API server at ``[api]
base_url``. The failure is handed to the ``faultcat_recovery`` DAG by ``RecoveryDagNotifier``, or
spooled when no API server is reachable.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "CREDENTIAL"


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
    def list_dags() -> dict:
        """List the DAGs through the REST API with a token the API server does not accept."""
        import httpx
        from airflow.sdk.configuration import conf

        url = conf.get("api", "base_url").rstrip("/") + "/api/v2/dags"
        # trust_env=False: a loopback call must not go through an HTTP(S)_PROXY of the worker.
        with httpx.Client(timeout=5, trust_env=False) as client:
            response = client.get(url, headers={"Authorization": "Bearer expired-example-token"})
            response.raise_for_status()
            return response.json()

    list_dags()


example_http_unauthorized()
