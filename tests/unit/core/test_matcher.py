from __future__ import annotations

import time

import pytest

from airflow_faultcat.core.patterns.matcher import MultiMatcher, compile_problems

ENGINES = ["hyperscan", "re2"]


@pytest.mark.parametrize("engine", ENGINES)
def test_reports_each_matching_line_once_per_regex(engine):
    matcher = MultiMatcher(["refused", "no space left", "err(or)?"], engine=engine)
    block = b"ok\nConnection REFUSED refused\nerror: No Space Left on device\nfine\n"
    hits = sorted((h.regex_id, block[h.start : h.end]) for h in matcher.scan(block))
    assert hits == [
        (0, b"Connection REFUSED refused"),
        (1, b"error: No Space Left on device"),
        (2, b"error: No Space Left on device"),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_never_matches_across_a_line_end(engine):
    matcher = MultiMatcher(["foo[^ ]*bar", "foo\\s+bar"], engine=engine)
    assert list(matcher.scan(b"foo\nbar\n")) == []
    assert {h.regex_id for h in matcher.scan(b"fooXbar foo  bar\n")} == {0, 1}


@pytest.mark.parametrize("engine", ENGINES)
def test_anchors_work_per_line(engine):
    matcher = MultiMatcher(["^Traceback", "exited$"], engine=engine)
    block = b"x Traceback\nTraceback (most recent call last):\nprocess exited\nexited early\n"
    lines = sorted(block[h.start : h.end] for h in matcher.scan(block))
    assert lines == [b"Traceback (most recent call last):", b"process exited"]


@pytest.mark.parametrize("engine", ENGINES)
def test_catastrophic_regex_runs_in_linear_time(engine):
    # `(a+)+$` takes Python's backtracking `re` longer than 20 s on this input.
    matcher = MultiMatcher(["(a+)+$"], engine=engine)
    block = (b"a" * 30 + b"!\n") * 1000
    started = time.perf_counter()
    assert list(matcher.scan(block)) == []
    assert time.perf_counter() - started < 2.0


def test_engines_agree_on_a_mixed_block():
    regexes = ["timed out", "Errno [0-9]+", "^ERROR", "denied( \\(publickey\\))?"]
    block = b"\n".join(
        [b"ERROR timed out", b"[Errno 28] x", b"Permission denied (publickey).", b"nothing", b"INFO ERROR"]
        * 50
    )
    results = []
    for engine in ENGINES:
        matcher = MultiMatcher(regexes, engine=engine)
        results.append(sorted((h.regex_id, h.start) for h in matcher.scan(block)))
    assert results[0] == results[1]
    assert len(results[0]) == 4 * 50


def test_compiled_database_is_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("FAULTCAT_CACHE_DIR", str(tmp_path))
    MultiMatcher(["cache me", "and me"], engine="hyperscan")
    cached = list(tmp_path.glob("hs-*.db"))
    assert len(cached) == 1
    again = MultiMatcher(["cache me", "and me"], engine="hyperscan")
    assert [h.regex_id for h in again.scan(b"and me\n")] == [1]


def test_compile_problems_names_each_engine():
    problems = compile_problems("foo(bar")
    assert any(p.startswith("RE2 rejects") for p in problems)
    assert any(p.startswith("Hyperscan rejects") for p in problems)
    assert compile_problems("password authentication failed") == []
    assert compile_problems("a(?=b)")  # lookahead: not linear-time, rejected


def test_unknown_engine_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown engine"):
        MultiMatcher(["x"], engine="pcre")


# -- bounded work on hostile blocks -----------------------------------------------------------------
class _CountingDb:
    """Wraps a Hyperscan database: counts the callbacks of its scans."""

    def __init__(self, db):
        self.db, self.callbacks = db, 0

    def scan(self, data, match_event_handler):
        def counted(*args):
            self.callbacks += 1
            return match_event_handler(*args)

        return self.db.scan(data, match_event_handler=counted)


class _CountingRegex:
    """Wraps an RE2 regex: counts its searches."""

    def __init__(self, regex, counter):
        self.regex, self.counter = regex, counter

    def search(self, *args):
        self.counter.append(args[1:])
        return self.regex.search(*args)


def _counting(matcher: MultiMatcher) -> tuple[_CountingDb, list]:
    pytest.importorskip("hyperscan")
    db = matcher._engine._db = _CountingDb(matcher._engine._db)
    searches: list = []
    line_regex = matcher._line_regex
    matcher._line_regex = lambda regex_id: _CountingRegex(line_regex(regex_id), searches)
    return db, searches


def test_a_phrase_repeated_on_one_line_is_one_callback_per_regex():
    matcher = MultiMatcher(["refused", r"err\w*", r"refused[^;]*;"], engine="hyperscan", groups=[[0, 1]])
    db, searches = _counting(matcher)
    block = b"connection refused; error " * 20_000 + b"\nok\n"
    hits = [(h.regex_id, h.start, h.end) for h in matcher.scan(block)]
    assert hits == [(0, 0, len(block) - 4), (2, 0, len(block) - 4)]
    assert db.callbacks == 3  # one per regex and line, not one per match
    assert len(searches) == 1  # the [^;] regex's line is checked by RE2, once


def test_many_regexes_on_many_lines_cost_no_re2_pass():
    words = [f"word{n:03d}x" for n in range(300)]
    matcher = MultiMatcher(words, engine="hyperscan")
    db, searches = _counting(matcher)
    block = b"".join(f"{w} and {words[-1 - n]}\n".encode() for n, w in enumerate(words)) * 10
    hits = list(matcher.scan(block))
    assert len(hits) == 300 * 2 * 10
    assert db.callbacks == len(hits)
    assert searches == []  # 300 regexes hit the block: no RE2 pass over it for any of them
    assert matcher._compiled == {}  # nor an RE2 regex (and its DFA cache) kept for them


def test_lines_checked_by_re2_are_checked_once_per_distinct_line():
    matcher = MultiMatcher([r"refused\s+by", r"\bfailed(;|$)"], engine="hyperscan")
    _, searches = _counting(matcher)
    block = b"x refused  by peer\n" * 5000 + b"it failed\n" * 5000 + b"it failed;\nfailed"
    hits = sorted((h.regex_id, block[h.start : h.end]) for h in matcher.scan(block))
    re2_hits = sorted(
        (h.regex_id, block[h.start : h.end])
        for h in MultiMatcher(matcher.regexes, engine="re2").scan(block)
    )
    assert hits == re2_hits
    assert len(hits) == 10_002
    assert len(searches) <= 8  # per distinct line (and the line before, for a $), not per line


@pytest.mark.parametrize(
    ("regex", "expected"),
    [
        ("a$", "a\\n"),
        ("a($|[^.])", "a(\\n|[^.])"),
        ("[$]x", "[$]x"),
        ("\\$", "\\$"),
        ("[]$]$", "[]$]\\n"),
        ("[[:alpha:]$]$", "[[:alpha:]$]\\n"),
        ("x\\z", None),
    ],
)
def test_end_anchors_become_line_breaks_for_hyperscan(regex, expected):
    from airflow_faultcat.core.patterns.matcher import _dollars_as_line_breaks

    assert _dollars_as_line_breaks(regex) == expected
