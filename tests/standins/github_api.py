"""A stand-in for the part of GitHub's REST API v3 that issue escalation uses.

It serves what PyGithub (through the github provider's ``GithubHook``) sends for these calls:
``GET /repos/{owner}/{repo}``, ``GET|POST /repos/{owner}/{repo}/issues`` (``Link`` pagination),
``GET|PATCH /repos/{owner}/{repo}/issues/{number}``, ``GET|POST .../issues/{number}/comments`` and
``GET /user`` (the hook's ``test_connection``). Requests are checked against
``contracts/github-issues.json``; errors use GitHub's shapes: 401 ``Bad credentials`` /
``Requires authentication``, 404 ``Not Found``, 400 ``Problems parsing JSON``, 422
``Validation Failed`` with an ``errors`` list.

Point a ``github`` connection at it with ``host`` = :attr:`GithubApiStandin.url` and the token as
password; PyGithub then builds every URL from that base.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from jsonschema import Draft202012Validator

from tests.standins import Response, StandinServer, validator

__all__ = ["GithubApiStandin", "StandinComment", "StandinIssue"]

CONTRACT = "github-issues.json"
_DOCS = "https://docs.github.com/rest"
_DOC_URLS = {
    "repos/get": f"{_DOCS}/repos/repos#get-a-repository",
    "issues/list-for-repo": f"{_DOCS}/issues/issues#list-repository-issues",
    "issues/create": f"{_DOCS}/issues/issues#create-an-issue",
    "issues/get": f"{_DOCS}/issues/issues#get-an-issue",
    "issues/update": f"{_DOCS}/issues/issues#update-an-issue",
    "issues/list-comments": f"{_DOCS}/issues/comments#list-issue-comments",
    "issues/create-comment": f"{_DOCS}/issues/comments#create-an-issue-comment",
    "users/get-authenticated": f"{_DOCS}/users/users#get-the-authenticated-user",
}
_REPO = r"/repos/(?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"/user"), "users/get-authenticated"),
    ("GET", re.compile(_REPO), "repos/get"),
    ("GET", re.compile(_REPO + r"/issues"), "issues/list-for-repo"),
    ("POST", re.compile(_REPO + r"/issues"), "issues/create"),
    ("GET", re.compile(_REPO + r"/issues/(?P<number>[0-9]+)"), "issues/get"),
    ("PATCH", re.compile(_REPO + r"/issues/(?P<number>[0-9]+)"), "issues/update"),
    ("GET", re.compile(_REPO + r"/issues/(?P<number>[0-9]+)/comments"), "issues/list-comments"),
    ("POST", re.compile(_REPO + r"/issues/(?P<number>[0-9]+)/comments"), "issues/create-comment"),
]
_REQUEST_SCHEMAS = {
    "issues/create": ("issues-create-request", "Issue"),
    "issues/update": ("issues-update-request", "Issue"),
    "issues/create-comment": ("issues-create-comment-request", "IssueComment"),
}


@dataclass
class StandinComment:
    """A comment on a stand-in issue."""

    id: int
    body: str
    created_at: str
    updated_at: str


@dataclass
class StandinIssue:
    """An issue as the stand-in keeps it; tests assert on these fields."""

    number: int
    id: int
    title: str
    body: str | None
    state: str = "open"
    state_reason: str | None = None
    labels: list[str] = field(default_factory=list)
    comments: list[StandinComment] = field(default_factory=list)
    created_at: str = ""
    updated_at: str = ""
    closed_at: str | None = None


@dataclass
class _Repository:
    id: int
    owner: str
    name: str
    issues: dict[int, StandinIssue] = field(default_factory=dict)
    label_ids: dict[str, int] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def _node_id(kind: str, number: int) -> str:
    return kind + "_" + base64.b64encode(f"{kind}:{number}".encode()).decode().rstrip("=")


class GithubApiStandin(StandinServer):
    """Serve the issue calls of GitHub's REST API from memory.

    :param token: the one token accepted (``Authorization: token X`` or ``Bearer X``).
    :param repositories: ``owner/name`` of the repositories that exist.
    :param login: the login of the token's user (author of issues and comments).
    """

    def __init__(
        self,
        *,
        token: str,
        repositories: Iterable[str] = ("octo-org/pipelines",),
        login: str = "faultcat-bot",
    ) -> None:
        super().__init__()
        self.token = token
        self.login = login
        self.repositories: dict[str, _Repository] = {}
        self._ids = 1000
        # A logical clock: every change is one second later, so "sort=updated" is deterministic.
        self._now = datetime(2024, 1, 1, tzinfo=timezone.utc)
        for name in repositories:
            self.add_repository(name)

    # ---- state for tests ---------------------------------------------------------------------

    def add_repository(self, full_name: str) -> None:
        """Create an empty repository.

        :param full_name: ``owner/name``.
        """
        owner, name = full_name.split("/")
        self.repositories[full_name.lower()] = _Repository(self._next_id(), owner, name)

    def issues(self, full_name: str) -> list[StandinIssue]:
        """Return the repository's issues, by number.

        :param full_name: ``owner/name``.
        """
        with self.lock:
            repo = self.repositories[full_name.lower()]
            return [repo.issues[n] for n in sorted(repo.issues)]

    def issue(self, full_name: str, number: int) -> StandinIssue:
        """Return one issue of the repository.

        :param full_name: ``owner/name``.
        :param number: the issue number.
        """
        with self.lock:
            return self.repositories[full_name.lower()].issues[number]

    def seed_issue(
        self,
        full_name: str,
        *,
        title: str,
        body: str | None = None,
        state: str = "open",
        labels: Iterable[str] = ("faultcat",),
        state_reason: str | None = None,
    ) -> StandinIssue:
        """Create an issue directly (no request recorded), as if it had been opened earlier.

        :param full_name: ``owner/name``.
        :param title: the title.
        :param body: the body (None: no body).
        :param state: ``open`` or ``closed``.
        :param labels: label names.
        :param state_reason: the reason of a closed issue (default ``completed``).
        """
        with self.lock:
            issue = self._create(self.repositories[full_name.lower()], title, body, list(labels))
            if state == "closed":
                issue.state = "closed"
                issue.state_reason = state_reason or "completed"
                issue.closed_at = issue.updated_at = self._tick()
            return issue

    # ---- HTTP --------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw: bytes
    ) -> tuple[Any, Response]:
        body: Any = None
        with self.lock:
            route = self._route(method, path)
            if route is None:
                return None, self._error(404, "Not Found", f"{_DOCS}", f"no route {method} {path}")
            operation, params = route
            auth = self._authenticate(headers.get("authorization"))
            if auth is not None:
                return None, auth
            if operation in _REQUEST_SCHEMAS:
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    return None, self._error(400, "Problems parsing JSON", _DOC_URLS[operation], "bad JSON")
                schema, resource = _REQUEST_SCHEMAS[operation]
                invalid = self._validate(validator(CONTRACT, schema), body, resource, operation)
                if invalid is not None:
                    return body, invalid
            return body, getattr(self, "_" + operation.replace("/", "_").replace("-", "_"))(
                params, query, body
            )

    # ---- operations --------------------------------------------------------------------------

    def _users_get_authenticated(self, params: dict[str, str], query: Any, body: Any) -> Response:
        return Response(200, {**self._user(), "name": "faultcat bot", "email": None})

    def _repos_get(self, params: dict[str, str], query: Any, body: Any) -> Response:
        repo = self._repository(params)
        if isinstance(repo, Response):
            return repo
        return Response(200, self._repository_json(repo))

    def _issues_list_for_repo(
        self, params: dict[str, str], query: dict[str, list[str]], body: Any
    ) -> Response:
        repo = self._repository(params)
        if isinstance(repo, Response):
            return repo
        args: dict[str, Any] = {name: values[-1] for name, values in query.items()}
        for name in ("per_page", "page"):
            if name in args and re.fullmatch(r"[0-9]+", args[name]):
                args[name] = int(args[name])
        invalid = self._validate(
            validator(CONTRACT, "issues-list-query"), args, "Issue", "issues/list-for-repo"
        )
        if invalid is not None:
            return invalid
        state = args.get("state", "open")
        wanted = {name.strip().lower() for name in args.get("labels", "").split(",") if name.strip()}
        issues = [
            issue
            for issue in repo.issues.values()
            if (state == "all" or issue.state == state) and wanted <= {name.lower() for name in issue.labels}
        ]
        sort = args.get("sort", "created")
        key = {
            "created": lambda i: (i.created_at, i.number),
            "updated": lambda i: (i.updated_at, i.number),
            "comments": lambda i: (len(i.comments), i.number),
        }[sort]
        issues.sort(key=key, reverse=args.get("direction", "desc") == "desc")
        per_page, page = args.get("per_page", 30), args.get("page", 1)
        last = max(1, -(-len(issues) // per_page))
        chunk = issues[(page - 1) * per_page : page * per_page]
        headers = {}
        if last > 1:
            headers["Link"] = self._link(repo, args, page, last)
        return Response(200, [self._issue_json(repo, issue) for issue in chunk], headers)

    def _issues_create(self, params: dict[str, str], query: Any, body: dict[str, Any]) -> Response:
        repo = self._repository(params)
        if isinstance(repo, Response):
            return repo
        labels = [label if isinstance(label, str) else label["name"] for label in body.get("labels", [])]
        issue = self._create(repo, str(body["title"]), body.get("body"), labels)
        data = self._issue_json(repo, issue)
        return Response(201, data, {"Location": data["url"]})

    def _issues_get(self, params: dict[str, str], query: Any, body: Any) -> Response:
        found = self._find_issue(params)
        if isinstance(found, Response):
            return found
        return Response(200, self._issue_json(*found))

    def _issues_update(self, params: dict[str, str], query: Any, body: dict[str, Any]) -> Response:
        found = self._find_issue(params)
        if isinstance(found, Response):
            return found
        repo, issue = found
        if body.get("title") is not None:
            issue.title = str(body["title"])
        if "body" in body:
            issue.body = body["body"]
        if "labels" in body:
            issue.labels = [label if isinstance(label, str) else label["name"] for label in body["labels"]]
        now = self._tick()
        # state_reason is "ignored unless state is changed"; reopening sets "reopened".
        if body.get("state") == "closed" and issue.state == "open":
            issue.state, issue.closed_at = "closed", now
            issue.state_reason = body.get("state_reason") or "completed"
        elif body.get("state") == "open" and issue.state == "closed":
            issue.state, issue.closed_at, issue.state_reason = "open", None, "reopened"
        issue.updated_at = now
        return Response(200, self._issue_json(repo, issue))

    def _issues_list_comments(self, params: dict[str, str], query: Any, body: Any) -> Response:
        found = self._find_issue(params)
        if isinstance(found, Response):
            return found
        repo, issue = found
        return Response(200, [self._comment_json(repo, issue, c) for c in issue.comments])

    def _issues_create_comment(self, params: dict[str, str], query: Any, body: dict[str, Any]) -> Response:
        found = self._find_issue(params)
        if isinstance(found, Response):
            return found
        repo, issue = found
        now = self._tick()
        comment = StandinComment(self._next_id(), body["body"], now, now)
        issue.comments.append(comment)
        issue.updated_at = now
        data = self._comment_json(repo, issue, comment)
        return Response(201, data, {"Location": data["url"]})

    # ---- helpers -----------------------------------------------------------------------------

    def _route(self, method: str, path: str) -> tuple[str, dict[str, str]] | None:
        for verb, pattern, operation in _ROUTES:
            match = pattern.fullmatch(path.rstrip("/"))
            if match and verb == method:
                return operation, match.groupdict()
        return None

    def _authenticate(self, header: str | None) -> Response | None:
        if not header:
            return self._error(401, "Requires authentication", _DOCS, "no Authorization header")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or token.strip() != self.token:
            return self._error(401, "Bad credentials", _DOCS, "wrong token")
        return None

    def _validate(
        self, schema: Draft202012Validator, instance: Any, resource: str, operation: str
    ) -> Response | None:
        errors = []
        for error in schema.iter_errors(instance):
            name = str(error.path[0]) if error.path else ""
            # "title": string or integer; report the string branch's own complaint (too long, empty).
            for sub in error.context or ():
                if sub.validator in ("maxLength", "minLength"):
                    error = sub
                    break
            if error.validator == "minLength":
                errors.append({"resource": resource, "code": "missing_field", "field": name})
            elif error.validator == "required":
                missing = error.message.split("'")[1]
                errors.append({"resource": resource, "code": "missing_field", "field": missing})
            elif error.validator == "maxLength":
                limit = error.validator_value
                errors.append(
                    {
                        "resource": resource,
                        "code": "custom",
                        "field": name,
                        "message": f"{name} is too long (maximum is {limit} characters)",
                    }
                )
            elif error.validator == "additionalProperties":
                errors.append(
                    {"resource": resource, "code": "invalid", "message": error.message + " (not documented)"}
                )
            else:
                value = error.instance if isinstance(error.instance, (str, int)) else None
                errors.append({"resource": resource, "code": "invalid", "field": name, "value": value})
        if not errors:
            return None
        body = {
            "message": "Validation Failed",
            "errors": errors,
            "documentation_url": _DOC_URLS[operation],
            "status": "422",
        }
        return Response(422, body, rejection="; ".join(str(e) for e in errors))

    @staticmethod
    def _error(status: int, message: str, docs: str, why: str) -> Response:
        return Response(
            status, {"message": message, "documentation_url": docs, "status": str(status)}, rejection=why
        )

    def _repository(self, params: dict[str, str]) -> _Repository | Response:
        repo = self.repositories.get(f"{params['owner']}/{params['repo']}".lower())
        if repo is None:
            return self._error(404, "Not Found", _DOC_URLS["repos/get"], "unknown repository")
        return repo

    def _find_issue(self, params: dict[str, str]) -> tuple[_Repository, StandinIssue] | Response:
        repo = self._repository(params)
        if isinstance(repo, Response):
            return repo
        issue = repo.issues.get(int(params["number"]))
        if issue is None:
            return self._error(404, "Not Found", _DOC_URLS["issues/get"], "unknown issue")
        return repo, issue

    def _create(self, repo: _Repository, title: str, body: str | None, labels: list[str]) -> StandinIssue:
        now = self._tick()
        number = max(repo.issues, default=0) + 1
        issue = StandinIssue(
            number, self._next_id(), title, body, labels=labels, created_at=now, updated_at=now
        )
        repo.issues[number] = issue
        return issue

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _tick(self) -> str:
        self._now += timedelta(seconds=1)
        return self._now.strftime("%Y-%m-%dT%H:%M:%SZ")

    def _link(self, repo: _Repository, args: dict[str, Any], page: int, last: int) -> str:
        def url(number: int) -> str:
            return f"{self.url}/repos/{repo.full_name}/issues?" + urlencode({**args, "page": number})

        links = []
        if page < last:
            links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        if page > 1:
            links += [f'<{url(1)}>; rel="first"', f'<{url(page - 1)}>; rel="prev"']
        return ", ".join(links)

    def _user(self) -> dict[str, Any]:
        api = f"{self.url}/users/{self.login}"
        return {
            "login": self.login,
            "id": 41898282,
            "node_id": _node_id("U", 41898282),
            "avatar_url": f"{self.url}/avatars/{self.login}",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.url}/{self.login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": "Bot",
            "site_admin": False,
        }

    def _repository_json(self, repo: _Repository) -> dict[str, Any]:
        api = f"{self.url}/repos/{repo.full_name}"
        return {
            "id": repo.id,
            "node_id": _node_id("R", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": {**self._user(), "login": repo.owner, "type": "Organization"},
            "private": True,
            "html_url": f"{self.url}/{repo.full_name}",
            "description": None,
            "fork": False,
            "url": api,
            "issues_url": f"{api}/issues{{/number}}",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "labels_url": f"{api}/labels{{/name}}",
            "has_issues": True,
            "open_issues_count": sum(1 for i in repo.issues.values() if i.state == "open"),
            "default_branch": "main",
            "archived": False,
            "disabled": False,
            "visibility": "private",
            "created_at": "2023-01-01T00:00:00Z",
            "updated_at": self._now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "pushed_at": "2023-01-01T00:00:00Z",
        }

    def _issue_json(self, repo: _Repository, issue: StandinIssue) -> dict[str, Any]:
        api = f"{self.url}/repos/{repo.full_name}/issues/{issue.number}"
        labels = []
        for name in issue.labels:
            label_id = repo.label_ids.setdefault(name.lower(), self._next_id())
            labels.append(
                {
                    "id": label_id,
                    "node_id": _node_id("LA", label_id),
                    "url": f"{self.url}/repos/{repo.full_name}/labels/{name}",
                    "name": name,
                    "color": "ededed",
                    "default": False,
                    "description": None,
                }
            )
        return {
            "url": api,
            "repository_url": f"{self.url}/repos/{repo.full_name}",
            "labels_url": f"{api}/labels{{/name}}",
            "comments_url": f"{api}/comments",
            "events_url": f"{api}/events",
            "html_url": f"{self.url}/{repo.full_name}/issues/{issue.number}",
            "id": issue.id,
            "node_id": _node_id("I", issue.id),
            "number": issue.number,
            "title": issue.title,
            "user": self._user(),
            "labels": labels,
            "state": issue.state,
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": len(issue.comments),
            "created_at": issue.created_at,
            "updated_at": issue.updated_at,
            "closed_at": issue.closed_at,
            "author_association": "MEMBER",
            "active_lock_reason": None,
            "body": issue.body,
            "closed_by": self._user() if issue.state == "closed" else None,
            "timeline_url": f"{api}/timeline",
            "state_reason": issue.state_reason,
        }

    def _comment_json(
        self, repo: _Repository, issue: StandinIssue, comment: StandinComment
    ) -> dict[str, Any]:
        return {
            "url": f"{self.url}/repos/{repo.full_name}/issues/comments/{comment.id}",
            "html_url": f"{self.url}/{repo.full_name}/issues/{issue.number}#issuecomment-{comment.id}",
            "issue_url": f"{self.url}/repos/{repo.full_name}/issues/{issue.number}",
            "id": comment.id,
            "node_id": _node_id("IC", comment.id),
            "user": self._user(),
            "created_at": comment.created_at,
            "updated_at": comment.updated_at,
            "author_association": "MEMBER",
            "body": comment.body,
        }
