"""Tests for :func:`airflow_faultcat.notifications.escalation.notify_slack` against the Slack stand-in.

Real HTTP over loopback: the slack provider's ``SlackNotifier`` and slack_sdk talk to
``tests.standins.slack_api``.
"""

from __future__ import annotations

import json

import pytest

from airflow_faultcat.core.escalation import EscalationSummary, dedup_key, render_slack_text
from airflow_faultcat.exceptions import EscalationError
from airflow_faultcat.notifications.escalation import notify_slack
from tests.standins.fixtures import SLACK_TOKEN

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def summary(**overrides) -> EscalationSummary:
    values = dict(
        dedup_key=dedup_key("etl_daily", "CREDENTIAL", "aws.invalid_access_key"),
        dag_id="etl_daily",
        task_id="load_s3",
        run_id="r1",
        root_cause="CREDENTIAL",
        confidence=0.93,
        title="AWS rejected the access key",
        top_evidence=f"InvalidAccessKeyId: {AWS_KEY}",
        decision="not retried: policy CREDENTIAL retry=never",
        count=3,
        ti_url="http://airflow.example/dags/etl_daily/runs/r1/tasks/load_s3",
    )
    values.update(overrides)
    return EscalationSummary(**values)


def test_posts_the_rendered_text(slack_conn_id, slack_api):
    s = summary()
    result = notify_slack(slack_conn_id=slack_conn_id, channel="#alerts", summary=s)

    assert result == {"channel": "#alerts"}
    (message,) = slack_api.messages
    assert message["channel"] == "C0FAULTCAT1"
    assert message["text"] == render_slack_text(s)
    assert message["text"].startswith(":rotating_light: faultcat: CREDENTIAL in etl_daily.load_s3 (0.93)\n")
    assert (message["unfurl_links"], message["unfurl_media"]) == (False, False)
    (request,) = slack_api.requests
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {SLACK_TOKEN}"
    assert request.headers["content-type"].startswith("application/json")
    assert slack_api.rejected == []


def test_secrets_and_templates_reach_slack_as_text(slack_conn_id, slack_api):
    s = summary(title="Bad conf {{ conn.aws_default.password }}", decision=f"key {AWS_KEY}")
    notify_slack(slack_conn_id=slack_conn_id, channel="C0FAULTCAT1", summary=s)
    text = slack_api.messages[0]["text"]
    assert AWS_KEY not in text
    assert "{{ conn.aws_default.password }}" in text, "not rendered as a Jinja template"


def test_unknown_channel_raises_with_slack_error_code(slack_conn_id, slack_api):
    with pytest.raises(EscalationError) as caught:
        notify_slack(slack_conn_id=slack_conn_id, channel="#nowhere", summary=summary())
    assert caught.value.detail == "channel_not_found"
    assert caught.value.status_code == 200, "Slack answers errors with HTTP 200 and ok=false"
    assert "#nowhere" in str(caught.value)
    assert slack_api.messages == []


def test_bad_token_raises_without_the_token(slack_api, monkeypatch):
    wrong = "xoxb-1111111111-2222222222-WrongTokenForFaultcat"
    conn = {"conn_type": "slack", "password": wrong, "extra": {"base_url": slack_api.api_url}}
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_SLACK_WRONG", json.dumps(conn))
    with pytest.raises(EscalationError) as caught:
        notify_slack(slack_conn_id="faultcat_slack_wrong", channel="#alerts", summary=summary())
    assert caught.value.detail == "invalid_auth"
    assert wrong not in str(caught.value) and caught.value.__cause__ is None


def test_base_url_must_include_the_api_path(slack_api, monkeypatch):
    # slack_sdk appends "/" and joins the method name: a bare host posts to "/chat.postMessage".
    conn = {"conn_type": "slack", "password": SLACK_TOKEN, "extra": {"base_url": slack_api.url}}
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_SLACK_HOST_ONLY", json.dumps(conn))
    with pytest.raises(EscalationError) as caught:
        notify_slack(slack_conn_id="faultcat_slack_host_only", channel="#alerts", summary=summary())
    assert caught.value.detail == "unknown_method"
    assert [r.path for r in slack_api.requests] == ["/chat.postMessage"]

    # Without the trailing slash it works: slack_sdk adds it.
    conn["extra"]["base_url"] = slack_api.api_url.rstrip("/")
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_SLACK_HOST_ONLY", json.dumps(conn))
    notify_slack(slack_conn_id="faultcat_slack_host_only", channel="#alerts", summary=summary())
    assert slack_api.requests[-1].path == "/api/chat.postMessage" and len(slack_api.messages) == 1


def test_unreachable_slack_raises_escalation_error(monkeypatch):
    conn = {"conn_type": "slack", "password": SLACK_TOKEN, "extra": {"base_url": "http://127.0.0.1:9/api/"}}
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_SLACK_DOWN", json.dumps(conn))
    with pytest.raises(EscalationError) as caught:
        notify_slack(slack_conn_id="faultcat_slack_down", channel="#alerts", summary=summary())
    assert caught.value.status_code == 0 and SLACK_TOKEN not in str(caught.value)
