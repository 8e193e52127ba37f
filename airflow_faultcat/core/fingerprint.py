"""Fingerprints: one stable id for "the same failure", and what its history says about it.

A fingerprint hashes the task identity (dag_id, task_id; never run_id or try), the exception type
and either the pattern that explained the failure or, when none did, its message reduced to a
template: UUIDs, timestamps, URLs, addresses, paths, hex ids and numbers replaced by placeholders.
Two runs of the same failure share it; two causes in one task do not.

The masks run on RE2 (linear time): log text is untrusted. Drain3, the usual log-template library,
was considered and not used: its masking is a list of regular expressions like these, on Python's
backtracking ``re``, and it pins ``cachetools`` 4, which Airflow 3 cannot install alongside.

Flake status comes from a fingerprint's recent events (see :func:`flake_status`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from airflow_faultcat.core.models import Category

#: Placeholders, in the order the masks are applied (most specific first).
_MASKS: tuple[tuple[str, str], ...] = (
    (r"[A-Za-z][A-Za-z0-9+.-]{1,15}://[^\s'\"<>()\[\]{},]+", "<URL>"),
    # A path starts a word ("TCP/IP" is not one) and swallows the ids and dates inside it.
    (r"(^|[\s'\"=(\[])(?:~|\.{1,2})?(?:/[A-Za-z0-9._@%+=-]+)+/?", r"\1<PATH>"),
    (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "<UUID>"),
    (
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?",
        "<TS>",
    ),
    (r"\d{2}:\d{2}:\d{2}(?:[.,]\d+)?", "<TS>"),
    # An address and a host name stand in the same place: one placeholder for both.
    (r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b", "<HOST>"),
    (r"\[?[0-9a-fA-F]{0,4}(?::[0-9a-fA-F]{0,4}){2,7}\]?(?::\d{1,5})?", "<HOST>"),
    # Lower-case dotted host names ending in a letters-only label (modules are CamelCase or
    # short; hosts like db-3.prod.example.com are what differs between runs).
    (
        r"\b[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?){2,}\.?(?::\d{1,5})?\b",
        "<HOST>",
    ),
)
#: Templates are cut here: the head of a message names the failure.
MAX_TEMPLATE_CHARS = 300


#: A word and the character before it, for the last mask (numbers, ids, generated names).
_WORD = r"(^|[^A-Za-z0-9_])([A-Za-z0-9_]+)"
#: What a number, a hex id or a generated name becomes: one placeholder, since the same slot
#: holds a decimal in one run and a hex digest in the next.
VARIABLE = "<*>"
_HEX_CHARS = frozenset("0123456789abcdef")


def _mask_word(before: str, word: str) -> str:
    """Mask one word that holds a digit.

    ``5432`` -> ``<*>``; ``7f9c8d2e`` -> ``<*>``; ``worker17`` -> ``worker<*>`` (a name and its
    index); ``xk2p9`` after a hyphen (``etl-7f9c-xk2p9``, a generated suffix) -> ``<*>``.
    """
    if not any(c.isdigit() for c in word):
        # A hex id can lack digits by chance: a long all-hex segment of a generated name.
        generated = before == "-" and len(word) >= 6 and set(word) <= _HEX_CHARS
        return before + (VARIABLE if generated else word)
    if len(word) >= 6 and set(word.lower()) <= _HEX_CHARS:
        return before + VARIABLE
    head = word.rstrip("0123456789")
    named = head and not any(c.isdigit() for c in head) and head.isidentifier()
    # Long words with digits are ids (request ids, digests), not a name and its index.
    if before != "-" and named and len(word) < 13:
        return before + head + VARIABLE
    return before + VARIABLE


@functools.lru_cache(maxsize=1)
def _compiled() -> list[tuple[object, object]]:
    import re2

    options = re2.Options()
    options.max_mem = 64 << 20
    masks: list[tuple[object, object]] = [(re2.compile(p, options), m) for p, m in _MASKS]
    masks.append((re2.compile(_WORD, options), lambda m: _mask_word(m.group(1), m.group(2))))
    return masks


def message_template(message: str | None) -> str:
    """The message with what varies between runs replaced by placeholders, whitespace collapsed.

    ``"connect to 10.0.0.7:5432 failed after 3 tries"`` -> ``"connect to <HOST> failed after <*> tries"``.

    :param message: an exception message or log line (only its first line counts).
    """
    if not message:
        return ""
    text = message.strip().splitlines()[0] if message.strip() else ""
    text = text[: MAX_TEMPLATE_CHARS * 4]
    for regex, mask in _compiled():
        text = regex.sub(mask, text)  # type: ignore[attr-defined]
    return " ".join(text.split())[:MAX_TEMPLATE_CHARS]


class Fingerprint(BaseModel):
    """A failure's fingerprint and what it was computed from.

    :param id: ``fp-`` and 16 hex digits.
    :param dag_id: the Dag.
    :param task_id: the task.
    :param exception_type: the exception's class name (without its module), or ``""``.
    :param basis: ``pattern:<pattern_id>`` or ``template:<message template>``.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    dag_id: str
    task_id: str
    exception_type: str = ""
    basis: str


def fingerprint(
    dag_id: str,
    task_id: str,
    *,
    exception_type: str | None = None,
    pattern_id: str | None = None,
    message: str | None = None,
) -> Fingerprint:
    """The fingerprint of a failure of (dag_id, task_id).

    :param exception_type: the qualified exception class; only its last component counts (the
        same error raised from a moved module is the same failure).
    :param pattern_id: the top finding's pattern; when given, the message is not used.
    :param message: the exception message (or the best evidence line) when no pattern matched.
    """
    short_type = (exception_type or "").rsplit(".", 1)[-1]
    basis = f"pattern:{pattern_id}" if pattern_id else f"template:{message_template(message)}"
    raw = "\0".join([dag_id, task_id, short_type, basis])
    return Fingerprint(
        id="fp-" + hashlib.sha256(raw.encode()).hexdigest()[:16],
        dag_id=dag_id,
        task_id=task_id,
        exception_type=short_type,
        basis=basis,
    )


# -- flakes ---------------------------------------------------------------------------------

FlakeClass = Literal["FLAKE-TIMING", "FLAKE-ENV", "FLAKE-NET", "FLAKE-RES", "FLAKE-EXT", "FLAKE-LOGIC"]

_FLAKE_CLASS: dict[Category, FlakeClass] = {
    Category.TIMEOUT: "FLAKE-TIMING",
    Category.STATE_MISMATCH: "FLAKE-TIMING",
    Category.CONFIGURATION: "FLAKE-ENV",
    Category.CREDENTIAL: "FLAKE-ENV",
    Category.NETWORK: "FLAKE-NET",
    Category.RESOURCE_EXHAUSTION: "FLAKE-RES",
    Category.STORAGE: "FLAKE-RES",
    Category.SERVICE_DEPENDENCY: "FLAKE-EXT",
    Category.VIRTUALIZATION: "FLAKE-EXT",
    Category.UNKNOWN: "FLAKE-LOGIC",
}


def flake_class(category: Category | str) -> FlakeClass:
    """The flake class a root cause suggests when its failure passes on retry.

    Timeouts and races (state changed under the task) are timing; configuration and credentials
    that come and go are host or config drift; network is network; disk and memory pressure are
    resources; a service or hypervisor is an external dependency; anything else is the code.
    """
    return _FLAKE_CLASS.get(Category(category), "FLAKE-LOGIC")


EventKind = Literal["fail", "pass_on_retry", "clean"]
FlakeStatus = Literal["new", "healthy", "flaky", "broken"]


class HistoryEvent(BaseModel):
    """One thing that happened to a fingerprinted task.

    :param kind: ``fail`` (a try failed with this fingerprint), ``pass_on_retry`` (the same
        TaskInstance then succeeded on a later try, nothing changed) or ``clean`` (a later run's
        TaskInstance of this task succeeded on its first try).
    :param at: when (UTC).
    :param run_id: the DagRun.
    :param try_number: the try.
    """

    model_config = ConfigDict(extra="forbid")

    kind: EventKind
    at: datetime
    run_id: str = ""
    try_number: int = Field(default=0, ge=0)


class FlakeSettings(BaseModel):
    """When a fingerprint is flaky, broken or healthy again.

    :param window: how many of the latest TaskInstances (runs) are considered.
    :param flaky_rate: at least this share of them passed on retry -> flaky.
    :param min_runs: no verdict but ``new`` before this many runs.
    :param broken_after: this many runs in a row failed without passing on retry -> broken.
    :param healthy_after: this many clean runs in a row end a flaky or broken status.
    """

    model_config = ConfigDict(extra="forbid")

    window: int = Field(default=10, ge=1)
    flaky_rate: float = Field(default=0.2, gt=0.0, le=1.0)
    min_runs: int = Field(default=2, ge=1)
    broken_after: int = Field(default=3, ge=1)
    healthy_after: int = Field(default=3, ge=1)


def runs_of(events: Sequence[HistoryEvent]) -> list[str]:
    """Each run's outcome, oldest first: ``flaky`` (failed, then passed on retry), ``failed``
    (failed and never passed) or ``clean`` (passed on its first try)."""
    order: list[str] = []
    outcome: dict[str, str] = {}
    for event in sorted(events, key=lambda e: e.at):
        key = event.run_id or f"@{event.at.isoformat()}"
        if key not in outcome:
            order.append(key)
        if event.kind == "pass_on_retry":
            outcome[key] = "flaky"
        elif event.kind == "clean":
            outcome.setdefault(key, "clean")
        elif outcome.get(key) != "flaky":
            outcome[key] = "failed"
    return [outcome[k] for k in order]


def flake_status(
    events: Sequence[HistoryEvent], settings: FlakeSettings | None = None
) -> tuple[FlakeStatus, str]:
    """A fingerprint's status from its events, and one sentence why.

    ``healthy`` once ``healthy_after`` clean runs in a row end the history; otherwise ``broken``
    when the last ``broken_after`` runs all failed for good; ``flaky`` when at least ``flaky_rate``
    of the last ``window`` runs passed on retry; ``new`` before ``min_runs`` runs; else healthy.
    """
    s = settings or FlakeSettings()
    runs = runs_of(events)[-s.window :]
    if not runs:
        return "new", "no run recorded"
    trailing_clean = len(runs) - len("".join("x" if r != "clean" else "." for r in runs).rstrip("."))
    if trailing_clean >= s.healthy_after:
        return "healthy", f"the last {trailing_clean} runs passed on their first try"
    tail = runs[-s.broken_after :]
    if len(tail) == s.broken_after and all(r == "failed" for r in tail):
        return "broken", f"the last {s.broken_after} runs failed and never passed"
    flaky = runs.count("flaky")
    if len(runs) >= s.min_runs and flaky and flaky / len(runs) >= s.flaky_rate:
        return "flaky", f"{flaky} of the last {len(runs)} runs failed and then passed on retry"
    if len(runs) < s.min_runs:
        return "new", f"{len(runs)} run(s) recorded, fewer than {s.min_runs}"
    return "healthy", f"{flaky} of the last {len(runs)} runs passed on retry, under {s.flaky_rate:.0%}"
