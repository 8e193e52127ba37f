"""Slack as an escalation target, through the slack provider's ``SlackNotifier``.

The connection is the provider's ``slack`` connection (the bot token as password). Its extra
``base_url`` (for a proxy, a test stand-in or an enterprise gateway) goes to ``slack_sdk.WebClient``,
which appends ``/`` and the method name: it must include the API path (``https://slack.com/api``),
a bare host would receive ``POST /chat.postMessage``.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.slack.notifications.slack import SlackNotifier
from slack_sdk.errors import SlackApiError, SlackClientError

from airflow_faultcat.core.escalation import EscalationSummary, render_slack_text
from airflow_faultcat.exceptions import EscalationError


def notify_slack(
    *,
    slack_conn_id: str,
    channel: str,
    summary: EscalationSummary,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Post the short message of a failure to a Slack channel.

    The text is :func:`~airflow_faultcat.core.escalation.render_slack_text` of ``summary``. It is
    sent with ``SlackNotifier.notify`` directly, not by calling the notifier: calling it would render
    the text as a Jinja template, and a log line may hold ``{{``.

    :param slack_conn_id: the ``slack`` connection.
    :param channel: a channel id (``C0123ABCD``) or name (``#data-oncall``).
    :param summary: the failure.
    :param context: the task's context, passed on to the notifier (it does not read it today).
    :return: ``{"channel": channel}``. The notifier drops Slack's answer, so the message's ``ts``
        cannot be returned.
    :raises EscalationError: Slack answered ``ok: false`` (``detail`` is Slack's error code, such as
        ``channel_not_found``) or could not be reached.
    """
    notify_slack_text(
        slack_conn_id=slack_conn_id, channel=channel, text=render_slack_text(summary), context=context
    )
    return {"channel": channel}


def notify_slack_text(
    *, slack_conn_id: str, channel: str, text: str, context: dict[str, Any] | None = None
) -> None:
    """Post an already scrubbed text to a Slack channel (``chat.postMessage``, no link previews).

    :raises EscalationError: Slack answered ``ok: false`` or could not be reached.
    """
    notifier = SlackNotifier(
        slack_conn_id=slack_conn_id,
        channel=channel,
        text=text,
        # The TaskInstance link points into Airflow: Slack must not try to fetch it for a preview.
        unfurl_links=False,
        unfurl_media=False,
    )
    try:
        notifier.notify(context or {})
    except SlackApiError as err:
        error = err.response.get("error") if err.response is not None else None
        status = err.response.status_code if err.response is not None else 0
        raise EscalationError(
            f"Slack: chat.postMessage to {channel} failed: {error}", status_code=status, detail=error
        ) from None
    except (SlackClientError, OSError) as err:
        # slack_sdk's urllib transport raises URLError (an OSError) when nothing answers.
        raise EscalationError(
            f"Slack: chat.postMessage to {channel} failed: {type(err).__name__}: {err}"
        ) from None
