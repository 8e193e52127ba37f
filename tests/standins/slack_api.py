"""A stand-in for Slack's Web API methods ``chat.postMessage`` and ``auth.test``.

Methods live under ``/api/<method>``, as on slack.com. Arguments come as a form-encoded or JSON body
(a GET's query string for ``auth.test``); the token comes in ``Authorization: Bearer xoxb-...``
(form-encoded bodies may carry it as ``token`` instead). As Slack does, every answer to a known
method is HTTP 200 with ``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. Arguments are
checked against ``contracts/slack-chat-postMessage.json``.

Point a ``slack`` connection at it with the token as password and the connection extra
``{"base_url": standin.api_url}``: slack_sdk joins method names to that URL, so it must include
``/api``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from tests.standins import Response, StandinServer, contract_errors

__all__ = ["SlackApiStandin"]

CONTRACT = "slack-chat-postMessage.json"
#: Slack truncates longer messages and answers ``msg_too_long`` beyond this many characters of text.
TEXT_MAX_CHARS = 40000
_BOOLEAN_ARGS = ("link_names", "mrkdwn", "reply_broadcast", "unfurl_links", "unfurl_media")


class SlackApiStandin(StandinServer):
    """Serve ``chat.postMessage`` and ``auth.test`` from memory.

    :param token: the one token accepted.
    :param channels: the workspace's channels, id to name (default ``C0FAULTCAT1``: ``alerts``).
    """

    bot_id = "B0FAULTBOT1"
    user_id = "U0FAULTBOT1"
    team_id = "T0FAULTCAT"

    def __init__(self, *, token: str, channels: dict[str, str] | None = None) -> None:
        super().__init__()
        self.token = token
        self.channels = dict(channels or {"C0FAULTCAT1": "alerts"})
        #: The messages posted, oldest first: channel id, ts, text and the other arguments.
        self.messages: list[dict[str, Any]] = []

    @property
    def api_url(self) -> str:
        """The Web API base URL to put in a connection's ``base_url`` extra (``.../api/``)."""
        return f"{self.url}/api/"

    # ---- HTTP --------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw: bytes
    ) -> tuple[Any, Response]:
        api_method = path.removeprefix("/api/") if path.startswith("/api/") else None
        if api_method not in ("chat.postMessage", "auth.test"):
            return None, Response(404, {"ok": False, "error": "unknown_method"}, rejection="unknown method")
        if method not in ("GET", "POST") or (api_method == "chat.postMessage" and method != "POST"):
            return None, self._fail("invalid_post_type")
        args, token, problem = self._arguments(method, query, headers, raw)
        if problem is not None:
            return args, self._fail(problem)
        with self.lock:
            if not token:
                return args, self._fail("not_authed")
            if token != self.token:
                return args, self._fail("invalid_auth")
            if api_method == "auth.test":
                return args, self._auth_test()
            return args, self._post_message(args)

    def _arguments(
        self, method: str, query: dict[str, list[str]], headers: dict[str, str], raw: bytes
    ) -> tuple[Any, str | None, str | None]:
        """Return the arguments, the token and the error code of an unreadable request."""
        bearer = headers.get("authorization", "")
        token = bearer[7:].strip() if bearer.lower().startswith("bearer ") else None
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        args: dict[str, Any] = {name: values[-1] for name, values in query.items()}
        if not raw:
            return args, token or args.pop("token", None), None
        if content_type == "application/json":
            try:
                body = json.loads(raw)
            except ValueError:
                return None, token, "invalid_json"
            if not isinstance(body, dict):
                return body, token, "json_not_object"
            # A JSON body cannot carry the token: Slack reads it from the header only.
            return {**args, **body}, token, None
        if content_type == "application/x-www-form-urlencoded":
            form = {name: values[-1] for name, values in parse_qs(raw.decode("utf-8"), True).items()}
            for name in _BOOLEAN_ARGS:
                if name in form and form[name].lower() in ("true", "1", "false", "0"):
                    form[name] = form[name].lower() in ("true", "1")
            args.update(form)
            return args, token or args.get("token"), None
        return None, token, "invalid_form_data"

    def _post_message(self, args: dict[str, Any]) -> Response:
        if not args.get("channel"):
            return self._fail("channel_not_found")
        errors = contract_errors(CONTRACT, "chat.postMessage-request", args)
        if errors:
            return self._fail("invalid_arguments", "; ".join(errors))
        channel = self._channel_id(args["channel"])
        if channel is None:
            return self._fail("channel_not_found")
        text = args.get("text") or ""
        if (
            not text.strip()
            and not _has_items(args.get("blocks"))
            and not _has_items(args.get("attachments"))
        ):
            return self._fail("no_text")
        if len(text) > TEXT_MAX_CHARS:
            return self._fail("msg_too_long")
        sequence = len(self.messages) + 1
        ts = f"{1700000000 + sequence}.{sequence * 100:06d}"
        posted = {name: value for name, value in args.items() if name != "token"}
        self.messages.append({**posted, "channel": channel, "ts": ts})
        message = {
            "type": "message",
            "subtype": "bot_message",
            "text": text,
            "ts": ts,
            "username": args.get("username", "faultcat"),
            "bot_id": self.bot_id,
        }
        return Response(200, {"ok": True, "channel": channel, "ts": ts, "message": message})

    def _auth_test(self) -> Response:
        return Response(
            200,
            {
                "ok": True,
                "url": "https://faultcat-test.slack.com/",
                "team": "faultcat test",
                "user": "faultcat",
                "team_id": self.team_id,
                "user_id": self.user_id,
            },
        )

    def _channel_id(self, channel: str) -> str | None:
        if channel in self.channels:
            return channel
        name = channel.removeprefix("#")
        return next((cid for cid, cname in self.channels.items() if cname == name), None)

    @staticmethod
    def _fail(error: str, why: str | None = None) -> Response:
        # Slack answers errors with HTTP 200 and ok=false.
        return Response(200, {"ok": False, "error": error}, rejection=why or error)


def _has_items(value: Any) -> bool:
    """Return True when blocks/attachments (a JSON string or a list) hold at least one item."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return bool(value.strip())
    return bool(value)
