"""GitHub issues as the escalation target: one issue per failure, found again by its hidden marker.

Built on the github provider's :class:`~airflow.providers.github.hooks.github.GithubHook` (same
``github`` connection: ``host`` is the API base URL for GitHub Enterprise, the password the token).
The issue of a failure is found by listing the repository's issues with the faultcat label, not
through the search API, whose index lags behind: a recurrence seconds after the first failure must
find the issue just opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from airflow.providers.github.hooks.github import GithubHook
from github import GithubException

from airflow_faultcat.core.escalation import (
    EscalationSummary,
    find_marker,
    render_issue,
    render_recurrence_comment,
)
from airflow_faultcat.core.scrub import Scrubber
from airflow_faultcat.exceptions import EscalationError

if TYPE_CHECKING:
    from github import Github
    from github.Issue import Issue
    from github.Repository import Repository

#: GitHub's largest page; fewer round trips when a repository holds many faultcat issues.
PER_PAGE = 100


class GithubIssuesHook(GithubHook):
    """Open, comment on, reopen and close the GitHub issue of a failure.

    Every method takes the repository as ``owner/name`` and returns plain data. GitHub's errors come
    back as :class:`~airflow_faultcat.exceptions.EscalationError` with the HTTP status and GitHub's
    message, never the token.

    :param github_conn_id: the ``github`` connection (default ``github_default``).
    :param label: the label faultcat puts on its issues and filters by (default ``faultcat``).

    .. seealso:: :mod:`airflow_faultcat.core.escalation` for the rendering and the dedup marker.
    """

    hook_name = "GitHub issues (faultcat)"

    def __init__(
        self, github_conn_id: str = GithubHook.default_conn_name, *, label: str = "faultcat"
    ) -> None:
        super().__init__(github_conn_id=github_conn_id)
        self.label = label

    # ---- public API --------------------------------------------------------------------------

    def find_issue(self, repository: str, key: str) -> Issue | None:
        """Return the issue whose body carries the marker of ``key``.

        :param repository: ``owner/name``.
        :param key: the failure's dedup key.
        :return: the open issue; else the most recently updated closed one; else None.
        """
        with self._errors("find the issue", repository):
            return self._find(self._repository(repository), key)

    def escalate(self, repository: str, summary: EscalationSummary) -> dict[str, Any]:
        """Open the failure's issue, or comment on it when it is open, or reopen it when closed.

        :param repository: ``owner/name``.
        :param summary: the failure.
        :return: ``{"number", "url", "action"}`` with action ``opened``, ``commented`` or
            ``reopened``.
        """
        with self._errors("escalate", repository):
            repo = self._repository(repository)
            issue = self._find(repo, summary.dedup_key)
            if issue is None:
                title, body = render_issue(summary)
                issue = repo.create_issue(title=title, body=body, labels=[self.label])
                action = "opened"
            elif issue.state == "open":
                issue.create_comment(render_recurrence_comment(summary))
                action = "commented"
            else:
                issue.edit(state="open", state_reason="reopened")
                issue.create_comment(render_recurrence_comment(summary))
                action = "reopened"
            return self._result(issue, action)

    def update_summary(self, repository: str, number: int, summary: EscalationSummary) -> dict[str, Any]:
        """Rewrite the issue body with the latest summary (count and TaskInstance list).

        :param repository: ``owner/name``.
        :param number: the issue number.
        :param summary: the failure, as it stands now.
        :return: ``{"number", "url", "action": "updated"}``.
        """
        with self._errors("update the issue", repository):
            issue = self._repository(repository).get_issue(number)
            issue.edit(body=render_issue(summary)[1])
            return self._result(issue, "updated")

    def resolve(self, repository: str, key: str, comment: str) -> dict[str, Any] | None:
        """Comment on and close the open issue of ``key`` (the task has succeeded since).

        :param repository: ``owner/name``.
        :param key: the failure's dedup key.
        :param comment: the closing comment (see
            :func:`~airflow_faultcat.core.escalation.render_resolved_comment`); it is scrubbed.
        :return: ``{"number", "url", "action": "closed"}``, or None when no open issue exists.
        """
        with self._errors("resolve", repository):
            issue = self._find(self._repository(repository), key)
            if issue is None or issue.state != "open":
                return None
            issue.create_comment(Scrubber().scrub(comment))
            issue.edit(state="closed", state_reason="completed")
            return self._result(issue, "closed")

    # ---- helpers -----------------------------------------------------------------------------

    @cached_property
    def _lazy_client(self) -> Github:
        # Lazy: get_repo() sends no request of its own. PyGithub spaces requests (0.25 s, and 1 s
        # between writes) to respect GitHub's secondary rate limits, so every request saved counts.
        client = self.get_conn().withLazy(True)
        client.per_page = PER_PAGE
        return client

    def _repository(self, repository: str) -> Repository:
        return self._lazy_client.get_repo(repository)

    def _find(self, repo: Repository, key: str) -> Issue | None:
        closed = None
        # Most recently updated first: the first closed match is the one to reopen.
        for issue in repo.get_issues(state="all", labels=[self.label], sort="updated", direction="desc"):
            # Only attributes present in the listing: any other one costs PyGithub a GET per issue.
            if "/pull/" in issue.html_url or find_marker(issue.body) != key:
                continue
            if issue.state == "open":
                return issue
            if closed is None:
                closed = issue
        return closed

    @staticmethod
    def _result(issue: Issue, action: str) -> dict[str, Any]:
        return {"number": issue.number, "url": issue.html_url, "action": action}

    @contextmanager
    def _errors(self, action: str, repository: str) -> Iterator[None]:
        # "from None": the chained exception adds nothing the message lacks.
        try:
            yield
        except GithubException as err:
            detail = err.message or (err.data.get("message") if isinstance(err.data, dict) else None)
            message = f"GitHub: could not {action} in {repository}: {err.status} {detail}"
            raise self._error(message, err.status, detail) from None
        except requests.RequestException as err:
            message = f"GitHub: could not {action} in {repository}: {type(err).__name__}: {err}"
            raise self._error(message, 0, None) from None

    def _error(self, message: str, status: int, detail: str | None) -> EscalationError:
        # GitHub's answers do not echo the token, but a URL or proxy error might: mask it anyway.
        token = self.get_connection(self.github_conn_id).password
        scrubber = Scrubber([token] if token else [])
        return EscalationError(
            scrubber.scrub(message), status_code=status, detail=scrubber.scrub(detail) if detail else None
        )
