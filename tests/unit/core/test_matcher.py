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
