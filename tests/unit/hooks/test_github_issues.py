"""Tests for :class:`airflow_faultcat.hooks.github_issues.GithubIssuesHook` against the GitHub stand-in.

Real HTTP over loopback: the github provider's hook and PyGithub talk to ``tests.standins.github_api``.
"""

from __future__ import annotations

import json

import pytest

from airflow_faultcat.core.escalation import (
    EscalationSummary,
    dedup_key,
    marker,
    render_issue,
    render_resolved_comment,
)
from airflow_faultcat.exceptions import EscalationError
from airflow_faultcat.hooks.github_issues import GithubIssuesHook
from tests.standins.fixtures import GITHUB_REPOSITORY as REPO
from tests.standins.fixtures import GITHUB_TOKEN

KEY = dedup_key("etl_daily", "CREDENTIAL", "aws.invalid_access_key")


def summary(run_id: str = "r1", **overrides) -> EscalationSummary:
    values = dict(
        dedup_key=KEY,
        dag_id="etl_daily",
        task_id="load_s3",
        run_id=run_id,
        try_number=1,
        root_cause="CREDENTIAL",
        confidence=0.9,
        pattern_id="aws.invalid_access_key",
        title="AWS rejected the access key",
        top_evidence="InvalidAccessKeyId: AKIAIOSFODNN7EXAMPLE",
        evidence_location="task log line 7",
        decision="not retried: policy CREDENTIAL retry=never",
        task_instances=[f"{run_id}/load_s3/-1"],
        ti_url=f"http://airflow.example/dags/etl_daily/runs/{run_id}/tasks/load_s3",
    )
    values.update(overrides)
    return EscalationSummary(**values)


@pytest.fixture
def hook(github_conn_id: str) -> GithubIssuesHook:
    return GithubIssuesHook(github_conn_id)


def writes(github_api) -> list[tuple[str, str, object]]:
    return [(r.method, r.path, r.body) for r in github_api.requests if r.method != "GET"]


def test_escalate_opens_a_labelled_issue_with_the_marker(hook, github_api):
    s = summary()
    result = hook.escalate(REPO, s)

    (issue,) = github_api.issues(REPO)
    assert result == {"number": issue.number, "url": f"{github_api.url}/{REPO}/issues/1", "action": "opened"}
    assert (issue.title, issue.body) == render_issue(s)
    assert issue.labels == ["faultcat"] and issue.state == "open"
    assert issue.body.endswith(marker(KEY))
    assert "AKIAIOSFODNN7EXAMPLE" not in issue.body
    assert github_api.rejected == []


def test_lookup_lists_labelled_issues_not_the_search_api(hook, github_api):
    hook.escalate(REPO, summary())
    listing = next(r for r in github_api.requests if r.method == "GET")
    assert listing.path == f"/repos/{REPO}/issues"
    assert {name: values[-1] for name, values in listing.query.items()} == {
        "state": "all",
        "labels": "faultcat",
        "sort": "updated",
        "direction": "desc",
        "per_page": "100",
    }
    assert listing.headers["authorization"] == f"token {GITHUB_TOKEN}"


def test_recurrence_comments_on_the_open_issue(hook, github_api):
    first = hook.escalate(REPO, summary("r1"))
    again = hook.escalate(REPO, summary("r2", count=2, task_instances=["r1/load_s3/-1", "r2/load_s3/-1"]))

    assert again == {**first, "action": "commented"}
    (issue,) = github_api.issues(REPO)
    (comment,) = issue.comments
    assert comment.body.startswith("**Seen again:** `etl_daily.load_s3` failed in run `r2`")
    assert "**TaskInstances with this failure in the storm window:** 2" in comment.body
    assert [w[:2] for w in writes(github_api)] == [
        ("POST", f"/repos/{REPO}/issues"),
        ("POST", f"/repos/{REPO}/issues/1/comments"),
    ]


def test_closed_issue_is_reopened_with_a_comment(hook, github_api):
    github_api.seed_issue(REPO, title="unrelated", body="no marker here")
    closed = github_api.seed_issue(REPO, title="old", body=f"old body\n\n{marker(KEY)}", state="closed")

    result = hook.escalate(REPO, summary("r3"))

    assert result["action"] == "reopened" and result["number"] == closed.number
    assert (closed.state, closed.state_reason, closed.closed_at) == ("open", "reopened", None)
    assert len(closed.comments) == 1 and "run `r3`" in closed.comments[0].body
    assert len(github_api.issues(REPO)) == 2, "no new issue"
    assert (
        "PATCH",
        f"/repos/{REPO}/issues/{closed.number}",
        {"state": "open", "state_reason": "reopened"},
    ) in (writes(github_api))


def test_find_issue_prefers_open_then_most_recently_updated_closed(hook, github_api):
    older = github_api.seed_issue(REPO, title="a", body=marker(KEY), state="closed")
    newer = github_api.seed_issue(REPO, title="b", body=marker(KEY), state="closed")
    github_api.seed_issue(REPO, title="c", body=marker(dedup_key("other", "NETWORK", None)))
    assert hook.find_issue(REPO, KEY).number == newer.number

    opened = github_api.seed_issue(REPO, title="d", body=marker(KEY))
    github_api.seed_issue(REPO, title="e", body=marker(KEY), state="closed")  # updated after it
    assert hook.find_issue(REPO, KEY).number == opened.number
    assert older.number not in (newer.number, opened.number)


def test_issue_without_the_label_is_not_ours(hook, github_api):
    github_api.seed_issue(REPO, title="copied by hand", body=marker(KEY), labels=["bug"])
    assert hook.find_issue(REPO, KEY) is None
    assert hook.escalate(REPO, summary())["action"] == "opened"


def test_label_is_configurable(github_conn_id, github_api):
    hook = GithubIssuesHook(github_conn_id, label="oncall-faultcat")
    hook.escalate(REPO, summary())
    assert github_api.issues(REPO)[0].labels == ["oncall-faultcat"]
    assert hook.find_issue(REPO, KEY) is not None


def test_pagination_finds_the_marker_beyond_the_first_page(hook, github_api):
    ours = github_api.seed_issue(REPO, title="ours", body=f"text\n{marker(KEY)}")
    for i in range(230):
        github_api.seed_issue(REPO, title=f"other {i}", body=marker(dedup_key(f"dag_{i}", "NETWORK", None)))

    assert hook.find_issue(REPO, KEY).number == ours.number

    pages = [r.query["page"][-1] for r in github_api.requests if "page" in r.query]
    assert pages == ["2", "3"], "followed the Link header to the last page"
    assert github_api.rejected == []


def test_update_summary_rewrites_the_body(hook, github_api):
    number = hook.escalate(REPO, summary())["number"]
    tis = [f"r{i}/load_s3/-1" for i in range(5)]
    result = hook.update_summary(REPO, number, summary("r4", count=5, task_instances=tis))

    assert result["action"] == "updated" and result["number"] == number
    body = github_api.issue(REPO, number).body
    assert "**TaskInstances with this failure:** 5" in body and "- `r4/load_s3/-1`" in body
    assert body.endswith(marker(KEY))


def test_resolve_comments_and_closes_then_finds_nothing_open(hook, github_api):
    number = hook.escalate(REPO, summary())["number"]
    comment = render_resolved_comment("etl_daily", "load_s3", "r5")

    result = hook.resolve(REPO, KEY, comment)

    assert result == {"number": number, "url": f"{github_api.url}/{REPO}/issues/{number}", "action": "closed"}
    issue = github_api.issue(REPO, number)
    assert (issue.state, issue.state_reason) == ("closed", "completed")
    assert issue.comments[-1].body == comment
    assert hook.resolve(REPO, KEY, comment) is None
    assert hook.resolve(REPO, dedup_key("never", "failed", None), comment) is None


def test_bad_token_raises_escalation_error_without_the_token(github_api, monkeypatch):
    wrong = "ghp_WrongToken0000000000000000000000abcd"
    conn = {"conn_type": "github", "host": github_api.url, "password": wrong}
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_GITHUB_WRONG", json.dumps(conn))
    hook = GithubIssuesHook("faultcat_github_wrong")

    with pytest.raises(EscalationError) as caught:
        hook.escalate(REPO, summary())

    err = caught.value
    assert err.status_code == 401 and err.detail == "Bad credentials"
    assert "401" in str(err) and "Bad credentials" in str(err)
    assert wrong not in str(err) and wrong not in repr(err.args)
    assert err.__cause__ is None and err.__suppress_context__
    assert github_api.issues(REPO) == []
    assert [r.rejection for r in github_api.rejected] == ["wrong token"]


def test_unknown_repository_raises_not_found(hook, github_api):
    with pytest.raises(EscalationError) as caught:
        hook.find_issue("octo-org/missing", KEY)
    assert caught.value.status_code == 404
    assert "octo-org/missing" in str(caught.value)


def test_unreachable_api_raises_escalation_error(monkeypatch):
    conn = {"conn_type": "github", "host": "http://127.0.0.1:9", "password": GITHUB_TOKEN}
    monkeypatch.setenv("AIRFLOW_CONN_FAULTCAT_GITHUB_DOWN", json.dumps(conn))
    hook = GithubIssuesHook("faultcat_github_down")
    with pytest.raises(EscalationError) as caught:
        hook.find_issue(REPO, KEY)
    assert caught.value.status_code == 0 and GITHUB_TOKEN not in str(caught.value)


def test_connection_test_uses_the_authenticated_user(hook, github_api):
    assert hook.test_connection() == (True, "Successfully connected to GitHub.")
    assert [r.path for r in github_api.requests] == ["/user"]
