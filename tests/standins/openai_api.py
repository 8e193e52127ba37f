"""A stand-in for an OpenAI-compatible chat completions API (``POST /v1/chat/completions``).

It replays a recorded transcript (:class:`Transcript`): the assistant turns a model gave, in order,
each either tool calls (``{"tool_calls": [{"name": "probe", "arguments": {...}}]}``) or a final
answer (``{"content": "..."}``). Each request gets the next turn in the real response shape
(``chat.completion``: ``choices[0].message`` with ``tool_calls`` whose ``arguments`` are a JSON
string, ``finish_reason`` ``tool_calls`` or ``stop``, ``usage``). A transcript with ``loop`` set
repeats its last turn forever (a model that never stops probing); ``delay_seconds`` makes every
answer slow.

Each request is checked as the real API checks it, answering with OpenAI's error shape
``{"error": {"message", "type", "param", "code"}}``: a missing or wrong ``Authorization: Bearer``
key is a 401; a body that is not JSON, without ``model`` or ``messages``, with malformed
``tools``, or with a tool message that answers no tool call of the assistant message before it, is
a 400; an unknown model is a 404. This stand-in also insists on ``tools`` (the explorer always
offers the probe tool). Turns that are ``${name}`` templates are filled from ``variables`` (ports
and paths known only when the test runs).

Point the ``openai`` client at :attr:`OpenAiApiStandin.api_url` with the stand-in's key.
"""

from __future__ import annotations

import json
import string
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.standins import Response, StandinServer

__all__ = ["OpenAiApiStandin", "Transcript"]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


@dataclass
class Transcript:
    """A recorded conversation's assistant turns.

    :param turns: each ``{"tool_calls": [{"name", "arguments"}]}`` or ``{"content": str}``.
    :param loop: repeat the last turn forever once the others are used up.
    :param description: what the recording shows.
    """

    turns: list[dict[str, Any]]
    loop: bool = False
    description: str = ""

    @classmethod
    def load(cls, path: str | Path) -> Transcript:
        """Read a transcript file (``{"description", "loop", "turns"}``)."""
        doc = json.loads(Path(path).read_text())
        return cls(
            turns=doc["turns"], loop=bool(doc.get("loop", False)), description=doc.get("description", "")
        )


@dataclass
class _State:
    served: int = 0
    completions: list[dict[str, Any]] = field(default_factory=list)


def _error(
    status: int, message: str, *, kind: str, param: str | None = None, code: str | None = None
) -> Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return Response(status, body, rejection=message)


class OpenAiApiStandin(StandinServer):
    """Serve ``POST /v1/chat/completions`` by replaying a transcript.

    :param transcript: the assistant turns to replay (a :class:`Transcript` or a file path).
    :param api_key: the one key accepted.
    :param model: the one model served.
    :param variables: values for ``${name}`` in the turns' arguments and content.
    :param delay_seconds: seconds to wait before each answer.
    """

    def __init__(
        self,
        transcript: Transcript | str | Path,
        *,
        api_key: str,
        model: str = "faultcat-test-model",
        variables: dict[str, Any] | None = None,
        delay_seconds: float = 0.0,
    ) -> None:
        super().__init__()
        self.transcript = transcript if isinstance(transcript, Transcript) else Transcript.load(transcript)
        self.api_key = api_key
        self.model = model
        self.variables = {k: str(v) for k, v in (variables or {}).items()}
        self.delay_seconds = delay_seconds
        self._state = _State()

    @property
    def api_url(self) -> str:
        """The base URL for the client, ``http://127.0.0.1:<port>/v1``."""
        return f"{self.url}/v1"

    @property
    def completions(self) -> list[dict[str, Any]]:
        """The request bodies answered with a completion, oldest first."""
        with self.lock:
            return list(self._state.completions)

    # ---- HTTP --------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], raw: bytes
    ) -> tuple[Any, Response]:
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode("utf-8", "replace")
        if (method, path) != ("POST", "/v1/chat/completions"):
            return body, _error(404, f"Invalid URL ({method} {path})", kind="invalid_request_error")
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            return body, _error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                kind="invalid_request_error",
            )
        key = auth[7:].strip()
        if key != self.api_key:
            shown = f"{key[:3]}***{key[-4:]}" if len(key) > 8 else "***"
            return body, _error(
                401,
                f"Incorrect API key provided: {shown}.",
                kind="invalid_request_error",
                code="invalid_api_key",
            )
        if not isinstance(body, dict):
            return body, _error(
                400, "We could not parse the JSON body of your request.", kind="invalid_request_error"
            )
        problem = self._check(body)
        if problem is not None:
            return body, problem
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        with self.lock:
            turns = self.transcript.turns
            index = self._state.served
            if index >= len(turns):
                if not self.transcript.loop or not turns:
                    return body, _error(
                        400, "stand-in: the transcript has no more turns", kind="invalid_request_error"
                    )
                index = len(turns) - 1
            self._state.served += 1
            self._state.completions.append(body)
            return body, Response(200, self._completion(turns[index], self._state.served, body))

    def _check(self, body: dict[str, Any]) -> Response | None:
        """The error the real API answers to a malformed request (None: well formed)."""
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return _error(
                400, "you must provide a model parameter", kind="invalid_request_error", param="model"
            )
        if model != self.model:
            return _error(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                kind="invalid_request_error",
                code="model_not_found",
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return _error(
                400, "'messages' must be a non-empty array", kind="invalid_request_error", param="messages"
            )
        open_calls: set[str] = set()
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                return _error(
                    400,
                    f"Invalid value for 'messages[{i}].role'",
                    kind="invalid_request_error",
                    param=f"messages[{i}]",
                )
            role, content = message["role"], message.get("content")
            if role == "tool":
                if message.get("tool_call_id") not in open_calls or not isinstance(content, str):
                    return _error(
                        400,
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                        "message with 'tool_calls'.",
                        kind="invalid_request_error",
                        param=f"messages.[{i}].role",
                    )
                open_calls.discard(message["tool_call_id"])
                continue
            if open_calls:
                return _error(
                    400,
                    "An assistant message with 'tool_calls' must be followed by tool messages responding "
                    f"to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                    f"{', '.join(sorted(open_calls))}",
                    kind="invalid_request_error",
                    param="messages",
                )
            if role == "assistant" and message.get("tool_calls"):
                open_calls = {call.get("id") for call in message["tool_calls"] if isinstance(call, dict)}
            elif not isinstance(content, str):
                return _error(
                    400,
                    f"Invalid type for 'messages[{i}].content': expected a string.",
                    kind="invalid_request_error",
                    param=f"messages[{i}].content",
                )
        tools = body.get("tools")
        if not isinstance(tools, list) or not tools:
            return _error(400, "stand-in: 'tools' is required", kind="invalid_request_error", param="tools")
        for i, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if (
                not isinstance(function, dict)
                or tool.get("type") != "function"
                or not isinstance(function.get("name"), str)
                or not isinstance(function.get("parameters", {}), dict)
            ):
                return _error(
                    400, f"Invalid value for 'tools[{i}]'", kind="invalid_request_error", param=f"tools[{i}]"
                )
        return None

    def _fill(self, text: str) -> str:
        return string.Template(text).safe_substitute(self.variables)

    def _completion(self, turn: dict[str, Any], sequence: int, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        if turn.get("tool_calls"):
            message["tool_calls"] = [
                {
                    "id": f"call_{sequence:04d}{n:02d}",
                    "type": "function",
                    "function": {
                        "name": call["name"],
                        "arguments": self._fill(
                            call["arguments"]
                            if isinstance(call["arguments"], str)
                            else json.dumps(call["arguments"])
                        ),
                    },
                }
                for n, call in enumerate(turn["tool_calls"])
            ]
            finish = "tool_calls"
        else:
            message["content"] = self._fill(turn.get("content", ""))
            finish = "stop"
        prompt_tokens = len(json.dumps(body["messages"])) // 4
        completion_tokens = len(json.dumps(message)) // 4
        return {
            "id": f"chatcmpl-standin{sequence:06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
