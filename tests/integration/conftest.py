"""A real Airflow 3 stack (api-server, scheduler, dag-processor, triggerer; LocalExecutor) per session.

Started once, bound to 127.0.0.1, with the repository's ``dags/``. The example DAGs are run once
for the whole session (``example_rows``); the tests then read what happened through the REST API
and the files the recovery runs wrote.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from airflow_stack import AirflowStack, local_postgres  # noqa: E402


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("airflow-home")
    # PostgreSQL where one runs on this machine (as in production); SQLite otherwise.
    db_url = os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or local_postgres("faultcat_integration")
    stack = AirflowStack(
        home,
        ROOT / "dags",
        extra_env={"FAULTCAT_EXAMPLE_SECRET": "hunter2-example-secret-0451"},
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
        if key == "AIRFLOW_HOME" or key.startswith(("AIRFLOW_CONN_", "AIRFLOW__FAULTCAT__")):
            monkeypatch.setenv(key, value)
    yield os.environ
