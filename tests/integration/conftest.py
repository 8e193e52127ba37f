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
def stack(tmp_path_factory: pytest.TempPathFactory, github_standin, slack_standin):
    from tests.standins.fixtures import GITHUB_REPOSITORY, GITHUB_TOKEN, SLACK_TOKEN

    home = tmp_path_factory.mktemp("airflow-home")
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
        },
        db_url=db_url,
    )
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
