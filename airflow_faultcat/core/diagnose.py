"""FailureContext + task log -> Diagnosis: ranked findings with the evidence lines they rest on.

The analyzer streams the log in blocks (memory stays bounded whatever the log's size), collects
*every* pattern match in one linear-time scan (see :mod:`~airflow_faultcat.core.patterns.matcher`)
and ranks the hypotheses:

- **where** a line is: the exception in the FailureContext weighs most, then the lines at and after
  the failure point (the last traceback, ``error_detail`` or "Task failed" line), then earlier
  lines, less the further they are from it;
- **how specific** the pattern is (long literal text beats a short one; ``generic`` ones weigh less);
- the line's **log level** (an ERROR line beats an INFO line);
- **agreement**: other lines and other patterns of the same category raise the category's score.

Confidence comes from the winning score and its margin over the best other category, with a
one-line reason. The same input always gives the same output.

Airflow 3 task logs are JSON lines (``{"event": ..., "level": ..., "error_detail": [...]}``): the
scan reads the raw line, and a line with ``error_detail`` is decoded so that ``exc_type`` and
``exc_value`` are matched as ``Type: value`` text too.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from airflow_faultcat.core import fallback
from airflow_faultcat.core.calibration import Calibration, ConfidenceFeatures, load_calibration
from airflow_faultcat.core.models import (
    Category,
    Diagnosis,
    Evidence,
    FailureContext,
    Finding,
    RuledOut,
    ScanStats,
    Severity,
)
from airflow_faultcat.core.patterns.loader import PatternLibrary, load_library
from airflow_faultcat.core.patterns.matcher import LineHit, MultiMatcher
from airflow_faultcat.core.patterns.signals import Signal, SignalReader
from airflow_faultcat.core.patterns.spec import Pattern

if TYPE_CHECKING:
    from airflow_faultcat.core.scrub import Scrubber

BLOCK_SIZE = 1 << 20
# A line longer than this is matched in its first MAX_LINE_BYTES only (a data dump or a progress
# bar without line breaks): the rest is read and counted, not matched.
MAX_LINE_BYTES = 1 << 20
MAX_EVIDENCE_TEXT = 400
#: A block of at least this many lines, of which at most one in _REPEAT_FACTOR is distinct (a
#: retry loop), is matched line by distinct line (see Analyzer._scan_repeated).
_REPEAT_MIN_LINES = 64
_REPEAT_FACTOR = 4
#: How many last lines of a pattern are kept as evidence, after its first ``evidence_per_pattern``.
LAST_EVIDENCE = 3
#: A diagnosis lists at most this many findings, best first (a log that matches most of the
#: library would otherwise carry one per pattern, each with scrubbed evidence).
MAX_FINDINGS = 64
#: How many distinct lines (and bytes of them) of repeated blocks are remembered with their matches.
_REPEAT_CACHE_LINES = 20_000
_REPEAT_CACHE_BYTES = 8 << 20
#: Longest exception message (its head) and traceback (its tail) a Diagnosis echoes.
MAX_ECHO_TEXT = 20000
# What is kept of a matched line until it is scrubbed and cut to MAX_EVIDENCE_TEXT.
_TEXT_WINDOW = MAX_EVIDENCE_TEXT + 4096  # core.scrub.CUT_MARGIN (a test checks)
#: The pattern_id of the learned fallback's findings.
LEARNED_ID = "learned:fallback"

# Internal regexes scanned with the library's: they locate the failure, not a cause.
_ERROR_DETAIL = r'"(error_detail|exc_type|exc_value)"\s*:'
_FAILURE_MARK = (
    r"Traceback \(most recent call last\)|Task failed with exception|"
    r'"error_detail"\s*:\s*\[|^[A-Za-z_.]*(Error|Exception): |Marking task as (FAILED|UP_FOR_RETRY)'
)
_TRACEBACK = r"^\s*Traceback \(most recent call last\)"
# A chained exception: the one before the connector caused the one after it (Python), or the
# ``Caused by:`` line names the cause (Java).
_CHAIN = (
    r"^\s*(The above exception was the direct cause of the following exception|"
    r"During handling of the above exception, another exception occurred|Caused by: )"
)
# A line that reads like an error, whatever its wording: what the learned fallback reads.
_ERRORISH = (
    r"\b(error|errors|fail|failed|failure|exception|fatal|denied|refused|cannot|can't|unable|invalid|"
    r"timeout|timed out|not found|no such|exceeded|unavailable|killed|forbidden|unauthori[sz]ed|panic|"
    r"aborted|critical|unreachable|insufficient|missing|rejected|expired)\b"
)
#: How many error lines (the latest) the learned fallback may read.
ERROR_LINES = 60
# Where a log record starts: a continuation of an exception message ends there.
_RECORD_START = re.compile(
    rb"^(\[?[0-9]{4}-[0-9]{2}-[0-9]{2}[ T]|\{|Traceback|During handling|The above exception)"
)
# Subprocess output is logged at INFO, so a level weighs only a little.
_LEVEL_WEIGHT = {
    "critical": 1.0,
    "fatal": 1.0,
    "error": 1.0,
    "warning": 0.85,
    "warn": 0.85,
    "info": 0.8,
    "debug": 0.7,
}

#: Weights of where a line comes from (multiplied with specificity and level).
WEIGHT_EXCEPTION = 1.15
#: The first exception of a chain (the cause the later ones wrap) weighs a little more, and the
#: later ones a little less.
WEIGHT_CAUSE = 1.2
WEIGHT_WRAPPER = 1.1
#: A symptom pattern's score is scaled by this when a line that is not a symptom also matched.
SYMPTOM_FACTOR = 0.4
WEIGHT_AT_FAILURE = 1.0
WEIGHT_FAR = 0.4
#: A line just before the failure weighs this much; the weight falls towards WEIGHT_FAR with
#: the distance in lines (DECAY_LINES).
WEIGHT_NEAR = 0.9
DECAY_LINES = 150
#: A competing category backed only by generic patterns counts this much against the winner.
GENERIC_COMPETITION = 0.5


class _Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


@dataclass
class _Hit:
    line: int
    text: str
    source: str = "log"
    field: str | None = None
    level: str | None = None
    regex: int = 0


@dataclass
class _PatternHits:
    first: list[_Hit] = field(default_factory=list)
    last: deque[_Hit] = field(default_factory=lambda: deque(maxlen=LAST_EVIDENCE))
    count: int = 0

    def add(self, hit: _Hit, keep: int) -> None:
        self.count += 1
        if len(self.first) < keep:
            self.first.append(hit)
        else:
            self.last.append(hit)

    def hits(self) -> list[_Hit]:
        return [*self.first, *self.last]


@dataclass(slots=True)
class _SeenLine:
    """A distinct line of a repeated block: the regex ids it matches, its display text and level
    (text, field, level) and its signals, each worked out once."""

    regex_ids: list[int] = field(default_factory=list)
    text: tuple[str, str | None, str | None] | None = None
    signals: list[Signal] | None = None


@dataclass
class _ScanState:
    """What one diagnose call collects while it scans."""

    hits: dict[int, _PatternHits] = field(default_factory=dict)
    marks: list[int] = field(default_factory=list)
    # The latest lines that read like errors: (line number, text), for the learned fallback.
    error_lines: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=ERROR_LINES))
    # Lines that chain one exception to the next ("The above exception ...", "Caused by: ").
    chains: deque[int] = field(default_factory=lambda: deque(maxlen=256))
    # (header, first, last) line numbers of each traceback and of the exception message ending it.
    exception_spans: deque[tuple[int, int, int]] = field(default_factory=lambda: deque(maxlen=64))
    # Bytes of over-long lines past MAX_LINE_BYTES: read, not matched.
    bytes_skipped: int = 0
    # Distinct line of a repeated block -> the regex ids it matches (see Analyzer._scan_repeated).
    repeated_lines: dict[bytes, _SeenLine] = field(default_factory=dict)
    repeated_bytes: int = 0

    def final_exception_weight(self, line: int, failure_line: int | None) -> float | None:
        """The weight of ``line`` if it is an exception message of the failure, else ``None``.

        In a chain the first exception is the cause: it weighs most, the ones wrapping it less.
        """
        if failure_line is None:
            return None
        spans = sorted(span[1:] for span in self.exception_spans if span[1] >= failure_line)
        for rank, (first, last) in enumerate(spans):
            if first <= line <= last:
                if len(spans) == 1:
                    return WEIGHT_EXCEPTION
                return WEIGHT_CAUSE if rank == 0 else WEIGHT_WRAPPER
        if line >= failure_line and line in self.chains:
            return WEIGHT_CAUSE  # a Java "Caused by: " line
        return None


def _exception_span(block: bytes, pos: int, line: int) -> tuple[int, int] | None:
    """Find the exception message after a traceback header (the frames are indented).

    :param block: the text.
    :param pos: the offset just after the ``Traceback (most recent call last):`` line.
    :param line: that header's line number.
    :return: the first and last line numbers of the message (continuation lines included), or
        ``None`` when the traceback is cut off.
    """
    first: int | None = None
    number = line
    for _ in range(500):
        if pos >= len(block):
            break
        end = block.find(b"\n", pos)
        end = len(block) if end < 0 else end
        text = block[pos:end].rstrip(b"\r")
        number += 1
        if first is None:
            if text.lstrip().startswith(b"Traceback"):  # the next traceback: this one is cut off
                return None
            if text.strip() and text[:1] not in (b" ", b"\t"):
                first = number
        elif not text.strip() or number - first > 15 or _RECORD_START.match(text):
            return first, number - 1
        pos = end + 1
    return (first, number) if first is not None else None


@dataclass
class _Scored:
    pattern: Pattern | Signal
    score: float
    best: _Hit
    weight_where: float
    weight_level: float
    hits: list[_Hit]
    count: int


def _level_of(line: bytes) -> str | None:
    """The log level of a line: Airflow 3 JSON ``"level"`` or a ``ERROR -`` / ``[ERROR]`` token."""
    head = line[:300].lower()
    pos = head.find(b'"level"')
    if pos >= 0:
        rest = head[pos + 7 : pos + 30]
        for name in _LEVEL_WEIGHT:
            if f'"{name}"'.encode() in rest:
                return name
    for name in ("critical", "fatal", "error", "warning", "warn", "info", "debug"):
        token = name.encode()
        if b" " + token + b" " in head or b"[" + token + b"]" in head or b"} " + token in head:
            return name
    return None


def _display_text(line: bytes) -> tuple[str, str | None]:
    """The readable text of a log line: the ``event`` of a JSON line, else the line itself.

    It is kept longer than evidence text (:data:`_TEXT_WINDOW`): evidence is scrubbed first and
    cut afterwards, so a secret that straddles the cut is masked whole.
    """
    text = line.decode("utf-8", errors="replace").rstrip("\r")
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            record = json.loads(stripped)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than Python decodes
            record = None
        if isinstance(record, dict) and isinstance(record.get("event"), str):
            return record["event"][:_TEXT_WINDOW], "event"
    return text[:_TEXT_WINDOW], None


#: How deep exception groups and causes are followed in an ``error_detail``.
MAX_DETAIL_DEPTH = 32


def _exception_lines(record: Any, depth: int = 0) -> Iterator[str]:
    """``Type: value`` lines of an Airflow 3 ``error_detail`` (recursing into groups and causes,
    :data:`MAX_DETAIL_DEPTH` levels at most)."""
    if depth > MAX_DETAIL_DEPTH:
        return
    if isinstance(record, dict):
        exc_type, exc_value = record.get("exc_type"), record.get("exc_value")
        if isinstance(exc_type, str) or isinstance(exc_value, str):
            value = exc_value if isinstance(exc_value, str) else ""
            first, *rest = value.split("\n") or [""]
            yield f"{exc_type or 'Exception'}: {first}"
            yield from (r for r in rest if r.strip())
        for key in ("error_detail", "exceptions"):
            yield from _exception_lines(record.get(key), depth + 1)
    elif isinstance(record, list):
        for item in record:
            yield from _exception_lines(item, depth + 1)


def _decode_error_detail(line: bytes) -> list[str]:
    """The exception lines of an Airflow 3 ``error_detail`` record; ``[]`` when it is not JSON.

    A byte that is not UTF-8 (a Latin-1 message) is replaced rather than losing the record.
    """
    try:
        record = json.loads(line.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return []
    return list(_exception_lines(record))


class Analyzer:
    """Diagnoses failures against a pattern library; build once, call :meth:`diagnose` many times.

    :param library: the patterns (default: the shipped library, see
        :func:`~airflow_faultcat.core.patterns.loader.load_library`).
    :param engine: ``"auto"``, ``"hyperscan"`` or ``"re2"`` (see
        :class:`~airflow_faultcat.core.patterns.matcher.MultiMatcher`).
    :param known_secrets: values scrubbed out of evidence text in addition to the format rules.
    :param scrubber: the :class:`~airflow_faultcat.core.scrub.Scrubber` of evidence text (one
        with the run's known values, say); when given, ``known_secrets`` is not used.
    :param min_score: below this winning score the answer is ``UNKNOWN``.
    :param evidence_per_pattern: how many first (and as many last) lines are kept per pattern.
    :param signals: the signal tables (default: the shipped ones, see
        :mod:`~airflow_faultcat.core.patterns.signals`); they decide when no pattern does.
    :param calibration: turns ranking features into a confidence (default: the shipped fit, see
        :mod:`~airflow_faultcat.core.calibration`); ``False`` leaves the raw confidence.
    :param learned: when no pattern or signal decides, let the learned fallback read the error
        lines (:mod:`~airflow_faultcat.core.fallback`; needs scikit-learn).
    """

    def __init__(
        self,
        library: PatternLibrary | None = None,
        *,
        engine: str = "auto",
        known_secrets: Iterable[str] = (),
        min_score: float = 0.15,
        evidence_per_pattern: int = 3,
        signals: SignalReader | None = None,
        calibration: Calibration | bool | None = None,
        learned: bool = True,
        scrubber: Scrubber | None = None,
    ) -> None:
        from airflow_faultcat.core.scrub import Scrubber

        self.library = library if library is not None else load_library()
        self.signals = signals if signals is not None else SignalReader()
        if calibration is None or calibration is True:
            calibration = load_calibration()
        self.calibration: Calibration | None = calibration or None
        self.learned = learned
        self._learned_examples: list[tuple[str, Category]] | None = None
        self._regex_owner: list[tuple[int, int]] = []
        regexes: list[str] = []
        for p_index, pattern in enumerate(self.library.patterns):
            for r_index, regex in enumerate(pattern.regexes):
                regexes.append(regex)
                self._regex_owner.append((p_index, r_index))
        self._n_library = len(regexes)
        # What is scored: the library's patterns, then each signal the first time it is read.
        self._scorables: list[Pattern | Signal] = list(self.library.patterns)
        self._signal_index: dict[Signal, int] = {}
        # Every signal regex feeds one reader: their lines are found in one pass per block.
        signal_ids = list(range(len(regexes), len(regexes) + len(self.signals.scan_regexes)))
        regexes.extend(self.signals.scan_regexes)
        self._id_signals = signal_ids[0] if signal_ids else -1
        self._id_error_detail = len(regexes)
        self._id_failure = len(regexes) + 1
        self._id_traceback = len(regexes) + 2
        self._id_chain = len(regexes) + 3
        self._id_errorish = len(regexes) + 4
        self.matcher = MultiMatcher(
            [*regexes, _ERROR_DETAIL, _FAILURE_MARK, _TRACEBACK, _CHAIN, _ERRORISH],
            engine=engine,
            # Signals and the analyzer's own markers locate their lines from the match ends.
            groups=[signal_ids, *([i] for i in range(self._id_error_detail, self._id_errorish + 1))],
        )
        self.scrubber = scrubber if scrubber is not None else Scrubber(known_secrets)
        self.min_score = min_score
        self.keep = max(1, evidence_per_pattern)

    # -- scanning -----------------------------------------------------------------------------
    def _scan_block(
        self,
        block: bytes,
        line_base: int,
        state: _ScanState,
        source: str = "log",
        field_name: str | None = None,
        fixed_line: int | None = None,
    ) -> None:
        if fixed_line is None and block.count(b"\n") >= _REPEAT_MIN_LINES:
            lines = block.split(b"\n")
            if not lines[-1]:
                lines.pop()
            occurrences: dict[bytes, list[int]] = {}
            for index, line in enumerate(lines):
                seen = occurrences.get(line)
                if seen is None:
                    occurrences[line] = [index]
                else:
                    seen.append(index)
            if len(occurrences) * _REPEAT_FACTOR <= len(lines) and self._scan_repeated(
                block, lines, occurrences, line_base, state, source, field_name
            ):
                return
        # By line, then by regex id from the last (two stable sorts on C keys: a block may hold a
        # hit per line for each of several regexes).
        line_hits = list(self.matcher.scan(block))
        line_hits.sort(key=itemgetter(0), reverse=True)
        line_hits.sort(key=itemgetter(1))
        self._apply_hits(block, line_hits, line_base, state, source, field_name, fixed_line)

    def _apply_hits(
        self,
        block: bytes,
        line_hits: list[LineHit],
        line_base: int,
        state: _ScanState,
        source: str,
        field_name: str | None,
        fixed_line: int | None,
    ) -> None:
        """Record ``line_hits`` (sorted by line, then by regex id from the last) in ``state``."""
        # A JSON line with error_detail is matched through its decoded exception text instead.
        detail_lines = (
            {h.start for h in line_hits if h.regex_id == self._id_error_detail} if source == "log" else set()
        )
        pos, line_no = 0, line_base
        decoded: dict[int, tuple[str, str | None, str | None]] = {}
        # A line repeated in the block (a retry loop) is decoded once.
        decoded_text: dict[bytes, tuple[str, str | None, str | None]] = {}
        for h in line_hits:
            line_no += block.count(b"\n", pos, h.start)
            pos = h.start
            number = fixed_line if fixed_line is not None else line_no + 1
            if h.regex_id == self._id_failure:
                if source == "log":
                    state.marks.append(number)
                continue
            if h.regex_id == self._id_traceback:
                if source == "log":
                    state.marks.append(number)
                    span = _exception_span(block, h.end + 1, number)
                    if span is not None:
                        state.exception_spans.append((number, *span))
                        state.marks.append(span[0])
                continue
            if h.regex_id == self._id_chain:
                if source == "log":
                    state.marks.append(number)
                    state.chains.append(number)
                continue
            if h.regex_id == self._id_error_detail:
                if source == "log":
                    detail = _decode_error_detail(block[h.start : h.end])
                    if detail:
                        state.marks.append(number)
                        # "\ud800" in the JSON decodes to a lone surrogate: replaced, not raised.
                        text = "\n".join(detail).encode("utf-8", errors="replace")
                        self._scan_block(text, 0, state, "log", "error_detail", number)
                continue
            if h.start in detail_lines and h.regex_id < self._n_library:
                continue
            line = decoded.get(number)
            if line is None:
                raw = block[h.start : h.end]
                line = decoded_text.get(raw)
                if line is None:
                    line = decoded_text[raw] = (*_display_text(raw), _level_of(raw))
                decoded[number] = line
            text, field_found, level = line
            if h.regex_id == self._id_errorish:
                if source == "log":  # the FailureContext's exception is added by _learned
                    state.error_lines.append((number, text))
                continue
            if h.regex_id == self._id_signals:
                for signal in self.signals.read(text[:MAX_EVIDENCE_TEXT]):
                    hit = _Hit(number, text, source, field_name or field_found, level, 0)
                    state.hits.setdefault(self._scorable_index(signal), _PatternHits()).add(hit, self.keep)
                continue
            p_index, r_index = self._regex_owner[h.regex_id]
            hit = _Hit(number, text, source, field_name or field_found, level, r_index)
            state.hits.setdefault(p_index, _PatternHits()).add(hit, self.keep)

    def _scan_repeated(
        self,
        block: bytes,
        lines: list[bytes],
        occurrences: dict[bytes, list[int]],
        line_base: int,
        state: _ScanState,
        source: str,
        field_name: str | None,
    ) -> bool:
        """:meth:`_scan_block` for a block made of few distinct lines (a retry loop): each distinct
        line is matched once, and a pattern's hits on its repeats are counted, not built one by one.

        The state ends as :meth:`_scan_block` leaves it: the same counts, the same first and last
        evidence lines, the same marks (markers still run per line: they read what follows).

        :return: ``False``, with nothing recorded, when a line holds an Airflow 3 ``error_detail``
            record (its decoded exception adds hits between the line's own): read line by line.
        """
        distinct = list(occurrences)
        # The regexes each distinct line matches, kept for the next blocks of the same loop.
        cache = state.repeated_lines
        new = [line for line in distinct if line not in cache]
        if new:
            size = sum(map(len, new))
            if (
                len(cache) + len(new) > _REPEAT_CACHE_LINES
                or state.repeated_bytes + size > _REPEAT_CACHE_BYTES
            ):
                cache.clear()
                state.repeated_bytes = 0
            state.repeated_bytes += size
            starts: dict[int, bytes] = {}
            offset = 0
            for line in new:
                starts[offset] = line
                cache[line] = _SeenLine()
                offset += len(line) + 1
            for h in self.matcher.scan(b"\n".join(new) + b"\n"):
                cache[starts[h.start]].regex_ids.append(h.regex_id)
        markers = {self._id_failure, self._id_traceback, self._id_chain}
        marker_hits: list[tuple[int, int]] = []  # (regex id, distinct line)
        other_hits: list[tuple[int, int]] = []
        for u, line in enumerate(distinct):
            for regex_id in cache[line].regex_ids:
                if regex_id == self._id_error_detail and source == "log":
                    return False
                (marker_hits if regex_id in markers else other_hits).append((regex_id, u))
        if marker_hits and source == "log":
            self._record_repeated_marks(block, lines, distinct, occurrences, marker_hits, line_base, state)
        # pattern index -> candidate hits (line index, -regex id, distinct line, regex index): the
        # first and last few of each distinct line are all a pattern can keep; and its hit count.
        candidates: dict[int, list[tuple[int, int, int, int]]] = {}
        totals: dict[int, int] = {}
        errorish: list[tuple[int, int]] = []
        texts: dict[int, tuple[str, str | None, str | None]] = {}
        for regex_id, u in other_hits:
            where = occurrences[distinct[u]]
            seen = cache[distinct[u]]
            if seen.text is None:
                seen.text = (*_display_text(distinct[u]), _level_of(distinct[u]))
            texts[u] = seen.text
            if regex_id == self._id_errorish:
                if source == "log":
                    errorish.extend((i, u) for i in where[-ERROR_LINES:])
                continue
            if regex_id == self._id_signals:
                if seen.signals is None:
                    seen.signals = self.signals.read(seen.text[0][:MAX_EVIDENCE_TEXT])
                owners = [(self._scorable_index(signal), 0) for signal in seen.signals]
            else:
                owners = [self._regex_owner[regex_id]]
            picked = where
            if len(where) > self.keep + LAST_EVIDENCE:
                picked = [*where[: self.keep], *where[-LAST_EVIDENCE:]]
            for p_index, r_index in owners:
                totals[p_index] = totals.get(p_index, 0) + len(where)
                candidates.setdefault(p_index, []).extend((i, -regex_id, u, r_index) for i in picked)
        if errorish:
            errorish.sort()
            state.error_lines.extend((line_base + i + 1, texts[u][0]) for i, u in errorish[-ERROR_LINES:])
        for p_index, found in candidates.items():
            found.sort()
            pattern_hits = state.hits.setdefault(p_index, _PatternHits())
            need = max(0, self.keep - len(pattern_hits.first))
            chosen = found[:need] + found[max(need, len(found) - LAST_EVIDENCE) :]
            for i, _, u, r_index in chosen:
                text, field_found, level = texts[u]
                hit = _Hit(line_base + i + 1, text, source, field_name or field_found, level, r_index)
                pattern_hits.add(hit, self.keep)
            pattern_hits.count += totals[p_index] - len(chosen)
        return True

    def _record_repeated_marks(
        self,
        block: bytes,
        lines: list[bytes],
        distinct: list[bytes],
        occurrences: dict[bytes, list[int]],
        marker_hits: list[tuple[int, int]],
        line_base: int,
        state: _ScanState,
    ) -> None:
        """The marks of :meth:`_apply_hits` for the marker hits (regex id, distinct line) of a
        repeated block, in line order; a traceback header right before another has no span."""
        chains: list[int] = []
        headers: list[int] = []
        for regex_id, u in marker_hits:
            where = occurrences[distinct[u]]
            state.marks.extend(line_base + i + 1 for i in where)
            if regex_id == self._id_chain:
                chains.extend(where[-state.chains.maxlen :] if state.chains.maxlen else where)
            elif regex_id == self._id_traceback:
                headers.extend(where)
        if chains:
            chains.sort()
            state.chains.extend(line_base + i + 1 for i in chains)
        if not headers:
            return
        headers.sort()
        is_header = {line: line.lstrip().startswith(b"Traceback") for line in distinct}
        offset = 0
        line_offsets = []
        for line in lines:
            line_offsets.append(offset)
            offset += len(line) + 1
        for i in headers:
            if i + 1 < len(lines) and is_header[lines[i + 1]]:
                continue  # the next line is a header too: this traceback is cut off
            number = line_base + i + 1
            span = _exception_span(block, line_offsets[i] + len(lines[i]) + 1, number)
            if span is not None:
                state.exception_spans.append((number, *span))
                state.marks.append(span[0])

    def _scorable_index(self, signal: Signal) -> int:
        index = self._signal_index.get(signal)
        if index is None:
            index = self._signal_index[signal] = len(self._scorables)
            self._scorables.append(signal)
        return index

    def _scan_stream(self, stream: _Readable, state: _ScanState) -> tuple[int, int]:
        carry = b""
        line_base = 0
        total_bytes = 0
        skipping = False  # inside an over-long line whose head was matched
        while True:
            chunk = stream.read(BLOCK_SIZE)
            if not chunk:
                break
            total_bytes += len(chunk)
            if skipping:
                end = chunk.find(b"\n")
                if end < 0:
                    state.bytes_skipped += len(chunk)
                    continue
                state.bytes_skipped += end
                chunk, skipping = chunk[end + 1 :], False
                line_base += 1
            data = carry + chunk if carry else chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) <= MAX_LINE_BYTES:
                    carry = data
                    continue
                # One line longer than MAX_LINE_BYTES: its head is matched as a line of its own (no
                # line break, so the count waits for the real end), the rest until that end skipped.
                self._scan_block(data[:MAX_LINE_BYTES], line_base, state)
                state.bytes_skipped += len(data) - MAX_LINE_BYTES
                carry, skipping = b"", True
                continue
            block, carry = data[: cut + 1], data[cut + 1 :]
            self._scan_block(block, line_base, state)
            line_base += block.count(b"\n")
        if carry or skipping:
            if carry:
                self._scan_block(carry, line_base, state)
            line_base += 1
        return total_bytes, line_base

    @staticmethod
    def _failure_start(state: _ScanState) -> int | None:
        """Where the failure begins: the start of the last block of error marks.

        A traceback is one unit from its header to its message, however long; a chain connector
        ("The above exception ...") joins the exception before it.
        """
        if not state.marks:
            return None
        header_of = {first: header for header, first, _ in state.exception_spans}
        chains = set(state.chains)
        marks = sorted(set(state.marks))
        start, i = marks[-1], len(marks) - 2  # i: the latest mark before start
        while True:
            header = header_of.get(start)
            if header is not None and header < start:
                start = header
                while i >= 0 and marks[i] >= start:
                    i -= 1
            if i < 0:
                return start
            previous = marks[i]
            if start - previous > 60 and start not in chains:
                return start
            start, i = previous, i - 1

    # -- ranking ------------------------------------------------------------------------------
    @staticmethod
    def _where_weight(hit: _Hit, state: _ScanState, failure_line: int | None, total_lines: int) -> float:
        if hit.source in ("exception", "traceback"):
            return WEIGHT_EXCEPTION
        if hit.source == "log":
            in_exception = state.final_exception_weight(hit.line, failure_line)
            if in_exception is not None:
                return in_exception
        if hit.field == "error_detail":
            return WEIGHT_EXCEPTION  # Airflow 3's record of the exception that failed the task
        if failure_line is None:
            distance = max(0, total_lines - hit.line)
            return 0.55 + 0.4 * math.exp(-distance / 300)
        if hit.line >= failure_line - 2:
            return WEIGHT_AT_FAILURE
        distance = failure_line - hit.line
        return WEIGHT_FAR + (WEIGHT_NEAR - WEIGHT_FAR) * math.exp(-distance / DECAY_LINES)

    def _score(self, state: _ScanState, failure_line: int | None, total_lines: int) -> list[_Scored]:
        scored: list[_Scored] = []
        # Symptoms (a SIGTERM, a non-zero exit) step back when anything specific says why.
        has_cause = any(not (self._scorables[i].symptom or self._scorables[i].generic) for i in state.hits)
        for p_index, pattern_hits in state.hits.items():
            pattern = self._scorables[p_index]
            demote = SYMPTOM_FACTOR if has_cause and pattern.symptom else 1.0
            candidates = []
            for hit in pattern_hits.hits():
                specificity = pattern.regex_specificity(hit.regex) * demote
                where = self._where_weight(hit, state, failure_line, total_lines)
                if hit.source != "log" or where >= WEIGHT_EXCEPTION:
                    level = 1.0  # the exception itself has no log level
                else:
                    level = _LEVEL_WEIGHT.get(hit.level or "", 0.9)
                candidates.append((specificity * where * level, hit.line, hit, where, level))
            candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
            best = (candidates[0][0], candidates[0][2], candidates[0][3], candidates[0][4])
            line_scores = [c[0] for c in candidates]
            line_scores.sort(reverse=True)
            # A second line of the same pattern agrees, a little.
            score = best[0] + (0.1 * line_scores[1] if len(line_scores) > 1 else 0.0)
            scored.append(
                _Scored(
                    pattern,
                    round(score, 6),
                    best[1],
                    best[2],
                    best[3],
                    pattern_hits.hits(),
                    pattern_hits.count,
                )
            )
        scored.sort(key=lambda s: (-s.score, s.pattern.pattern_id))
        return scored

    @staticmethod
    def _category_scores(scored: list[_Scored]) -> dict[Category, float]:
        by_category: dict[Category, list[_Scored]] = {}
        for s in scored:
            by_category.setdefault(s.pattern.category, []).append(s)
        result = {}
        for category, members in by_category.items():
            top, *others = members  # already sorted best first
            # Agreement counts only from other lines: two patterns matching one line are one
            # piece of evidence, not two.
            seen = {(top.best.source, top.best.line)}
            agreeing = []
            for s in others:
                key = (s.best.source, s.best.line)
                if key not in seen:
                    seen.add(key)
                    agreeing.append(s.score)
            result[category] = top.score + 0.25 * sum(agreeing[:2])
        return result

    # -- output -------------------------------------------------------------------------------
    def _evidence(self, s: _Scored) -> list[Evidence]:
        seen = set()
        out = []
        hits = sorted(s.hits, key=lambda h: (h is not s.best, h.line))
        for hit in hits:
            key = (hit.source, hit.line, hit.text)
            if key in seen:
                continue
            seen.add(key)
            out.append(
                Evidence(
                    source=hit.source,  # type: ignore[arg-type]
                    line=hit.line if hit.source == "log" else None,
                    text=self.scrubber.scrub_cut(hit.text, MAX_EVIDENCE_TEXT),
                    field=hit.field,
                    pattern_id=s.pattern.pattern_id,
                )
            )
        return out

    @staticmethod
    def _where_phrase(s: _Scored) -> str:
        hit = s.best
        if hit.source == "exception":
            return "the exception message"
        if hit.source == "traceback":
            return "the traceback"
        if hit.field == "error_detail" or s.weight_where >= WEIGHT_WRAPPER:
            return f"the exception in the log (line {hit.line})"
        if s.weight_where >= WEIGHT_AT_FAILURE:
            return f"line {hit.line}, at the failure"
        return f"line {hit.line}, before the failure"

    def _ruled_out_reason(self, winner: _Scored, other: _Scored) -> str:
        parts = []
        if other.pattern.generic and not winner.pattern.generic:
            parts.append("a generic pattern")
        if other.weight_where < winner.weight_where - 0.05:
            parts.append(f"seen only at {self._where_phrase(other)}")
        if other.weight_level < winner.weight_level - 0.05:
            parts.append(f"on a {other.best.level or 'lower-level'} line")
        if not parts:
            parts.append("less specific text or fewer agreeing lines")
        return f"scored {other.score:.2f} against {winner.score:.2f}: " + ", ".join(parts)

    def _examples(self) -> list[tuple[str, Category]]:
        """What the learned fallback learns from: every pattern's and signal entry's examples."""
        if self._learned_examples is None:
            examples = [(e, p.category) for p in self.library.patterns for e in p.examples]
            for table in self.signals.tables:
                for entry in table.table.entries:
                    if entry.category is not None:
                        examples.extend((e, entry.category) for e in entry.examples)
            self._learned_examples = examples
        return self._learned_examples

    def _learned(
        self, state: _ScanState, context: FailureContext | None, stats: ScanStats, gap: str
    ) -> tuple[Diagnosis, ConfidenceFeatures] | None:
        """The learned fallback's answer from the error lines, when it has one."""
        lines: list[tuple[int | None, str]] = list(state.error_lines)
        if context is not None and (context.exception_type or context.exception_message):
            exception = f"{context.exception_type or 'Exception'}: {context.exception_message or ''}"
            lines.append((None, exception))
        if not lines or not fallback.available():
            return None
        answer = fallback.predict(self._examples(), [text[:MAX_EVIDENCE_TEXT] for _, text in lines])
        if answer is None:
            return None
        features = ConfidenceFeatures(
            raw=answer.probability, kind="learned", agreeing_lines=0, at_exception=False, contested=False
        )
        confidence = round(min(fallback.CEILING, answer.probability), 3)
        # The words come from the log: scrubbed like any evidence text.
        terms = self.scrubber.scrub_line(", ".join(repr(term) for term, _ in answer.terms)) or "none"
        reason = (
            f"no pattern or signal decided; the learned fallback read {answer.category.value} in "
            f"{len(lines)} error line(s), the words that weighed most: {terms}"
        )
        if self.calibration is not None:
            confidence, why = self.calibration.apply(features)
            reason += f"; confidence {why}"
        evidence = [
            Evidence(
                source="log" if lines[i][0] else "exception",
                line=lines[i][0],
                text=self.scrubber.scrub_cut(lines[i][1], MAX_EVIDENCE_TEXT),
                pattern_id=LEARNED_ID,
            )
            for i in answer.lines
        ]
        title = (
            f"No pattern matched; the error lines read like {answer.category.value} to a model "
            "trained on the library's examples."
        )
        finding = Finding(
            category=answer.category,
            pattern_id=LEARNED_ID,
            title=title,
            severity=Severity.MEDIUM,
            confidence=confidence,
            confidence_reason=reason,
            score=round(answer.probability, 6),
            evidence=evidence,
            occurrences=len(evidence),
        )
        diagnosis = Diagnosis(
            root_cause=answer.category,
            confidence=confidence,
            confidence_reason=reason,
            summary=f"{answer.category.value}: {title}",
            findings=[finding],
            diagnostics_gap=gap + "; a learned fallback answered: a pattern for this failure would be surer",
            context=context,
            stats=stats,
        )
        return diagnosis, features

    @staticmethod
    def _kind(pattern: Pattern | Signal) -> str:
        if isinstance(pattern, Signal):
            return "signal"
        if pattern.symptom:
            return "symptom"
        return "generic" if pattern.generic else "specific"

    def _build(
        self,
        scored: list[_Scored],
        context: FailureContext | None,
        stats: ScanStats,
        failure_line: int | None,
        had_input: bool,
        state: _ScanState,
        learned_only: bool = False,
    ) -> tuple[Diagnosis, ConfidenceFeatures | None]:
        categories = {} if learned_only else self._category_scores(scored)
        ranking = sorted(categories.items(), key=lambda kv: (-kv[1], kv[0].value))
        if not ranking or ranking[0][1] < self.min_score:
            gap = self._gap(scored, context, stats, failure_line, had_input)
            learned = self._learned(state, context, stats, gap) if self.learned or learned_only else None
            if learned is not None:
                return learned
            if self.learned and state.error_lines and not fallback.available():
                gap += "; the learned fallback needs scikit-learn (pip install airflow-faultcat[learned])"
            return Diagnosis(
                root_cause=Category.UNKNOWN,
                confidence=0.0,
                confidence_reason="no pattern decides: " + gap.split(";")[0],
                summary="The root cause is unknown: no pattern in the library matched convincingly.",
                findings=[self._finding(s, 0.0, "too weak to decide", []) for s in scored[:10]],
                diagnostics_gap=gap,
                context=context,
                stats=stats,
            ), None
        root, top = ranking[0]
        runner_up = ranking[1][1] if len(ranking) > 1 else 0.0
        generic_only = {
            c for c in categories if all(s.pattern.generic for s in scored if s.pattern.category is c)
        }
        competition = max(
            (
                score * (GENERIC_COMPETITION if category in generic_only else 1.0)
                for category, score in ranking[1:]
            ),
            default=0.0,
        )
        strength = min(1.0, top)
        margin = max(0.0, top - competition) / top
        confidence = round(min(0.99, strength * (0.45 + 0.55 * margin)), 3)
        winner = next(s for s in scored if s.pattern.category is root)
        agreeing = [
            s
            for s in scored
            if s.pattern.category is root
            and (s.best.source, s.best.line) != (winner.best.source, winner.best.line)
        ]
        kind = self._kind(winner.pattern)
        if isinstance(winner.pattern, Signal):
            what = f"signal {winner.pattern.pattern_id}"
            if winner.pattern.via:
                what += f" (a {winner.pattern.via})"
        else:
            what = f"{kind} pattern {winner.pattern.pattern_id}"
        reason = f"{what} read at {self._where_phrase(winner)}"
        agreeing_lines = 0
        if agreeing:
            agreeing_lines = len({s.best.line for s in agreeing if s.best.line}) or len(agreeing)
            reason += f"; agreeing evidence on {agreeing_lines} other line(s)"
        if len(ranking) > 1:
            reason += f"; next best {ranking[1][0].value} scored {runner_up:.2f} against {top:.2f}"
        else:
            reason += "; no competing category"
        features = ConfidenceFeatures(
            raw=confidence,
            kind=kind,
            agreeing_lines=agreeing_lines,
            at_exception=winner.weight_where >= WEIGHT_WRAPPER,
            contested=len(ranking) > 1,
        )
        if self.calibration is not None:
            confidence, why = self.calibration.apply(features)
            reason += f"; confidence {why}"
        ruled_out = [
            RuledOut(
                category=s.pattern.category,
                pattern_id=s.pattern.pattern_id,
                score=s.score,
                reason=self._ruled_out_reason(winner, s),
            )
            for s in scored
            if s.pattern.category is not root
        ][:8]
        findings = [self._finding(winner, confidence, reason, ruled_out)]
        for s in scored:
            if len(findings) >= MAX_FINDINGS:
                break
            if s is winner:
                continue
            share = categories[s.pattern.category]
            rel = min(0.99, min(1.0, s.score) * (share / (top + share)))
            if s.pattern.category is root:
                rel = min(confidence, rel + 0.1)
                why = f"agrees with {winner.pattern.pattern_id}; matched {self._where_phrase(s)}"
            else:
                why = f"alternative ruled out: {self._ruled_out_reason(winner, s)}"
            findings.append(self._finding(s, round(rel, 3), why, []))
        gap = None
        if confidence < 0.5:
            gap = self._gap(scored, context, stats, failure_line, had_input, weak=True)
        diagnosis = Diagnosis(
            root_cause=root,
            confidence=confidence,
            confidence_reason=reason,
            summary=f"{root.value}: {winner.pattern.description}",
            findings=findings,
            diagnostics_gap=gap,
            context=context,
            stats=stats,
        )
        return diagnosis, features

    def _finding(self, s: _Scored, confidence: float, reason: str, ruled_out: list[RuledOut]) -> Finding:
        p = s.pattern
        return Finding(
            category=p.category,
            pattern_id=p.pattern_id,
            title=p.description,
            severity=p.severity,
            confidence=confidence,
            confidence_reason=reason,
            score=s.score,
            evidence=self._evidence(s),
            occurrences=s.count,
            services_affected=list(p.services_affected),
            recovery_hint=p.recovery_hint,
            remediation=list(p.remediation),
            alternatives_ruled_out=ruled_out,
        )

    @staticmethod
    def _gap(
        scored: list[_Scored],
        context: FailureContext | None,
        stats: ScanStats,
        failure_line: int | None,
        had_input: bool,
        weak: bool = False,
    ) -> str:
        missing = []
        has_exception = bool(context and (context.exception_type or context.exception_message))
        if not had_input:
            missing.append("there is no log text and no exception to read")
        else:
            if not scored:
                missing.append(
                    f"no pattern in the library matched the exception or any of the {stats.lines_scanned} "
                    "log line(s); add a pattern for this failure (docs/patterns.md)"
                )
            if not has_exception and failure_line is None:
                missing.append(
                    "the exception is missing: the log holds no traceback or error_detail and no "
                    "FailureContext was given"
                )
            if scored and weak:
                if all(s.pattern.generic for s in scored):
                    missing.append("only generic patterns matched")
                cats = {s.pattern.category for s in scored[:3]}
                if len(cats) > 1:
                    names = ", ".join(sorted(c.value for c in cats))
                    missing.append(f"the evidence is split between {names}")
        return "; ".join(missing) or "the evidence is too weak to decide"

    # -- entry points -------------------------------------------------------------------------
    def diagnose(
        self, log: bytes | str | BinaryIO | _Readable | None = None, context: FailureContext | None = None
    ) -> Diagnosis:
        """Diagnose one failure.

        :param log: the task log: bytes, text, or a binary stream read in 1 MiB blocks (Airflow 3
            JSON lines or plain text). ``None`` diagnoses the FailureContext alone.
        :param context: the FailureContext; its exception type, message and traceback weigh more
            than any log line.
        :return: the Diagnosis (``UNKNOWN`` with a ``diagnostics_gap`` when nothing decides).
        """
        return self.diagnose_with_features(log, context)[0]

    def _echo(self, context: FailureContext | None) -> FailureContext | None:
        """The FailureContext as the Diagnosis shows it: scrubbed, message and traceback bounded."""
        if context is None:
            return None
        raw = context.model_dump(mode="json", exclude={"exception_message", "traceback"})
        clean = self.scrubber.scrub_obj(raw)
        if context.exception_message is not None:
            clean["exception_message"] = self.scrubber.scrub_cut(context.exception_message, MAX_ECHO_TEXT)
        if context.traceback is not None:
            clean["traceback"] = self.scrubber.scrub_cut(context.traceback, MAX_ECHO_TEXT, keep="tail")
        return FailureContext.model_validate(clean)

    def diagnose_with_features(
        self,
        log: bytes | str | BinaryIO | _Readable | None = None,
        context: FailureContext | None = None,
        *,
        learned_only: bool = False,
    ) -> tuple[Diagnosis, ConfidenceFeatures | None]:
        """Diagnose one failure, and say what the confidence was computed from.

        :param learned_only: skip the patterns and signals and let the learned fallback answer
            (``bench/calibrate.py`` calibrates the fallback on every train case this way).
        :return: the Diagnosis and the ranking features its confidence came from (``None`` for
            ``UNKNOWN``); ``bench/calibrate.py`` fits the calibration on these.
        """
        started = time.perf_counter()
        state = _ScanState()
        if context is not None:
            if context.exception_type or context.exception_message:
                text = f"{context.exception_type or 'Exception'}: {context.exception_message or ''}"
                self._scan_block(text.encode("utf-8"), 0, state, "exception", None, 1)
            if context.traceback:
                self._scan_block(context.traceback.encode("utf-8"), 0, state, "traceback", None, 1)
        total_bytes = total_lines = 0
        if log is not None:
            if isinstance(log, str):
                log = log.encode("utf-8")
            if isinstance(log, (bytes, bytearray)):
                from io import BytesIO

                log = BytesIO(bytes(log))
            total_bytes, total_lines = self._scan_stream(log, state)
        failure_line = self._failure_start(state)
        scored = self._score(state, failure_line, total_lines)
        stats = ScanStats(
            bytes_scanned=total_bytes,
            bytes_skipped=state.bytes_skipped,
            lines_scanned=total_lines,
            duration_ms=0.0,
            patterns=len(self.library),
            engine=self.matcher.engine,
        )
        had_input = bool(total_bytes) or bool(
            context and (context.exception_type or context.exception_message or context.traceback)
        )
        diagnosis, features = self._build(
            scored, context, stats, failure_line, had_input, state, learned_only
        )
        diagnosis.context = self._echo(context)
        diagnosis.stats.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        return diagnosis, features

    def diagnose_file(self, path: str | Path, context: FailureContext | None = None) -> Diagnosis:
        """Diagnose a log file, streaming it.

        :raises OSError: if the file cannot be read.
        """
        with open(path, "rb") as stream:
            return self.diagnose(stream, context=context)
