"""The evaluation corpus: its split is by source, and nothing of the validation split is in the library.

Figures on the corpus come from ``python bench/accuracy.py``; these tests keep the corpus honest
and guard the figures against a regression.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import accuracy  # noqa: E402

from airflow_faultcat.core.patterns.loader import load_library  # noqa: E402
from airflow_faultcat.core.patterns.signals import load_signals  # noqa: E402

TRAIN = accuracy.load("train")
VALIDATION = accuracy.load("validation")
#: Lines every Python or Java traceback, or a separator, carries: framing, not a failure's text.
BOILERPLATE = re.compile(
    r"^(Traceback \(most recent call last\):?|During handling of the above exception, another exception "
    r"occurred:|The above exception was the direct cause of the following exception:|[-=*#_ ]+|"
    r"PLAY RECAP \**)$"
)


def _library_texts() -> list[str]:
    texts = []
    for pattern in load_library().patterns:
        texts += [*pattern.regexes, *pattern.examples, *pattern.counterexamples, pattern.description]
        texts += [pattern.recovery_hint, *pattern.remediation]
    for table in load_signals():
        texts += table.reads
        for entry in table.entries:
            texts += [entry.key, *entry.aliases, entry.description, *entry.examples]
    return texts


def test_the_corpus_is_large_enough_and_well_formed():
    cases = TRAIN + VALIDATION
    assert len(cases) >= 300
    assert sum(len(c["excerpt"].strip("\n").splitlines()) >= accuracy.LONG_LINES for c in cases) >= 80
    assert accuracy.malformed(cases) == []


def test_the_split_is_by_source_and_follows_the_fixed_rule():
    train_sources = {accuracy.source_key(c["source"]) for c in TRAIN}
    validation_sources = {accuracy.source_key(c["source"]) for c in VALIDATION}
    assert not train_sources & validation_sources
    assert all(not accuracy.in_validation(c["source"]) for c in TRAIN)
    assert all(accuracy.in_validation(c["source"]) for c in VALIDATION)
    assert len(VALIDATION) >= 100


def test_no_sources_of_the_older_corpus():
    older = {accuracy.source_key(c["source"]) for c in accuracy.load("realworld")}
    assert not older & {accuracy.source_key(c["source"]) for c in TRAIN + VALIDATION}


def test_no_validation_line_is_in_the_library():
    texts = _library_texts()
    leaked = []
    for case in VALIDATION:
        for line in {raw.strip() for raw in case["excerpt"].splitlines()}:
            # A single token (a bare class name or path) is a name, not a case's text.
            if len(line) < 30 or " " not in line or BOILERPLATE.match(line):
                continue
            if any(line in text for text in texts):
                leaked.append(case["id"])
    assert leaked == []


@pytest.fixture(scope="module")
def analyzer():
    from airflow_faultcat.core.diagnose import Analyzer

    return Analyzer()


def test_train_figures_hold(analyzer):
    rows = accuracy.evaluate(TRAIN, analyzer)
    acc, precision, confident = accuracy.summary(rows)
    assert acc >= 0.88
    assert precision >= 0.95 and confident >= len(rows) / 2
    assert accuracy.reliability(rows)[0] <= 0.05


def test_validation_figures_do_not_regress(analyzer):
    # A floor under the figures measured when the split was made; never tuned against.
    rows = accuracy.evaluate(VALIDATION, analyzer)
    acc, precision, _ = accuracy.summary(rows)
    assert acc >= 0.85
    assert precision >= 0.93
