"""The shape of one pattern in the library, and how specific it is."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from airflow_faultcat.core.models import Category, Severity

#: ``<prefix>_<NNN>``: lowercase words joined by ``_``, then at least three digits.
PATTERN_ID_RE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*_[0-9]{3,}$")


def literal_length(regex: str) -> int:
    """Count the literal characters every match of ``regex`` must contain.

    A rough measure of how specific a regex is: ``password authentication failed`` has 31,
    ``(error|fail)`` has 4 (the shorter alternative), ``amqps?://`` has 7 (an optional character
    does not count). Classes, escapes such as ``\\s`` and ``.`` count nothing; escaped
    punctuation (``\\.``) counts as literal.

    :param regex: a regex in the library's dialect.
    :return: the number of literal characters on the weakest path through the regex.
    """
    length, _ = _literal_alternatives(regex, 0)
    return length


def _literal_alternatives(regex: str, i: int) -> tuple[int, int]:
    """Parse alternatives from ``i`` up to a closing ``)``; return (shortest literal length, end)."""
    best: int | None = None
    current = 0
    last = 0  # literal length of the previous element, undone by an optional quantifier
    while i < len(regex):
        ch = regex[i]
        if ch == ")":
            break
        if ch == "|":
            best = current if best is None else min(best, current)
            current = last = 0
            i += 1
            continue
        if ch == "(":
            j = i + 1
            if regex.startswith("?:", j):
                j += 2
            last, i = _literal_alternatives(regex, j)
            i += 1  # past ")"
        elif ch == "[":
            j = i + 1
            if j < len(regex) and regex[j] == "^":
                j += 1
            if j < len(regex) and regex[j] == "]":
                j += 1
            while j < len(regex) and regex[j] != "]":
                j += 2 if regex[j] == "\\" else 1
            last, i = 0, j + 1
        elif ch == "\\":
            nxt = regex[i + 1 : i + 2]
            last, i = (0 if nxt.isalnum() else 1), i + 2
        elif ch in "*?":
            current -= last
            last, i = 0, i + 1
            continue
        elif ch == "{":
            j = regex.find("}", i)
            j = len(regex) - 1 if j < 0 else j
            if regex[i + 1 : j].split(",")[0].strip() in ("", "0"):
                current -= last
            last, i = 0, j + 1
            continue
        elif ch == "+":
            last, i = 0, i + 1
            continue
        elif ch in ".^$":
            last, i = 0, i + 1
        else:
            last, i = (1 if not ch.isspace() or current else 0), i + 1
        current += last
    best = current if best is None else min(best, current)
    return max(best, 0), i


#: Limits a regex of a pattern file must keep (the shipped ones are far below them).
MAX_REGEX_LENGTH = 4096
MAX_NESTING = 32


def _nesting(regex: str) -> int:
    """How deep the regex's groups nest (escaped and bracketed parentheses do not count)."""
    depth = deepest = 0
    escaped = in_class = False
    for ch in regex:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth = max(0, depth - 1)
    return deepest


#: A regex with this many literal characters counts as fully specific; one with none, as the floor.
SPECIFIC_LITERAL = 30
SPECIFICITY_FLOOR = 0.5
#: How much a ``generic: true`` pattern's specificity is scaled down.
GENERIC_FACTOR = 0.55


class Pattern(BaseModel):
    """One failure signature: regexes plus what they mean and what to do about them.

    :param pattern_id: stable id (``postgres_003``); saved in bundles and history, never reused.
    :param category: the root-cause category a match points to (never ``UNKNOWN``).
    :param severity: how bad the failure is.
    :param regexes: one or more regexes in the library's dialect; a line matching any is a hit.
    :param description: one line saying what failed.
    :param services_affected: lowercase service names.
    :param recovery_hint: one sentence for a human.
    :param remediation: concrete steps; diagnostic commands are shown as text, never executed.
    :param generic: a catch-all that should weigh less than a specific pattern.
    :param symptom: the line says *that* the task failed or was stopped (a SIGTERM, a non-zero exit,
        ``Task failed with exception``), not why: it weighs less whenever a line that is not a
        symptom also matched.
    :param examples: lines the pattern must match.
    :param counterexamples: lines the pattern must not match.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern_id: str
    category: Category
    severity: Severity
    regexes: list[str] = Field(min_length=1)
    description: str = Field(min_length=1)
    services_affected: list[str] = Field(default_factory=list)
    recovery_hint: str = ""
    remediation: list[str] = Field(default_factory=list)
    generic: bool = False
    symptom: bool = False
    examples: list[str] = Field(min_length=1)
    counterexamples: list[str] = Field(min_length=1)

    @field_validator("pattern_id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not PATTERN_ID_RE.match(value):
            raise ValueError(f"pattern_id {value!r} must look like 'family_001' (lowercase, then _NNN)")
        return value

    @field_validator("category")
    @classmethod
    def _not_unknown(cls, value: Category) -> Category:
        if value is Category.UNKNOWN:
            raise ValueError("UNKNOWN is the absence of a match, not a pattern category")
        return value

    @field_validator("regexes")
    @classmethod
    def _check_regexes(cls, value: list[str]) -> list[str]:
        for regex in value:
            if not regex.strip():
                raise ValueError("a regex must not be empty")
            if "\n" in regex:
                raise ValueError(f"regex {regex!r} must not contain a newline (matching is per line)")
            if regex.startswith("(?") and not regex.startswith("(?:"):
                raise ValueError(
                    f"regex {regex!r}: inline flags are not allowed (matching is always caseless)"
                )
            if len(regex) > MAX_REGEX_LENGTH:
                raise ValueError(f"a regex is {len(regex)} characters long; at most {MAX_REGEX_LENGTH}")
            if _nesting(regex) > MAX_NESTING:
                raise ValueError(f"regex {regex[:60]!r}... nests groups more than {MAX_NESTING} deep")
        return value

    def regex_specificity(self, index: int) -> float:
        """0-1: how specific the regex at ``index`` is (lower for ``generic`` patterns)."""
        literal = literal_length(self.regexes[index])
        value = (
            SPECIFICITY_FLOOR + (1 - SPECIFICITY_FLOOR) * min(literal, SPECIFIC_LITERAL) / SPECIFIC_LITERAL
        )
        return round(value * (GENERIC_FACTOR if self.generic else 1.0), 4)
