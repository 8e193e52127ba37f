"""A real Airflow 3 stack (api-server, scheduler, dag-processor, triggerer; LocalExecutor) per session.

Started once, bound to 127.0.0.1, with the repository's ``dags/``. The example DAGs are run once
for the whole session (``example_rows``); the tests then read what happened through the REST API
and the files the recovery runs wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from airflow_stack import AirflowStack, local_postgres  # noqa: E402

#: The recovery policy of the test stack: short waits, so that retries and storms settle quickly.
TEST_POLICY = {
    "retry_budget": 1,
    "backoff_base_seconds": 1,
    "backoff_max_seconds": 4,
    "storm_settle_seconds": 5,
    "approval_timeout_seconds": 900,
}
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def github_standin():
    """The GitHub stand-in every escalation of the session goes to."""
    from tests.standins.fixtures import GITHUB_REPOSITORY, GITHUB_TOKEN
    from tests.standins.github_api import GithubApiStandin

    with GithubApiStandin(token=GITHUB_TOKEN, repositories=[GITHUB_REPOSITORY]) as standin:
        yield standin


@pytest.fixture(scope="session")
def slack_standin():
    from tests.standins.fixtures import SLACK_TOKEN
    from tests.standins.slack_api import SlackApiStandin

    with SlackApiStandin(token=SLACK_TOKEN) as standin:
        yield standin


@pytest.fixture(scope="session")
def marquez_standin():
    """The Marquez stand-in the stack's OpenLineage provider sends its events to."""
    from tests.standins.marquez_api import MarquezApiStandin

    with MarquezApiStandin() as standin:
        yield standin


#: Domains of the libvirt test node the shadow-error tests start with: name -> virDomainState code
#: (1 running, 3 paused, 5 shut off).
NODE_DOMAINS = {"it-running": 1, "it-off": 5, "it-paused": 3}
#: The OpenLineage namespace of the test stack.
OL_NAMESPACE = "faultcat_it"
#: The password of the connection the leaky example reads; it must reach no output of faultcat.
KNOWN_SECRET = "Known Seed/Pw+12"


class LibvirtNode:
    """A libvirt test-driver node XML every process of the stack opens as ``test:///<path>``.

    The test driver reads the file on each connection, so rewriting it defines, undefines, starts
    or stops domains for the next scan.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def uri(self) -> str:
        return f"test://{self.path}"

    def write(self, domains: dict[str, int]) -> None:
        parts = ['<?xml version="1.0"?>', "<node>"]
        for index, (name, state) in enumerate(sorted(domains.items())):
            parts.append(
                '  <domain type="test" xmlns:test="http://libvirt.org/schemas/domain/test/1.0">'
                f"<test:runstate>{state}</test:runstate><name>{name}</name>"
                f"<uuid>00000000-0000-4000-8000-{index:012d}</uuid>"
                "<os><type>hvm</type></os><memory>262144</memory><vcpu>1</vcpu></domain>"
            )
        parts.append("</node>")
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("\n".join(parts) + "\n", encoding="utf-8")
        tmp.replace(self.path)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, github_standin, slack_standin, marquez_standin):
    from tests.standins.fixtures import GITHUB_REPOSITORY, GITHUB_TOKEN, SLACK_TOKEN

    home = tmp_path_factory.mktemp("airflow-home")
    node = LibvirtNode(home / "libvirt-node.xml")
    node.write(NODE_DOMAINS)
    postconditions = home / "postconditions.yaml"
    postconditions.write_text(
        "- dag_id: it_shadow_yaml\n"
        "  vms:\n"
        "    - name: '{{ params.vm_name }}'\n"
        "      conn_id: libvirt_it\n"
        "- dag_id: 'it_shadow_(mismatch|teardown|all_done)'\n"
        "  lineage: false\n",
        encoding="utf-8",
    )
    marquez = {
        "conn_type": "marquez",
        "host": "127.0.0.1",
        "port": marquez_standin.port,
        "schema": "http",
        "extra": {"namespace": OL_NAMESPACE},
    }
    transport = {"type": "http", "url": marquez_standin.url, "endpoint": "api/v1/lineage"}
    # The shipped DAGs and the ones these tests fail on purpose, in one DAGs folder.
    dags = home / "dags"
    dags.mkdir()
    for source in [*sorted((ROOT / "dags").glob("*.py")), *sorted((HERE / "dags").glob("*.py"))]:
        shutil.copy(source, dags / source.name)
    # PostgreSQL where one runs on this machine (as in production); SQLite otherwise.
    db_url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or local_postgres("faultcat_integration")
    github = {"conn_type": "github", "host": github_standin.url, "password": GITHUB_TOKEN}
    slack = {"conn_type": "slack", "password": SLACK_TOKEN, "extra": {"base_url": slack_standin.api_url}}
    stack = AirflowStack(
        home,
        dags,
        extra_env={
            "FAULTCAT_EXAMPLE_SECRET": "hunter2-example-secret-0451",
            "AIRFLOW__FAULTCAT__RECOVERY_POLICY": json.dumps(TEST_POLICY),
            "AIRFLOW__FAULTCAT__GITHUB_REPOSITORY": GITHUB_REPOSITORY,
            "AIRFLOW__FAULTCAT__SLACK_CHANNEL": "#alerts",
            "AIRFLOW_CONN_GITHUB_DEFAULT": json.dumps(github),
            "AIRFLOW_CONN_SLACK_API_DEFAULT": json.dumps(slack),
            # A custom recovery handler, registered by entry point (a dist-info on the path).
            "PYTHONPATH": str(HERE / "handlers"),
            # Shadow errors: lineage to the stand-in Marquez, for the Dags that enable it.
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": OL_NAMESPACE,
            "AIRFLOW__OPENLINEAGE__SELECTIVE_ENABLE": "True",
            "AIRFLOW_CONN_MARQUEZ_DEFAULT": json.dumps(marquez),
            "AIRFLOW_CONN_LIBVIRT_IT": json.dumps({"conn_type": "libvirt", "extra": {"uri": node.uri}}),
            "AIRFLOW_CONN_LIBVIRT_DOWN": json.dumps(
                {"conn_type": "libvirt", "extra": {"uri": f"test://{home / 'no-such-node.xml'}"}}
            ),
            # The leaky example reads it and prints its password URL-encoded (a known value).
            "AIRFLOW_CONN_FAULTCAT_EXAMPLE_WAREHOUSE": json.dumps(
                {"conn_type": "postgres", "host": "127.0.0.1", "login": "etl", "password": KNOWN_SECRET}
            ),
            "AIRFLOW__FAULTCAT__SHADOW_POSTCONDITIONS": str(postconditions),
            # Flake status after two runs, healthy again after two clean ones.
            "AIRFLOW__FAULTCAT__FLAKY_MIN_RUNS": "2",
            "AIRFLOW__FAULTCAT__HEALTHY_AFTER_RUNS": "2",
            # Scans run when a test triggers them, over the Dags it names.
            "AIRFLOW__FAULTCAT__SHADOW_SCAN_SCHEDULE": "none",
            # So is the canary: its cycles run when a test says.
            "AIRFLOW__FAULTCAT__CANARY_SCHEDULE": "none",
            # Swept by hand in the tests, so that a sweep does not race the callbacks under test.
            "AIRFLOW__FAULTCAT__SWEEP_SCHEDULE": "none",
        },
        db_url=db_url,
    )
    stack.libvirt_node = node
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def example_rows(stack):
    import demo

    return demo.run_examples(stack)


@pytest.fixture(scope="session")
def api(stack):
    with stack.client() as client:
        yield client


@pytest.fixture
def stack_env(stack, monkeypatch):
    """This process's environment pointed at the stack (connection, spool), for hooks and the CLI."""
    for key, value in stack.env().items():
        if key == "AIRFLOW_HOME" or key.startswith(
            ("AIRFLOW_CONN_", "AIRFLOW__FAULTCAT__", "AIRFLOW__API__")
        ):
            monkeypatch.setenv(key, value)
    yield os.environ
