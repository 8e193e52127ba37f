"""
### Example: a failing task whose log leaks secrets

**Purpose.** Show that faultcat keeps secrets out of what it produces: the task logs secrets in the
forms people really paste (a token, a connection URI, ``mysql -p``, ``sshpass -p``, ``redis-cli
-a``, a cookie, SQL, ``.pgpass`` and ``.netrc`` lines, Docker ``auth``, a YAML block scalar, JSON
escaped twice, a signed URL, a Sentry DSN, the URL-encoded password of the connection it used)
and fails with one in its exception message. Nothing faultcat writes may contain them: not the
recovery DagRun's conf, XCom, the evidence bundle, the note, the GitHub issue or the Slack message
(the ``faultcat:retry=never`` tag makes the failure escalate at once).

**The real failure.** The task prints those lines, then connects to ``127.0.0.1:1``, where nothing
listens, and raises ``ConnectionRefusedError: [Errno 111] Connection refused`` with the DSN it
used in the message.

**Expected root cause:** ``NETWORK``.

**Prerequisites.** Nothing listening on ``127.0.0.1:1`` (the tcpmux port, unused everywhere).
The secret is the environment variable ``FAULTCAT_EXAMPLE_SECRET`` (default
``hunter2-example-secret-0451``). The failure is handed to the ``faultcat_recovery`` DAG by
``RecoveryDagNotifier``, or spooled when no API server is reachable.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from datetime import datetime
from urllib.parse import quote

from airflow.sdk import dag, task

from airflow_faultcat.notifications.recovery_dag import RecoveryDagNotifier

#: The root-cause category faultcat should give this DAG's failure.
EXPECTED_ROOT_CAUSE = "NETWORK"

#: The environment variable holding the secret, and its value when unset.
SECRET_ENV = "FAULTCAT_EXAMPLE_SECRET"
DEFAULT_SECRET = "hunter2-example-secret-0451"

#: Where the (absent) warehouse database listens.
WAREHOUSE_HOST = "127.0.0.1"
WAREHOUSE_PORT = 1

#: A connection the task reads when it is defined (its password is printed URL-encoded only).
WAREHOUSE_CONN_ID = "faultcat_example_warehouse"

#: Fake secrets, one per form the task logs (the test checks none leaves faultcat).
SEEDED = {
    "mysql": "My5ql-Seed-Pw-01",
    "sshpass": "Ssh-Seed-Pw-02",
    "redis": "Redis-Seed-Pw-03",
    "cookie": "cookie0seed0a1b2c3d4e5f",
    "sql": "Sql-Seed-Pw-04",
    "url": "Url#Seed/Pw?05",
    "pgpass": "Pgpass-Seed-Pw-06",
    "netrc": "Netrc-Seed-Pw-07",
    "docker": "Docker-Seed-Pw-08",
    "yaml_block": "Block-Seed-Pw-09",
    "json_twice": "Dbl-Seed-Pw-10",
    "signature": "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
    "sentry": "5eed5eed5eed5eed5eed5eed5eed5eed",
    "exception": "Exc-Seed-Pw-11",
}


def seeded_lines() -> list[str]:
    """The careless lines, one per form of :data:`SEEDED`."""
    s = SEEDED
    docker_auth = base64.b64encode(f"ci:{s['docker']}".encode()).decode()
    return [
        f"+ mysql -h {WAREHOUSE_HOST} -u etl -p{s['mysql']} warehouse",
        f"+ sshpass -p '{s['sshpass']}' ssh etl@{WAREHOUSE_HOST}",
        f"+ redis-cli -h {WAREHOUSE_HOST} -a {s['redis']} ping",
        f"> Cookie: sessionid={s['cookie']}; lang=en",
        f"executing: CREATE USER etl IDENTIFIED BY '{s['sql']}';",
        f"Connecting to postgresql://etl:{s['url']}@{WAREHOUSE_HOST}:{WAREHOUSE_PORT}/warehouse",
        f"~/.pgpass: {WAREHOUSE_HOST}:5432:warehouse:etl:{s['pgpass']}",
        f"machine {WAREHOUSE_HOST} login etl password {s['netrc']}",
        json.dumps({"auths": {"registry.example.com": {"auth": docker_auth}}}),
        "rendered config:\npassword: |\n  " + s["yaml_block"] + "\nuser: etl",
        json.dumps(json.dumps({"password": s["json_twice"]})),
        "GET https://bucket.s3.amazonaws.com/export.csv?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Date=20250101T000000Z&X-Amz-Signature={s['signature']}",
        f"sentry dsn: https://{s['sentry']}@o12345.ingest.sentry.io/678",
    ]


@dag(
    dag_id="example_leaky_secrets",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["faultcat", "example", "faultcat:retry=never"],
    default_args={"retries": 0, "on_failure_callback": RecoveryDagNotifier()},
    doc_md=__doc__,
)
def example_leaky_secrets():
    @task
    def sync_warehouse() -> None:
        """Connect to the warehouse, carelessly logging the credentials first."""
        secret = os.environ.get(SECRET_ENV, DEFAULT_SECRET)
        # The careless lines faultcat must scrub:
        print(f"Using token {SECRET_ENV}={secret}")
        print(f"Connecting to postgresql://etl:{secret}@{WAREHOUSE_HOST}:{WAREHOUSE_PORT}/warehouse")
        for line in seeded_lines():
            print(line)
        try:
            from airflow.sdk import BaseHook

            conn = BaseHook.get_connection(WAREHOUSE_CONN_ID)
            # Airflow masks the password itself in this log, not its URL-encoded form.
            print(f"Using conn_id={WAREHOUSE_CONN_ID}: dsn password {quote(conn.password or '', safe='')}")
        except Exception as exc:  # the connection is optional: the demo stack has none
            print(f"no connection {WAREHOUSE_CONN_ID}: {type(exc).__name__}")
        try:
            socket.create_connection((WAREHOUSE_HOST, WAREHOUSE_PORT), timeout=5).close()
        except ConnectionRefusedError as exc:
            dsn = f"host={WAREHOUSE_HOST} port={WAREHOUSE_PORT} user=etl password={SEEDED['exception']}"
            raise ConnectionRefusedError(exc.errno, f"{exc.strerror} (dsn: {dsn})") from exc

    sync_warehouse()


example_leaky_secrets()
