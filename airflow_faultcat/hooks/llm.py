"""The I/O of the optional LLM explorer (:mod:`airflow_faultcat.core.llm`): the model and the probes.

:class:`LlmExplorer` talks to an OpenAI-compatible chat completions API with the official
``openai`` client (``pip install airflow-faultcat[llm]``). The model may call only the read-only
probe tool, within a step ceiling (model calls) and a time ceiling (the whole exploration); its
final answer goes to :func:`~airflow_faultcat.core.llm.judge_answer`. Whatever goes wrong (a
transport error, a ceiling, an answer the judge rejects) is an outcome with ``accepted=False``
and the input diagnosis, never an exception: the caller keeps the deterministic diagnosis.

Every message is scrubbed when it is made, and checked again just before it is sent: a message
whose text would change under the scrubber is never sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from airflow_faultcat.core.llm import (
    PROBE_TOOL,
    LlmSettings,
    build_messages,
    judge_answer,
    number_evidence,
    parse_probe_call,
)
from airflow_faultcat.core.models import Diagnosis, Evidence
from airflow_faultcat.core.probes import ProbeResult, ProbeSpec
from airflow_faultcat.core.probes.catalogue import probe_evidence
from airflow_faultcat.core.scrub import Scrubber

__all__ = ["LlmExplorer", "LlmOutcome", "UnscrubbedMessageError", "explorer_from_conf"]


class UnscrubbedMessageError(RuntimeError):
    """A message about to be sent to the model still holds something the scrubber would mask."""


class LlmOutcome(BaseModel):
    """What one LLM exploration came to.

    :param accepted: whether the model's answer passed the judge.
    :param diagnosis: the model's diagnosis when accepted, else the input diagnosis unchanged.
    :param problems: why it was rejected (empty when accepted).
    :param steps: how many model calls were made.
    :param probes: the probes run, in order.
    :param seconds: how long the exploration took.
    :param model: the model asked.
    """

    model_config = ConfigDict(extra="forbid")

    accepted: bool
    diagnosis: Diagnosis
    problems: list[str] = Field(default_factory=list)
    steps: int = Field(default=0, ge=0)
    probes: list[ProbeResult] = Field(default_factory=list)
    seconds: float = Field(default=0.0, ge=0)
    model: str = ""


class _Rejected(Exception):
    """Ends an exploration with a rejection (internal)."""


class LlmExplorer:
    """Let an OpenAI-compatible model explore a failure with the read-only probes.

    :param settings: the model, the step ceiling, the time ceiling and the probe timeout.
    :param base_url: the API's base URL, including ``/v1`` (e.g. ``https://api.openai.com/v1``).
    :param api_key: the API key (sent as ``Authorization: Bearer``; masked wherever it appears);
        empty for a server that needs none (``no-key`` is sent, as the client requires one).
    :param run_probe: runs one probe, ``(spec, timeout) -> ProbeResult``, never raising; default
        :func:`airflow_faultcat.hooks.probes.run_probe`.
    :param known_secrets: more values masked in every message (the failure's connection secrets).

    .. seealso:: :func:`explorer_from_conf` for the configured explorer.
    """

    def __init__(
        self,
        settings: LlmSettings,
        *,
        base_url: str,
        api_key: str,
        run_probe: Callable[[ProbeSpec, float], ProbeResult] | None = None,
        known_secrets: Iterable[str] = (),
    ) -> None:
        try:
            import openai
        except ImportError as exc:  # pragma: no cover - the extra is not installed
            raise ImportError(
                "the LLM explorer needs the openai package: pip install 'airflow-faultcat[llm]'"
            ) from exc
        if run_probe is None:
            from airflow_faultcat.hooks.probes import run_probe
        self.settings = settings
        self.base_url = base_url
        self._openai = openai
        self._run_probe = run_probe
        self._scrubber = Scrubber([*known_secrets, *([api_key] if api_key else [])])
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "no-key", timeout=settings.timeout_seconds, max_retries=0
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    # ---- the loop ------------------------------------------------------------------------------

    def explore(self, diagnosis: Diagnosis) -> LlmOutcome:
        """Explore ``diagnosis`` with the model; never raises.

        :param diagnosis: the deterministic diagnosis (with its FailureContext).
        :return: the outcome; its diagnosis is the input unchanged unless ``accepted``.
        """
        started = time.monotonic()
        deadline = started + self.settings.timeout_seconds
        probes: list[ProbeResult] = []
        state = {"steps": 0}

        def outcome(accepted: bool, new: Diagnosis | None, problems: list[str]) -> LlmOutcome:
            return LlmOutcome(
                accepted=accepted,
                diagnosis=new if accepted and new is not None else diagnosis,
                problems=[self._scrubber.scrub(p)[:1000] for p in problems],
                steps=state["steps"],
                probes=probes,
                seconds=round(time.monotonic() - started, 3),
                model=self.settings.model,
            )

        if not diagnosis.findings:
            return outcome(False, None, ["no findings to explore"])
        try:
            new, problems = self._loop(diagnosis, deadline, probes, state)
        except _Rejected as exc:
            return outcome(False, None, [str(exc)])
        except Exception as exc:  # never raise: the deterministic diagnosis stands
            return outcome(False, None, [f"the LLM explorer failed: {type(exc).__name__}: {exc}"])
        return outcome(new is not None, new, problems)

    def _loop(
        self, diagnosis: Diagnosis, deadline: float, probes: list[ProbeResult], state: dict[str, int]
    ) -> tuple[Diagnosis | None, list[str]]:
        numbered = number_evidence(diagnosis)
        evidence_by_id: dict[str, Evidence] = dict(numbered)
        probed_ids: set[str] = set()
        messages = build_messages(diagnosis, numbered, scrubber=self._scrubber)
        while True:
            if state["steps"] >= self.settings.max_steps:
                raise _Rejected(f"step ceiling reached ({self.settings.max_steps} model calls)")
            message = self._ask(messages, deadline)
            state["steps"] += 1
            tool_calls = list(message.tool_calls or [])
            if not tool_calls:
                return judge_answer(
                    message.content or "",
                    diagnosis,
                    evidence_by_id,
                    probed_ids,
                    model=self.settings.model,
                    scrubber=self._scrubber,
                )
            messages.append(self._assistant_message(message.content, tool_calls))
            for call in tool_calls:
                content = self._tool_result(call, deadline, probes, evidence_by_id, probed_ids)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": content})

    def _ask(self, messages: list[dict[str, Any]], deadline: float) -> Any:
        """One model call with the time left; the assistant message it returns."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Rejected(f"time ceiling reached ({self.settings.timeout_seconds:g} s)")
        self._ensure_scrubbed(messages)
        openai = self._openai
        try:
            response = self._client.chat.completions.create(
                model=self.settings.model,
                messages=messages,
                tools=[PROBE_TOOL],
                tool_choice="auto",
                timeout=remaining,
            )
        except openai.APITimeoutError as exc:
            if time.monotonic() >= deadline - 0.05:
                raise _Rejected(
                    f"time ceiling reached ({self.settings.timeout_seconds:g} s) waiting for the model"
                ) from exc
            raise _Rejected(f"the model call timed out: {exc}") from exc
        except openai.APIStatusError as exc:
            raise _Rejected(f"the model call failed: HTTP {exc.status_code}: {exc.message}") from exc
        except openai.APIError as exc:
            raise _Rejected(f"the model call failed: {type(exc).__name__}: {exc}") from exc
        if not response.choices:
            raise _Rejected("the model returned no choices")
        return response.choices[0].message

    def _assistant_message(self, content: str | None, tool_calls: list[Any]) -> dict[str, Any]:
        """The model's tool-call turn as it is sent back (scrubbed like everything else)."""
        calls = []
        for call in tool_calls:
            function = getattr(call, "function", None)
            calls.append(
                {
                    "id": call.id,
                    "type": "function",
                    "function": {
                        "name": getattr(function, "name", "") or "",
                        "arguments": self._scrubber.scrub(getattr(function, "arguments", "") or ""),
                    },
                }
            )
        return {
            "role": "assistant",
            "content": self._scrubber.scrub(content) if content else None,
            "tool_calls": calls,
        }

    def _tool_result(
        self,
        call: Any,
        deadline: float,
        probes: list[ProbeResult],
        evidence_by_id: dict[str, Evidence],
        probed_ids: set[str],
    ) -> str:
        """Run the probe a tool call asks for (or refuse it) and say what came of it, as JSON."""
        function = getattr(call, "function", None)
        name = getattr(function, "name", None)
        if name != "probe":
            return self._json({"error": f"unknown tool {name!r}: the only tool is probe; nothing was run"})
        try:
            spec = parse_probe_call(function.arguments or "")
        except ValueError as exc:
            return self._json({"error": f"refused, nothing was run: {exc}"})
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            raise _Rejected(f"time ceiling reached ({self.settings.timeout_seconds:g} s) before a probe")
        result = self._run_probe(spec, min(self.settings.probe_timeout_seconds, remaining))
        probes.append(result)
        evidence_id = f"E{len(evidence_by_id) + 1}"
        evidence = probe_evidence(result)
        evidence_by_id[evidence_id] = evidence.model_copy(
            update={"text": self._scrubber.scrub(evidence.text)}
        )
        probed_ids.add(evidence_id)
        return self._json(
            {
                "evidence_id": evidence_id,
                "kind": spec.kind,
                "target": spec.target,
                "status": result.status,
                "call": result.call,
                "output": result.output,
                "observed": result.observed,
                "duration_ms": result.duration_ms,
            }
        )

    def _json(self, payload: dict[str, Any]) -> str:
        text = json.dumps(self._scrubber.scrub_obj(payload), ensure_ascii=False, default=str)
        return self._scrubber.scrub(text)

    def _ensure_scrubbed(self, messages: list[dict[str, Any]]) -> None:
        """Refuse to send any message whose text the scrubber would still change."""
        for index, message in enumerate(messages):
            texts = [message.get("content")] + [
                call["function"]["arguments"] for call in message.get("tool_calls") or []
            ]
            for text in texts:
                if isinstance(text, str) and self._scrubber.scrub(text) != text:
                    raise _Rejected(
                        f"refused to send: message {index} ({message.get('role')}) is not scrubbed"
                    )


def explorer_from_conf(known_secrets: Iterable[str] = ()) -> LlmExplorer | None:
    """The explorer the ``[faultcat]`` section configures, or None when ``llm_enabled`` is off.

    :param known_secrets: values masked in every message besides the format rules and the API
        key (the secrets of the failure's connections, say).

    The API comes from the Airflow connection ``llm_conn_id``: its host is the base URL including
    ``/v1``, its password the API key. The model is ``llm_model``; the ceilings ``llm_max_steps``
    and ``llm_timeout_seconds``.

    :raises ValueError: naming the option when the configuration is incomplete or invalid.
    """
    from airflow_faultcat import conf

    if not conf.get_bool("llm_enabled"):
        return None
    model = conf.get_str("llm_model")
    if not model:
        raise ValueError(f"[{conf.SECTION}] llm_model must be set when llm_enabled is true")
    try:
        settings = LlmSettings(
            model=model,
            max_steps=conf.get_int("llm_max_steps"),
            timeout_seconds=conf.get_float("llm_timeout_seconds"),
        )
    except ValidationError as exc:
        err = exc.errors()[0]
        name = {"max_steps": "llm_max_steps", "timeout_seconds": "llm_timeout_seconds"}.get(
            str(err["loc"][0]), str(err["loc"][0])
        )
        raise ValueError(f"[{conf.SECTION}] {name}: {err['msg']}") from None
    from airflow.sdk import BaseHook

    conn_id = conf.get_str("llm_conn_id")
    connection = BaseHook.get_connection(conn_id)
    base_url = (connection.host or "").strip()
    if "://" not in base_url:
        raise ValueError(
            f"connection {conn_id!r} ([{conf.SECTION}] llm_conn_id): host must be the API's base URL "
            f"including /v1, e.g. https://api.openai.com/v1"
        )
    return LlmExplorer(
        settings,
        base_url=base_url.rstrip("/"),
        api_key=connection.password or "",
        known_secrets=known_secrets,
    )
