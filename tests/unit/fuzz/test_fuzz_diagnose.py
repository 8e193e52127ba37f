"""Fuzzing the analyzer: any log gets a valid, deterministic diagnosis within its budget.

Properties, for arbitrary text, log-like text, bytes and streams:

- ``diagnose`` never raises; the root cause is a :class:`Category`, every confidence is in [0, 1];
- every evidence line quotes text that is in the input, at the line it names, and the evidence is
  bounded in count and size;
- the same input gives the same diagnosis, on both matching engines;
- time is proportional to the input's size (with a floor), memory a small multiple of it.
"""

from __future__ import annotations

import copy
import io
import json
import re
import string

from hypothesis import assume, example, given
from hypothesis import strategies as st

from airflow_faultcat.core.diagnose import MAX_EVIDENCE_TEXT, MAX_FINDINGS, Analyzer
from airflow_faultcat.core.models import Category, Diagnosis, FailureContext
from airflow_faultcat.core.scrub import Scrubber, _is_placeholder
from tests.unit.fuzz.budget import FUZZ, MB, Budget, comparable, examples, settings
from tests.unit.fuzz.logs import any_text, library_phrases, lines, log_texts, mutated_phrases, phrases

#: A log of N bytes gets 10 s plus 40 s per MiB, and 32 MiB plus 8 bytes per byte.
BUDGET = Budget(seconds=10.0, seconds_per_mb=40.0, memory=32 * MB, memory_factor=8)


def _encoded(log: str | bytes) -> bytes:
    return log.encode("utf-8") if isinstance(log, str) else log


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _strings(value: object) -> list[str]:
    """Every string (keys too) in a decoded JSON value; strings holding JSON are decoded too."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
            if item.lstrip().startswith("{"):
                try:
                    stack.append(json.loads(item.lstrip()))
                except (ValueError, RecursionError):
                    pass
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _readable(raw: bytes) -> str:
    """All the text an evidence excerpt of this input line may quote."""
    text = raw.decode("utf-8", "replace").rstrip("\r")
    parts = [text]
    if text.lstrip().startswith("{"):
        try:
            parts.extend(_strings(json.loads(text.lstrip())))
        except (ValueError, RecursionError):
            pass
    return "\n".join(parts)


_PEM_FOOTER = re.compile(r"^ ?-----END[ +][A-Za-z0-9 +]*-----")


def _fragments(text: str, detail: bool) -> list[str]:
    """The pieces of an evidence text that must come from the input: what is around ``***``."""
    pieces = text.split("***")
    out = []
    for i, piece in enumerate(pieces):
        if i > 0:
            piece = _PEM_FOOTER.sub("", piece)  # a PEM marker's footer is rebuilt from its header
        if i < len(pieces) - 1 and piece.endswith(" "):
            piece = piece[:-1]  # the space a PEM marker puts before ***
        if i == len(pieces) - 1 and len(text) >= MAX_EVIDENCE_TEXT:
            piece = piece.rstrip("*")  # a mask cut by the length limit
        # An error_detail line is written "Type: value" from two JSON fields.
        out.extend(p for p in (piece.split(": ") if detail else [piece]) if p and p != "Exception")
    return out


def check_diagnosis(
    analyzer: Analyzer, diagnosis: Diagnosis, data: bytes, context: FailureContext | None = None
) -> None:
    """Assert the structural properties every diagnosis of ``data`` must have."""
    assert isinstance(diagnosis, Diagnosis)
    assert diagnosis.root_cause in set(Category)
    assert 0.0 <= diagnosis.confidence <= 1.0
    if diagnosis.root_cause is Category.UNKNOWN:
        assert diagnosis.confidence == 0.0
    else:
        assert diagnosis.findings and diagnosis.findings[0].category is diagnosis.root_cause
    total = _line_count(data)
    assert diagnosis.stats.bytes_scanned == len(data)
    assert diagnosis.stats.lines_scanned == total
    lines = data.split(b"\n")
    exception = traceback = ""
    if context is not None and (context.exception_type or context.exception_message):
        exception = f"{context.exception_type or 'Exception'}: {context.exception_message or ''}"
        exception = "\n".join(_readable(line) for line in exception.encode("utf-8").split(b"\n"))
    if context is not None and context.traceback:
        traceback = "\n".join(_readable(line) for line in context.traceback.encode("utf-8").split(b"\n"))
    scorables = len(analyzer.library) + sum(len(t.table.entries) for t in analyzer.signals.tables)
    assert len(diagnosis.findings) <= min(scorables, MAX_FINDINGS)
    for finding in diagnosis.findings:
        assert finding.category is not Category.UNKNOWN
        assert 0.0 <= finding.confidence <= 1.0
        assert len(finding.evidence) <= analyzer.keep + 3  # the first N and the last 3
        for evidence in finding.evidence:
            assert len(evidence.text) <= MAX_EVIDENCE_TEXT
            if evidence.source == "log":
                assert evidence.line is not None and 1 <= evidence.line <= total, evidence
                source = _readable(lines[evidence.line - 1])
            elif evidence.source == "exception":
                source = exception
            else:
                assert evidence.source == "traceback", evidence
                source = traceback
            for piece in _fragments(evidence.text, evidence.field == "error_detail"):
                assert piece in source, (piece, evidence)


def _comparable(diagnosis: Diagnosis) -> dict:
    return diagnosis.model_dump(mode="json", exclude={"stats": {"duration_ms", "engine"}})


def diagnose_checked(
    analyzer: Analyzer, log: str | bytes, context: FailureContext | None = None
) -> Diagnosis:
    """Diagnose ``log`` twice (timed, then traced), within the budget, and check the result."""
    data = _encoded(log)
    diagnosis = BUDGET.run(len(data), lambda: analyzer.diagnose(log, context=context))
    check_diagnosis(analyzer, diagnosis, data, context)
    return diagnosis


#: Diagnosed between two diagnoses of the same input: state left by one call must not leak.
_OTHER_LOG = "\n".join(library_phrases()[::50])


@settings(FUZZ, max_examples=examples(60))
@given(text=st.text(st.characters(codec="utf-8"), max_size=2_000))
@example(text="")
@example(text="\x00" * 1_000)
@example(text="\r\r\n\n\r")
def test_arbitrary_text(analyzer, text):
    first = diagnose_checked(analyzer, text)
    analyzer.diagnose(_OTHER_LOG)
    assert _comparable(analyzer.diagnose(text)) == _comparable(first)


@settings(FUZZ, max_examples=examples(60))
@given(text=log_texts())
def test_log_like_text(analyzer, text):
    first = diagnose_checked(analyzer, text)
    analyzer.diagnose(_OTHER_LOG)
    assert _comparable(analyzer.diagnose(text)) == _comparable(first)


@settings(FUZZ, max_examples=examples(50))
@given(data=st.binary(max_size=4_000) | log_texts().map(lambda t: t.encode("utf-8", "replace")))
@example(data=b"\xff\xfe\x00\x00" * 500)
@example(data=b"\x80ERROR Connection refused\xc3\n")
def test_bytes_and_streams(analyzer, data):
    as_bytes = diagnose_checked(analyzer, data)
    as_stream = analyzer.diagnose(io.BytesIO(data))
    assert comparable(as_stream) == comparable(as_bytes)
    decoded = data.decode("utf-8", errors="replace")
    diagnose_checked(analyzer, decoded)


@settings(FUZZ, max_examples=examples(40))
@given(
    context=st.builds(
        FailureContext,
        exception_type=st.none() | st.sampled_from(["OSError", "psycopg2.OperationalError"]) | any_text,
        exception_message=st.none() | phrases | any_text,
        traceback=st.none() | log_texts(),
    ),
    text=st.none() | log_texts(),
)
def test_with_a_failure_context(analyzer, context, text):
    data = _encoded(text) if text is not None else b""
    diagnosis = BUDGET.run(len(data), lambda: analyzer.diagnose(text, context=context))
    check_diagnosis(analyzer, diagnosis, data, context)


@settings(FUZZ, max_examples=examples(100))
@given(
    log=st.lists(st.one_of(mutated_phrases(), log_texts()), max_size=6).map("\n".join)
    | st.binary(max_size=2_000)
)
@example(log="task died: ConnectionResetError\n")  # a match ending past the line break
@example(log='x\n"exc_type"\n: Connection refused\n')  # a match across the line break
@example(log="pymysql.err.OperationalError: (2003, \"Can’t connect to MySQL server on 'db' (111)\")")
@example(log="\u212aeyError: 'x'\n")  # KELVIN SIGN folds onto k in RE2
def test_engines_agree(analyzer, re2_analyzer, log):
    assert _comparable(re2_analyzer.diagnose(log)) == _comparable(analyzer.diagnose(log))


@st.composite
def repeated_logs(draw: st.DrawFn) -> str:
    """A retry loop: 64-400 lines drawn from 1-6 distinct log-like lines."""
    distinct = draw(st.lists(lines.filter(lambda line: "\n" not in line), min_size=1, max_size=6))
    order = draw(st.lists(st.integers(0, len(distinct) - 1), min_size=64, max_size=400))
    return "\n".join(distinct[i] for i in order) + draw(st.sampled_from(["", "\n"]))


@settings(FUZZ, max_examples=examples(60))
@given(log=repeated_logs())
@example(log="ERROR - ConnectionRefusedError: [Errno 111] Connection refused\n" * 100)
@example(log="Traceback (most recent call last):\n    f()\nOSError: [Errno 28] No space left\n" * 30)
def test_repeated_lines_diagnose_as_when_read_one_by_one(analyzer, log):
    """A block of few distinct lines is matched once per distinct line; nothing else changes."""
    from unittest import mock

    from airflow_faultcat.core import diagnose

    fast = _comparable(analyzer.diagnose(log))
    with mock.patch.object(diagnose, "_REPEAT_MIN_LINES", 1 << 40):
        slow = _comparable(analyzer.diagnose(log))
    assert fast == slow


_FILLER = st.sampled_from(
    [
        "[2026-11-20T10:00:00.123+0000] {logging_mixin.py:190} INFO - step ok",
        '{"timestamp": "2026-11-20T10:00:00Z", "level": "info", "event": "batch loaded"}',
        "x" * 200,
        "",
    ]
)


@st.composite
def large_logs(draw: st.DrawFn) -> str:
    """0.2-1.5 MiB of filler with a few library phrases anywhere, across the 1 MiB block edges."""
    filler = draw(_FILLER)
    count = draw(st.integers(200_000, 3 * MB // 2)) // (len(filler) + 1)
    body = [filler] * count
    for _ in range(draw(st.integers(0, 5))):
        body[draw(st.integers(0, count - 1))] = draw(st.one_of(phrases, st.sampled_from(["Traceback"])))
    return "\n".join(body)


@settings(FUZZ, max_examples=examples(4))
@given(text=large_logs())
@example(text="a" * (5 * MB))  # one line longer than the analyzer reads at once
@example(text=("Connection refused error\n" * 4_000))  # every line a hit (100 KB)
def test_large_logs_stay_in_budget(analyzer, text):
    diagnose_checked(analyzer, text)


#: A secret's characters: upper case and digits, which the line around it never holds.
_SECRET = st.text(string.ascii_uppercase + string.digits, min_size=12, max_size=40)


@settings(FUZZ, max_examples=examples(40))
@given(secret=_SECRET, pad=st.integers(0, MAX_EVIDENCE_TEXT + 20))
@example(secret="S3CRETVALUE0123456789", pad=MAX_EVIDENCE_TEXT - 60)
def test_known_secret_never_shows_in_evidence(analyzer, secret, pad):
    assume(not _is_placeholder(secret))  # "AAAAAAAAAAAA" is no secret to the scrubber
    # The Analyzer's scrubber, with a known secret: no other state changes.
    scrubbing = copy.copy(analyzer)
    scrubbing.scrubber = Scrubber([secret])
    line = "fatal: password authentication failed for user etl " + "." * pad + secret + " and more"
    diagnosis = scrubbing.diagnose(f"info start\n{line}\n")
    windows = {secret[i : i + 4] for i in range(len(secret) - 3)}
    for finding in diagnosis.findings:
        for evidence in finding.evidence:
            assert not any(w in evidence.text for w in windows), evidence.text
