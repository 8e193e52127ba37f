"""Keep the stand-ins honest: they accept what GitHub and Slack document and answer in their shapes.

Requests are sent raw (``requests``) to reach the cases a client library would never send; the
responses are validated against the response schemas in ``tests/standins/contracts``.
"""

from __future__ import annotations

import json
import re

import pytest
import requests
from jsonschema import Draft202012Validator

from airflow_faultcat.core.escalation import EscalationSummary, dedup_key, render_resolved_comment
from airflow_faultcat.hooks.github_issues import GithubIssuesHook
from tests.standins import CONTRACTS, contract_errors
from tests.standins.fixtures import GITHUB_REPOSITORY as REPO
from tests.standins.fixtures import GITHUB_TOKEN, SLACK_TOKEN

GH = "github-issues.json"
SLACK = "slack-chat-postMessage.json"
AUTH = {"Authorization": f"token {GITHUB_TOKEN}"}


def gh_operation(method: str, path: str) -> dict:
    """The contract's entry for a request, by matching the path templates of ``x-operations``."""
    for name, operation in json.loads((CONTRACTS / GH).read_text())["x-operations"].items():
        verb, template = name.split(" ", 1)
        pattern = re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(template))
        if verb == method and re.fullmatch(pattern, path):
            return operation
    raise AssertionError(f"{method} {path} is not in the contract")


def assert_valid(contract: str, definition: str, instance) -> None:
    if definition.endswith("[]"):
        assert isinstance(instance, list)
        for item in instance:
            assert_valid(contract, definition[:-2], item)
        return
    assert contract_errors(contract, definition, instance) == []


@pytest.mark.parametrize("name", [GH, SLACK])
def test_contracts_are_json_schemas_with_named_sources(name):
    contract = json.loads((CONTRACTS / name).read_text())
    Draft202012Validator.check_schema(contract)
    sources = (CONTRACTS / "SOURCES.md").read_text()
    assert f"`{name}`" in sources
    source_path = {
        GH: "descriptions/api.github.com/api.github.com.2022-11-28.yaml",
        SLACK: "web-api/slack_web_openapi_v2_without_examples.json",
    }[name]
    assert source_path in sources


# ---- GitHub: rejections --------------------------------------------------------------------


def test_github_requires_a_token(github_api):
    missing = requests.get(f"{github_api.url}/repos/{REPO}/issues", timeout=5)
    wrong = requests.get(
        f"{github_api.url}/repos/{REPO}/issues", headers={"Authorization": "Bearer nope"}, timeout=5
    )
    assert (missing.status_code, missing.json()["message"]) == (401, "Requires authentication")
    assert (wrong.status_code, wrong.json()["message"]) == (401, "Bad credentials")
    for response in (missing, wrong):
        assert_valid(GH, "basic-error", response.json())
        assert response.json()["documentation_url"].startswith("https://docs.github.com/")
    assert len(github_api.rejected) == 2


def test_github_accepts_token_and_bearer_schemes(github_api):
    for scheme in ("token", "Bearer"):
        response = requests.get(
            f"{github_api.url}/repos/{REPO}", headers={"Authorization": f"{scheme} {GITHUB_TOKEN}"}, timeout=5
        )
        assert response.status_code == 200
        assert_valid(GH, "repository", response.json())


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"body": "no title"}, {"resource": "Issue", "code": "missing_field", "field": "title"}),
        ({"title": ""}, {"resource": "Issue", "code": "missing_field", "field": "title"}),
        ({"title": "t" * 257}, {"resource": "Issue", "code": "custom", "field": "title"}),
        ({"title": "t", "body": "b" * 65537}, {"resource": "Issue", "code": "custom", "field": "body"}),
        ({"title": "t", "labels": "faultcat"}, {"resource": "Issue", "code": "invalid", "field": "labels"}),
        ({"title": "t", "state": "open"}, {"resource": "Issue", "code": "invalid"}),
    ],
    ids=[
        "missing-title",
        "empty-title",
        "title-too-long",
        "body-too-long",
        "labels-not-array",
        "undocumented",
    ],
)
def test_github_rejects_invalid_issue_bodies(github_api, payload, error):
    response = requests.post(f"{github_api.url}/repos/{REPO}/issues", json=payload, headers=AUTH, timeout=5)
    assert response.status_code == 422
    data = response.json()
    assert data["message"] == "Validation Failed"
    assert error.items() <= data["errors"][0].items()
    assert_valid(GH, "validation-error", data)
    assert github_api.issues(REPO) == []


def test_github_body_length_message_matches_github(github_api):
    response = requests.post(
        f"{github_api.url}/repos/{REPO}/issues",
        json={"title": "t", "body": "b" * 65537},
        headers=AUTH,
        timeout=5,
    )
    assert response.json()["errors"][0]["message"] == "body is too long (maximum is 65536 characters)"
    ok = requests.post(
        f"{github_api.url}/repos/{REPO}/issues",
        json={"title": "t", "body": "b" * 65536},
        headers=AUTH,
        timeout=5,
    )
    assert ok.status_code == 201


@pytest.mark.parametrize(
    "payload",
    [
        {"state": "reopened"},
        {"state": "merged"},
        {"state": "closed", "state_reason": "fixed"},
        {"locked": True},
    ],
)
def test_github_rejects_undocumented_issue_updates(github_api, payload):
    issue = github_api.seed_issue(REPO, title="t")
    url = f"{github_api.url}/repos/{REPO}/issues/{issue.number}"
    response = requests.patch(url, json=payload, headers=AUTH, timeout=5)
    assert response.status_code == 422
    assert_valid(GH, "validation-error", response.json())
    assert issue.state == "open"


@pytest.mark.parametrize(
    "query", ["state=bogus", "sort=random", "direction=up", "per_page=101", "page=0", "q=x"]
)
def test_github_rejects_undocumented_list_queries(github_api, query):
    response = requests.get(f"{github_api.url}/repos/{REPO}/issues?{query}", headers=AUTH, timeout=5)
    assert response.status_code == 422
    assert_valid(GH, "validation-error", response.json())


def test_github_rejects_bad_json_missing_comment_body_and_unknown_things(github_api):
    issue = github_api.seed_issue(REPO, title="t")
    base = f"{github_api.url}/repos/{REPO}"
    bad_json = requests.post(
        f"{base}/issues", data=b"{not json", headers={**AUTH, "Content-Type": "application/json"}, timeout=5
    )
    no_body = requests.post(f"{base}/issues/{issue.number}/comments", json={}, headers=AUTH, timeout=5)
    no_repo = requests.get(f"{github_api.url}/repos/octo-org/missing/issues", headers=AUTH, timeout=5)
    no_issue = requests.get(f"{base}/issues/999", headers=AUTH, timeout=5)
    no_route = requests.get(f"{base}/pulls", headers=AUTH, timeout=5)

    assert (bad_json.status_code, bad_json.json()["message"]) == (400, "Problems parsing JSON")
    assert no_body.status_code == 422
    assert no_body.json()["errors"][0] == {
        "resource": "IssueComment",
        "code": "missing_field",
        "field": "body",
    }
    for response in (no_repo, no_issue, no_route):
        assert (response.status_code, response.json()["message"]) == (404, "Not Found")
        assert_valid(GH, "basic-error", response.json())
    assert len(github_api.rejected) == 5


# ---- GitHub: responses ---------------------------------------------------------------------


def test_github_responses_validate_and_follow_issue_semantics(github_api):
    base = f"{github_api.url}/repos/{REPO}/issues"
    created = requests.post(
        base, json={"title": "t", "body": "b", "labels": ["faultcat", {"name": "x"}]}, headers=AUTH, timeout=5
    )
    assert created.status_code == 201 and created.headers["Location"] == created.json()["url"]
    number = created.json()["number"]
    closed = requests.patch(f"{base}/{number}", json={"state": "closed"}, headers=AUTH, timeout=5).json()
    assert (closed["state"], closed["state_reason"]) == ("closed", "completed") and closed["closed_at"]
    reopened = requests.patch(f"{base}/{number}", json={"state": "open"}, headers=AUTH, timeout=5).json()
    assert (reopened["state"], reopened["state_reason"], reopened["closed_at"]) == ("open", "reopened", None)
    comment = requests.post(f"{base}/{number}/comments", json={"body": "c"}, headers=AUTH, timeout=5)
    assert comment.status_code == 201
    requests.get(f"{base}/{number}/comments", headers=AUTH, timeout=5)
    requests.get(f"{base}/{number}", headers=AUTH, timeout=5)
    requests.get(f"{base}?state=all&labels=faultcat,x", headers=AUTH, timeout=5)
    requests.get(f"{github_api.url}/repos/{REPO}", headers=AUTH, timeout=5)
    requests.get(f"{github_api.url}/user", headers=AUTH, timeout=5)

    assert github_api.rejected == []
    for request in github_api.requests:
        assert_valid(GH, gh_operation(request.method, request.path)["response"], request.response)
    issue = github_api.requests[-3].response
    assert [label["name"] for label in issue[0]["labels"]] == ["faultcat", "x"]
    assert "pull_request" not in issue[0]


def test_github_link_header_pagination(github_api):
    for i in range(7):
        github_api.seed_issue(REPO, title=f"i{i}")
    url, seen, pages = f"{github_api.url}/repos/{REPO}/issues?per_page=3&sort=created&direction=asc", [], 0
    while url:
        response = requests.get(url, headers=AUTH, timeout=5)
        seen += [issue["number"] for issue in response.json()]
        pages += 1
        url = response.links.get("next", {}).get("url")
        if pages == 1:
            assert response.links["last"]["url"].endswith("page=3")
    assert (seen, pages) == (list(range(1, 8)), 3)
    single = requests.get(f"{github_api.url}/repos/{REPO}/issues", headers=AUTH, timeout=5)
    assert "Link" not in single.headers


def test_every_call_of_the_hook_is_in_the_contract(github_conn_id, github_api):
    key = dedup_key("d", "TIMEOUT", None)
    s = EscalationSummary(
        dedup_key=key,
        dag_id="d",
        task_id="t",
        run_id="r",
        root_cause="TIMEOUT",
        confidence=0.5,
        title="timed out",
        decision="retried",
        ti_url="http://af/ti",
    )
    hook = GithubIssuesHook(github_conn_id)
    hook.escalate(REPO, s)
    hook.escalate(REPO, s)
    hook.update_summary(REPO, 1, s)
    hook.resolve(REPO, key, render_resolved_comment("d", "t", "r2"))
    hook.escalate(REPO, s)
    hook.test_connection()

    assert github_api.rejected == []
    operations = {gh_operation(r.method, r.path)["operationId"] for r in github_api.requests}
    assert operations == {
        "issues/list-for-repo",
        "issues/create",
        "issues/create-comment",
        "issues/update",
        "users/get-authenticated",
    }
    for request in github_api.requests:
        assert_valid(GH, gh_operation(request.method, request.path)["response"], request.response)


# ---- Slack ---------------------------------------------------------------------------------


def post_message(slack_api, payload=None, *, token=SLACK_TOKEN, form=False):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{slack_api.api_url}chat.postMessage"
    if form:
        return requests.post(url, data=payload, headers=headers, timeout=5)
    return requests.post(url, json=payload, headers=headers, timeout=5)


@pytest.mark.parametrize(
    ("payload", "token", "error"),
    [
        ({"channel": "#alerts", "text": "hi"}, None, "not_authed"),
        ({"channel": "#alerts", "text": "hi"}, "xoxb-wrong", "invalid_auth"),
        ({"text": "hi"}, SLACK_TOKEN, "channel_not_found"),
        ({"channel": "#nowhere", "text": "hi"}, SLACK_TOKEN, "channel_not_found"),
        ({"channel": "#alerts"}, SLACK_TOKEN, "no_text"),
        ({"channel": "#alerts", "text": " ", "blocks": "[]"}, SLACK_TOKEN, "no_text"),
        ({"channel": "#alerts", "text": "x" * 40001}, SLACK_TOKEN, "msg_too_long"),
        ({"channel": "#alerts", "text": "hi", "colour": "red"}, SLACK_TOKEN, "invalid_arguments"),
        ({"channel": "#alerts", "text": 42}, SLACK_TOKEN, "invalid_arguments"),
    ],
    ids=[
        "no-auth",
        "bad-token",
        "no-channel",
        "unknown-channel",
        "no-text",
        "empty-blocks",
        "too-long",
        "undocumented-arg",
        "text-not-string",
    ],
)
def test_slack_rejects_like_slack(slack_api, payload, token, error):
    response = post_message(slack_api, payload, token=token)
    assert response.status_code == 200, "Slack answers errors with HTTP 200"
    assert response.json() == {"ok": False, "error": error}
    assert_valid(SLACK, "chat.postMessage-error", response.json())
    assert slack_api.messages == [] and len(slack_api.rejected) == 1


def test_slack_token_in_a_json_body_does_not_authenticate(slack_api):
    response = post_message(slack_api, {"channel": "#alerts", "text": "hi", "token": SLACK_TOKEN}, token=None)
    assert response.json() == {"ok": False, "error": "not_authed"}


def test_slack_accepts_form_and_json_and_answers_the_documented_shape(slack_api):
    form = post_message(
        slack_api,
        {"channel": "C0FAULTCAT1", "text": "a", "token": SLACK_TOKEN, "unfurl_links": "false"},
        token=None,
        form=True,
    )
    as_json = post_message(
        slack_api, {"channel": "#alerts", "text": "b", "blocks": "[]", "attachments": "[]"}
    )
    for response in (form, as_json):
        assert response.status_code == 200
        assert_valid(SLACK, "chat.postMessage-success", response.json())
        assert response.json()["channel"] == "C0FAULTCAT1"
    assert [m["text"] for m in slack_api.messages] == ["a", "b"]
    assert slack_api.messages[0]["unfurl_links"] is False and "token" not in slack_api.messages[0]
    assert form.json()["ts"] != as_json.json()["ts"]


def test_slack_auth_test_serves_the_provider_hook(slack_conn_id, slack_api):
    from airflow.providers.slack.hooks.slack import SlackHook

    ok, message = SlackHook(slack_conn_id=slack_conn_id).test_connection()
    assert ok, message
    assert_valid(SLACK, "auth.test-success", json.loads(message))
    bad = requests.post(
        f"{slack_api.api_url}auth.test", headers={"Authorization": "Bearer xoxb-no"}, timeout=5
    )
    assert_valid(SLACK, "auth.test-error", bad.json())


def test_slack_unknown_method_is_not_served(slack_api):
    response = requests.post(f"{slack_api.api_url}chat.update", json={}, timeout=5)
    assert (response.status_code, response.json()["error"]) == (404, "unknown_method")
