"""Regressions found by fuzzing the analyzer on both engines (tests/unit/fuzz/test_fuzz_diagnose.py)."""

from __future__ import annotations

import pytest

from airflow_faultcat.core.diagnose import Analyzer
from airflow_faultcat.core.patterns.matcher import MultiMatcher

pytest.importorskip("hyperscan")


def _lines(regexes: list[str], block: bytes, engine: str) -> list[tuple[int, int, int]]:
    matcher = MultiMatcher(regexes, engine=engine, groups=[range(len(regexes))])
    return [(h.regex_id, h.start, h.end) for h in matcher.scan(block)]


@pytest.mark.parametrize(
    ("regexes", "block", "lines"),
    [
        # "\s*$" matched up to the line break and past it: two match ends, one line found twice.
        ([r"Error\s*$"], b"task died: Error\n", [(0, 0, 16)]),
        ([r"Error\s*$"], b"Error\n\nok\n", [(0, 0, 5)]),
        # '"exc_type"\s*:' matched across the line break: the next line was taken for it.
        ([r'"exc_type"\s*:'], b'x\n"exc_type"\n: Connection refused\n', []),
        ([r"a[^x]b"], b"a\nb\n", []),
    ],
)
def test_a_match_across_a_line_break_finds_each_line_once_as_re2_does(regexes, block, lines):
    assert _lines(regexes, block, "hyperscan") == lines
    assert _lines(regexes, block, "re2") == lines


def test_a_line_ending_in_an_exception_name_is_one_piece_of_evidence_on_either_engine():
    log = "task died: ConnectionResetError\n"
    answers = [Analyzer(engine=engine).diagnose(log) for engine in ("hyperscan", "re2")]
    dumps = [a.model_dump(mode="json", exclude={"stats": {"duration_ms", "engine"}}) for a in answers]
    assert dumps[0] == dumps[1]
    assert answers[0].findings[0].occurrences == 1


@pytest.mark.parametrize(
    ("regex", "line", "hit"),
    [
        # Hyperscan read these a byte at a time and missed lines RE2 matches by characters.
        ("Can.{1,2}t connect", "Can’t connect", True),
        ("a.b", "aéb", True),
        ("x[^a]b", "xéb", True),
        (r"a\Wb", "aéb", True),
        (r"a\Sb", "aéb", True),
        (r"\x{e9}t\xe9", "été", True),
        ("É", "é", True),
        ("ü", "Ü", True),
        ("σ", "ς", True),
        # The two non-ASCII characters RE2 folds onto ASCII letters, in ASCII regexes.
        ("keyerror", "\u212aeyError", True),
        ("sigterm", "\u017fIGTERM", True),
        # Bytes that are not UTF-8: RE2 matches around them, never across them.
        ("a.b", "a\udcffb", False),
        ("refused", "\udcff\udcfe refused", True),
    ],
)
def test_non_ascii_lines_match_on_hyperscan_as_on_re2(regex, line, hit):
    raw = line.encode("utf-8", "surrogateescape")
    block = b"ascii line\n" + raw + b"\nmore\n"
    expected = [(0, 11, 11 + len(raw))] if hit else []
    assert _lines([regex], block, "re2") == expected
    assert _lines([regex], block, "hyperscan") == expected
    ungrouped = MultiMatcher([regex], engine="hyperscan")  # reported once per block, lines by RE2
    assert [(h.regex_id, h.start, h.end) for h in ungrouped.scan(block)] == expected


def test_a_shipped_pattern_reads_a_curly_apostrophe_on_either_engine():
    log = "pymysql.err.OperationalError: (2003, \"Can’t connect to MySQL server on 'db' ([Errno 111])\")\n"
    answers = [Analyzer(engine=engine).diagnose(log) for engine in ("hyperscan", "re2")]
    dumps = [a.model_dump(mode="json", exclude={"stats": {"duration_ms", "engine"}}) for a in answers]
    assert dumps[0] == dumps[1]
    assert any(f.pattern_id.startswith("mysql_") for f in answers[0].findings)
