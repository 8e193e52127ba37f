"""pytest fixtures that start the stand-ins and point Airflow connections at them.

Import them into a ``conftest.py`` (``from tests.standins.fixtures import github_api, ...``). The
connections are ``AIRFLOW_CONN_<ID>`` environment variables in JSON form, set with ``monkeypatch``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.standins.github_api import GithubApiStandin
from tests.standins.slack_api import SlackApiStandin

__all__ = [
    "GITHUB_CONN_ID",
    "GITHUB_REPOSITORY",
    "GITHUB_TOKEN",
    "SLACK_CONN_ID",
    "SLACK_TOKEN",
    "github_api",
    "github_conn_id",
    "slack_api",
    "slack_conn_id",
]

# Token-shaped on purpose: error messages and issue bodies must never show them.
GITHUB_TOKEN = "ghp_Standin0Token1For2Faultcat3Tests4xyZ"
SLACK_TOKEN = "xoxb-1234567890-0987654321-StandinTokenForFaultcat"
GITHUB_CONN_ID = "faultcat_github_standin"
SLACK_CONN_ID = "faultcat_slack_standin"
GITHUB_REPOSITORY = "octo-org/pipelines"


@pytest.fixture
def github_api() -> Iterator[GithubApiStandin]:
    """A running GitHub stand-in with the repository :data:`GITHUB_REPOSITORY`."""
    with GithubApiStandin(token=GITHUB_TOKEN, repositories=[GITHUB_REPOSITORY]) as standin:
        yield standin


@pytest.fixture
def github_conn_id(github_api: GithubApiStandin, monkeypatch: pytest.MonkeyPatch) -> str:
    """The id of a ``github`` connection to the stand-in."""
    conn = {"conn_type": "github", "host": github_api.url, "password": GITHUB_TOKEN}
    monkeypatch.setenv(f"AIRFLOW_CONN_{GITHUB_CONN_ID.upper()}", json.dumps(conn))
    return GITHUB_CONN_ID


@pytest.fixture
def slack_api() -> Iterator[SlackApiStandin]:
    """A running Slack stand-in with the channel ``#alerts`` (``C0FAULTCAT1``)."""
    with SlackApiStandin(token=SLACK_TOKEN) as standin:
        yield standin


@pytest.fixture
def slack_conn_id(slack_api: SlackApiStandin, monkeypatch: pytest.MonkeyPatch) -> str:
    """The id of a ``slack`` connection to the stand-in (its API URL in the ``base_url`` extra)."""
    conn = {"conn_type": "slack", "password": SLACK_TOKEN, "extra": {"base_url": slack_api.api_url}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{SLACK_CONN_ID.upper()}", json.dumps(conn))
    return SLACK_CONN_ID
