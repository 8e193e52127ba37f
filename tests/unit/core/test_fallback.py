"""The learned fallback: it answers only when nothing in the library decides, and says what it read."""

from __future__ import annotations

import pytest

from airflow_faultcat.core import fallback
from airflow_faultcat.core.diagnose import LEARNED_ID, Analyzer
from airflow_faultcat.core.models import Category

pytest.importorskip("sklearn")

# Wording no pattern or signal of the library knows.
LOG = (
    "INFO - starting the nightly export\n"
    "INFO - 4000 rows staged\n"
    "ERROR - the upstream billing service refused the handshake and is unavailable, giving up\n"
    "INFO - cleaning up\n"
)


@pytest.fixture(scope="module")
def analyzer():
    return Analyzer()


def test_answers_with_the_words_and_lines_it_read(analyzer):
    diagnosis = analyzer.diagnose(LOG)
    assert diagnosis.root_cause is not Category.UNKNOWN
    top = diagnosis.findings[0]
    assert top.pattern_id == LEARNED_ID
    assert [e.line for e in top.evidence] == [3]
    assert "the learned fallback read" in diagnosis.confidence_reason
    assert "'" in diagnosis.confidence_reason.split("weighed most:")[1]
    assert diagnosis.diagnostics_gap and "learned fallback answered" in diagnosis.diagnostics_gap


def test_a_learned_answer_is_never_confident(analyzer):
    assert analyzer.diagnose(LOG).confidence <= fallback.CEILING


def test_the_same_answer_every_time(analyzer):
    first, second = Analyzer().diagnose(LOG), analyzer.diagnose(LOG)
    assert (first.root_cause, first.confidence) == (second.root_cause, second.confidence)


def test_a_pattern_still_decides_first(analyzer):
    diagnosis = analyzer.diagnose(LOG + "ERROR - OSError: [Errno 28] No space left on device: '/x'\n")
    assert diagnosis.findings[0].pattern_id != LEARNED_ID


def test_no_error_line_stays_unknown(analyzer):
    diagnosis = analyzer.diagnose("INFO - all good\nINFO - still good\n")
    assert diagnosis.root_cause is Category.UNKNOWN


def test_off_or_without_scikit_learn_it_is_unknown_and_says_why(monkeypatch):
    assert Analyzer(learned=False).diagnose(LOG).root_cause is Category.UNKNOWN
    monkeypatch.setattr(fallback, "available", lambda: False)
    diagnosis = Analyzer().diagnose(LOG)
    assert diagnosis.root_cause is Category.UNKNOWN
    assert "needs scikit-learn" in diagnosis.diagnostics_gap


def test_the_model_learns_only_from_the_library():
    examples = [("disk is full again", Category.STORAGE), ("login was rejected", Category.CREDENTIAL)] * 3
    answer = fallback.predict(examples, ["ERROR the disk is full"])
    assert answer is not None and answer.category is Category.STORAGE
    assert answer.terms[0][0] in {"disk", "disk full", "full"}
    assert fallback.predict(examples, []) is None
    answer = fallback.predict(examples, ["ERROR the login was rejected"])
    assert answer is not None and answer.category is Category.CREDENTIAL
    assert answer.terms and answer.terms[0][1] > 0


def test_reads_the_failure_context_when_the_log_says_nothing(analyzer):
    from airflow_faultcat.core.models import FailureContext

    context = FailureContext(
        dag_id="etl",
        run_id="manual__1",
        task_id="load",
        try_number=1,
        exception_type="WidgetError",
        exception_message="the upstream billing service refused the handshake and is unavailable",
    )
    diagnosis = analyzer.diagnose(None, context=context)
    assert diagnosis.findings[0].pattern_id == LEARNED_ID
    assert [e.source for e in diagnosis.findings[0].evidence] == ["exception"]
