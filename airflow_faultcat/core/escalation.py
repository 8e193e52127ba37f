"""What faultcat tells people about a failure it does not fix itself: GitHub issues and Slack messages.

One failure ("this DAG fails with this root cause, matched by this pattern") maps to one
:func:`dedup_key`. The GitHub issue carries that key in a hidden marker (:func:`marker`), so a
recurrence becomes a comment on the same issue instead of a new issue. Everything rendered here is
built from an :class:`EscalationSummary` (the scrubbed summary of the evidence bundle, never raw
logs) and passes through :class:`~airflow_faultcat.core.scrub.Scrubber` once more on the way out:
the caller scrubs too, this is defence in depth.

Limits come from the services: an issue title holds 256 characters, an issue body or comment
65536, and Slack asks for at most 3000 characters in a message's ``text`` (longer text is split or
truncated by Slack). This module never imports ``airflow``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from airflow_faultcat.core.scrub import Scrubber

__all__ = [
    "BODY_MAX_CHARS",
    "EscalationSummary",
    "SLACK_TEXT_MAX_CHARS",
    "TASK_INSTANCES_SHOWN",
    "TITLE_MAX_CHARS",
    "dedup_key",
    "find_marker",
    "marker",
    "render_issue",
    "render_recurrence_comment",
    "render_resolved_comment",
    "render_slack_text",
]

#: GitHub rejects an issue title longer than this.
TITLE_MAX_CHARS = 256
#: GitHub rejects an issue body or comment longer than this.
BODY_MAX_CHARS = 65536
#: Slack's limit for the ``text`` of ``chat.postMessage`` before it truncates.
SLACK_TEXT_MAX_CHARS = 3000
#: How many TaskInstance ids an issue lists before "and N more".
TASK_INSTANCES_SHOWN = 20

_MARKER_RE = re.compile(r"<!--\s*faultcat:dedup=(fc-[0-9a-f]{16})\s*-->")
# Text that imitates the marker: a log line must not be able to claim another failure's issue.
_MARKER_IMITATION_RE = re.compile(r"faultcat:dedup=", re.IGNORECASE)
_BACKTICKS_RE = re.compile(r"`+")
_WHITESPACE_RE = re.compile(r"\s+")
_PARTIAL_ENTITY_RE = re.compile(r"&[a-z]{0,3}$")

# Caps per piece, so that the assembled body stays far below BODY_MAX_CHARS.
_EVIDENCE_MAX = 4000
_TEXT_MAX = 2000
_ID_MAX = 250
_SUGGESTIONS_SHOWN = 20
_SLACK_EVIDENCE_MAX = 1200
# A longer link is left out rather than cut (a cut URL points elsewhere).
_SLACK_URL_MAX = 1000

_SCRUBBER = Scrubber()


class EscalationSummary(BaseModel):
    """The scrubbed summary of one failure (or one storm of identical failures) to escalate.

    :param dedup_key: the failure's key, from :func:`dedup_key`.
    :param dag_id: the failed task's DAG.
    :param task_id: the failed task.
    :param run_id: the DagRun of the (latest) failed TaskInstance.
    :param map_index: the mapped task's index, -1 when not mapped.
    :param try_number: the failed try, when known.
    :param root_cause: the category name (``"CREDENTIAL"``).
    :param confidence: the finding's confidence, 0 to 1.
    :param pattern_id: the pattern that matched, if any.
    :param title: the finding's title.
    :param top_evidence: the one log line that decided, already scrubbed by the caller.
    :param evidence_location: where that line is (``"task log line 42"``).
    :param suggestions: what a person can do, most useful first.
    :param decision: what faultcat did and why (``"not retried: policy CREDENTIAL retry=never"``).
    :param count: how many TaskInstances failed this way in the storm window.
    :param task_instances: their ids (``"run_id/task_id/map_index"``).
    :param ti_url: the TaskInstance in the Airflow UI (http or https).
    :param bundle_location: where the evidence bundle is stored.
    :param sev: the severity the policy gives it (``SEV2`` for a regression, a new fingerprint).
    :param fingerprint: the failure's fingerprint, and ``regression``: whether it is new.
    :param first_seen: when the first of them failed.
    :param last_seen: when the latest of them failed.
    """

    model_config = ConfigDict(extra="forbid")

    dedup_key: str
    dag_id: str
    task_id: str
    run_id: str
    map_index: int = -1
    try_number: int | None = None
    root_cause: str
    confidence: float = Field(ge=0.0, le=1.0)
    pattern_id: str | None = None
    title: str
    top_evidence: str | None = None
    evidence_location: str | None = None
    suggestions: list[str] = Field(default_factory=list)
    decision: str
    sev: str | None = None
    fingerprint: str | None = None
    regression: bool = False
    count: int = Field(default=1, ge=1)
    task_instances: list[str] = Field(default_factory=list)
    ti_url: str | None = None
    bundle_location: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None

    @field_validator("root_cause", mode="before")
    @classmethod
    def _category_name(cls, value: Any) -> Any:
        # Category is a str Enum: keep its name, not "Category.CREDENTIAL".
        return value.value if isinstance(value, Enum) else value

    @field_validator("ti_url")
    @classmethod
    def _web_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("ti_url must be an http(s) URL")
        return value


def dedup_key(dag_id: str, root_cause: str | Enum, pattern_id: str | None) -> str:
    """Return the stable id of "this DAG fails with this root cause, by this pattern".

    :param dag_id: the DAG.
    :param root_cause: the category name (or the Category itself).
    :param pattern_id: the matched pattern, None when no pattern decided.
    :return: ``fc-`` and 16 hex digits of the SHA-256 of the three, NUL-separated.
    """
    cause = root_cause.value if isinstance(root_cause, Enum) else root_cause
    digest = hashlib.sha256("\0".join((dag_id, cause, pattern_id or "")).encode("utf-8")).hexdigest()
    return f"fc-{digest[:16]}"


def marker(key: str) -> str:
    """Return the hidden HTML comment that ties a GitHub issue to ``key``.

    :param key: a key from :func:`dedup_key`.
    """
    if not re.fullmatch(r"fc-[0-9a-f]{16}", key):
        raise ValueError(f"not a faultcat dedup key: {key!r}")
    return f"<!-- faultcat:dedup={key} -->"


def find_marker(body: str | None) -> str | None:
    """Return the dedup key of the last marker line in ``body``, None when there is none.

    Only a line that holds the marker alone counts, read from the end: faultcat writes it as the last
    line, below anything quoted from a log.

    :param body: an issue body.
    """
    if not body:
        return None
    for line in reversed(body.splitlines()):
        match = _MARKER_RE.fullmatch(line.strip())
        if match:
            return match.group(1)
    return None


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    # Never leave half an entity ("&am") behind.
    return _PARTIAL_ENTITY_RE.sub("", text[: limit - 1]) + "…"


def _clean(text: str | None, limit: int) -> str:
    """Scrub, defuse marker imitations, then cut: cutting after scrubbing never leaks a prefix."""
    if not text:
        return ""
    text = _SCRUBBER.scrub(text)
    text = _MARKER_IMITATION_RE.sub("faultcat:dedup\u200b=", text)
    return _cut(text, limit)


def _escape(text: str) -> str:
    # Both GitHub Markdown (raw HTML) and Slack mrkdwn treat only these three as markup here.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _inline(text: str | None, limit: int = _TEXT_MAX) -> str:
    """Text for one line of Markdown or mrkdwn: whitespace collapsed, markup characters escaped."""
    text = _WHITESPACE_RE.sub(" ", _clean(text, limit)).strip()
    return _cut(_escape(text), limit)


def _code(text: str | None, limit: int = _ID_MAX) -> str:
    """An inline code span that survives backticks in ``text``."""
    text = _WHITESPACE_RE.sub(" ", _clean(text, limit)).strip()
    longest = max((len(run) for run in _BACKTICKS_RE.findall(text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _code_block(text: str) -> str:
    """A fenced block longer than any backtick run inside, so the evidence cannot close it."""
    longest = max((len(run) for run in _BACKTICKS_RE.findall(text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _link(url: str) -> str:
    # Angle brackets allow ")" in the destination; spaces and brackets are percent-encoded.
    return "<" + url.replace(" ", "%20").replace("<", "%3C").replace(">", "%3E") + ">"


def _task(summary: EscalationSummary) -> str:
    return f"{summary.dag_id}.{summary.task_id}"


def _evidence_lines(summary: EscalationSummary) -> list[str]:
    if not summary.top_evidence:
        return ["No evidence line decided; see the evidence bundle."]
    where = f" ({_inline(summary.evidence_location, _ID_MAX)})" if summary.evidence_location else ""
    return [f"Top evidence{where}:", "", _code_block(_clean(summary.top_evidence, _EVIDENCE_MAX))]


def _ti_lines(summary: EscalationSummary) -> list[str]:
    lines = [f"**TaskInstances with this failure:** {summary.count}"]
    shown = summary.task_instances[:TASK_INSTANCES_SHOWN]
    lines += [f"- {_code(ti)}" for ti in shown]
    hidden = len(summary.task_instances) - len(shown)
    if hidden > 0:
        lines.append(f"- and {hidden} more")
    return lines


def _finish(text: str, limit: int, tail: str = "") -> str:
    """Scrub the assembled text once more and keep it, with ``tail``, within ``limit``."""
    text = _SCRUBBER.scrub(text)
    room = limit - len(tail)
    return _cut(text, room) + tail


# --------------------------------------------------------------------------------------------
# Renderers
# --------------------------------------------------------------------------------------------


def render_issue(summary: EscalationSummary) -> tuple[str, str]:
    """Render the GitHub issue of a failure.

    :param summary: the failure.
    :return: the title (at most 256 characters) and the Markdown body (at most 65536), whose last
        line is :func:`marker`.
    """
    # Plain text on GitHub: no escaping, one line.
    sev = f"[{summary.sev}] " if summary.sev else ""
    title = f"[faultcat] {sev}{summary.root_cause} in {_task(summary)}: {summary.title}"
    title = _cut(_WHITESPACE_RE.sub(" ", _clean(title, 1000)).strip(), TITLE_MAX_CHARS)

    where = f"run {_code(summary.run_id)}"
    if summary.map_index >= 0:
        where += f", map index {summary.map_index}"
    if summary.try_number is not None:
        where += f", try {summary.try_number}"
    lines = [
        f"## faultcat: {_inline(summary.root_cause, _ID_MAX)} in {_code(_task(summary))}",
        "",
        f"**Root cause:** {_inline(summary.root_cause, _ID_MAX)} (confidence {summary.confidence:.2f}): "
        f"{_inline(summary.title)}",
    ]
    if summary.pattern_id:
        lines.append(f"**Pattern:** {_code(summary.pattern_id)}")
    if summary.fingerprint:
        kind = "new: a regression" if summary.regression else "seen before"
        sev = f", {_inline(summary.sev, _ID_MAX)}" if summary.sev else ""
        lines.append(f"**Fingerprint:** {_code(summary.fingerprint)} ({kind}{sev})")
    lines += [f"**Failed:** {where}", "", *_evidence_lines(summary), ""]
    lines += ["### Decision", "", _inline(summary.decision), ""]
    if summary.suggestions:
        lines += ["### Suggestions", ""]
        lines += [f"- {_inline(s)}" for s in summary.suggestions[:_SUGGESTIONS_SHOWN]]
        lines.append("")
    lines += ["### Affected", "", *_ti_lines(summary), ""]
    seen = [
        f"{label} {when.isoformat()}"
        for label, when in (("first seen", summary.first_seen), ("last seen", summary.last_seen))
        if when is not None
    ]
    if seen:
        lines += [f"**Window:** {', '.join(seen)}", ""]
    if summary.ti_url:
        lines.append(f"[TaskInstance in Airflow]({_link(summary.ti_url)})  ")
    if summary.bundle_location:
        lines.append(f"Evidence bundle: {_code(summary.bundle_location, 1000)}")
    lines += [
        "",
        "<sub>Opened by faultcat. This body is the scrubbed summary of the evidence bundle, not raw "
        "logs. Recurrences are added as comments; the issue closes when the task succeeds.</sub>",
    ]
    body = _finish("\n".join(lines), BODY_MAX_CHARS, "\n\n" + marker(summary.dedup_key))
    return title, body


def render_recurrence_comment(summary: EscalationSummary) -> str:
    """Render the comment added to the open issue when the failure happens again.

    :param summary: the new occurrence.
    """
    where = f"run {_code(summary.run_id)}"
    if summary.map_index >= 0:
        where += f", map index {summary.map_index}"
    if summary.try_number is not None:
        where += f", try {summary.try_number}"
    lines = [
        f"**Seen again:** {_code(_task(summary))} failed in {where} "
        f"({_inline(summary.root_cause, _ID_MAX)}, confidence {summary.confidence:.2f}).",
        "",
        *_evidence_lines(summary),
        "",
        f"**Decision:** {_inline(summary.decision)}",
    ]
    if summary.count > 1:
        lines.append(f"**TaskInstances with this failure in the storm window:** {summary.count}")
    if summary.ti_url:
        lines.append(f"[TaskInstance in Airflow]({_link(summary.ti_url)})")
    return _finish("\n".join(lines), BODY_MAX_CHARS)


def render_resolved_comment(
    dag_id: str, task_id: str, run_id: str, *, map_index: int = -1, ti_url: str | None = None
) -> str:
    """Render the comment with which faultcat closes the issue once the task succeeds.

    :param dag_id: the DAG of the successful TaskInstance.
    :param task_id: its task.
    :param run_id: its DagRun.
    :param map_index: its map index, -1 when not mapped.
    :param ti_url: the TaskInstance in the Airflow UI.
    """
    where = f"run {_code(run_id)}"
    if map_index >= 0:
        where += f", map index {map_index}"
    text = f"**Resolved:** {_code(f'{dag_id}.{task_id}')} succeeded in {where}; closing."
    if ti_url and ti_url.startswith(("http://", "https://")):
        text += f"\n\n[TaskInstance in Airflow]({_link(ti_url)})"
    return _finish(text, BODY_MAX_CHARS)


def render_slack_text(summary: EscalationSummary) -> str:
    """Render the short Slack message of a failure (``mrkdwn`` text for ``chat.postMessage``).

    :param summary: the failure.
    :return: at most 3000 characters: a header line, the finding, the top evidence line, the count
        when more than one TaskInstance failed, and a link to the TaskInstance.
    """
    sev = f"[{summary.sev}] " if summary.sev else ""
    header = _inline(
        f"faultcat: {sev}{summary.root_cause} in {_task(summary)} ({summary.confidence:.2f})", 400
    )
    lines = [f":rotating_light: {header}", _inline(summary.title, 400)]
    if summary.top_evidence:
        # Slack has no longer fences: a backtick inside would end the code block.
        evidence = _clean(summary.top_evidence, _SLACK_EVIDENCE_MAX).replace("`", "'")
        lines.append("```" + _cut(_escape(evidence), _SLACK_EVIDENCE_MAX) + "```")
    if summary.count > 1:
        lines.append(f"Seen {summary.count} times in the storm window.")
    if summary.ti_url and len(summary.ti_url) <= _SLACK_URL_MAX:
        url = summary.ti_url.replace(" ", "%20").replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")
        lines.append(f"<{url}|TaskInstance>")
    return _finish("\n".join(lines), SLACK_TEXT_MAX_CHARS)
