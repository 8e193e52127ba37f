"""The learned fallback: it answers only when nothing in the library decides, and says what it read."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from airflow_faultcat.core import fallback
from airflow_faultcat.core.diagnose import LEARNED_ID, Analyzer
from airflow_faultcat.core.models import Category

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

#: Fitting needs scikit-learn; predicting from the shipped model does not.
needs_sklearn = pytest.mark.skipif(
    not fallback._sklearn(), reason="scikit-learn is not installed (pip install airflow-faultcat[learned])"
)

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


def test_off_or_without_its_model_it_is_unknown_and_says_why(monkeypatch):
    assert Analyzer(learned=False).diagnose(LOG).root_cause is Category.UNKNOWN
    monkeypatch.setattr(fallback, "available", lambda: False)
    diagnosis = Analyzer().diagnose(LOG)
    assert diagnosis.root_cause is Category.UNKNOWN
    assert "learned fallback" in diagnosis.diagnostics_gap


def test_a_missing_or_broken_model_file_means_no_fallback(monkeypatch, tmp_path):
    for text in (None, "{not json", json.dumps({"classes": []})):
        path = tmp_path / "model.json"
        if text is not None:
            path.write_text(text, encoding="utf-8")
        monkeypatch.setattr(fallback, "MODEL_FILE", path)
        monkeypatch.setattr(fallback, "_SHIPPED", [])
        assert not fallback.available()


@needs_sklearn
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


# The shipped model: data fitted ahead of time, read without scikit-learn.


@pytest.fixture(scope="module")
def refit(analyzer):
    """A fit of the current examples with scikit-learn: (pipeline, its exported document)."""
    x, y = fallback.training_data(analyzer._examples())
    model = fallback.pipeline().fit(x, y)
    return model, fallback.export(model, fallback.training_hash(x, y), len(x))


def test_the_shipped_model_was_fitted_on_the_current_examples(analyzer):
    x, y = fallback.training_data(analyzer._examples())
    assert fallback._shipped().key == fallback.training_hash(x, y), "run python bench/fit_fallback.py"


@needs_sklearn
def test_the_shipped_model_is_the_fit_of_the_current_examples(refit):
    import fit_fallback

    shipped = json.loads(fallback.MODEL_FILE.read_text(encoding="utf-8"))
    assert fit_fallback.differences(shipped, refit[1]) == [], "run python bench/fit_fallback.py"


def _texts(analyzer) -> list[str]:
    examples = analyzer._examples()
    return [
        *(text for text, _ in examples[:: max(1, len(examples) // 30)]),
        LOG,
        "ERROR something odd happened in the frobnicator widget",
        "the Upstream billing SERVICE refused the handshake and is unavailable, giving up",
        "Fehler: Verbindung zurückgesetzt, connection reset by peer; café naïve",
        "WidgetError: the the the quota quota exceeded exceeded for for the bucket bucket",
        "x" * 20000 + " disk quota exceeded",
        "ERROR login " * 3000,
    ]


@needs_sklearn
def test_reads_as_the_scikit_learn_pipeline_does(analyzer, refit):
    model = refit[0]
    vectorizer, classifier = model.steps[0][1], model.steps[1][1]
    names = vectorizer.get_feature_names_out()
    texts = _texts(analyzer)
    assert len(texts) >= 30
    for text in texts:
        lines = text.splitlines()
        answer = fallback.predict(analyzer._examples(), lines)
        features = vectorizer.transform(["\n".join(lines)[-fallback.MAX_TEXT :]])
        assert answer is not None and features.nnz > 0, text[:80]
        probabilities = classifier.predict_proba(features)[0]
        best = int(probabilities.argmax())
        row = features.tocoo()
        weights = classifier.coef_[best]
        contributions = sorted(
            ((float(v * weights[c]), str(names[c])) for c, v in zip(row.col, row.data, strict=True)),
            reverse=True,
        )
        terms = [(name, round(weight, 3)) for weight, name in contributions[:5] if weight > 0]
        assert answer.category.value == classifier.classes_[best], text[:80]
        assert answer.probability == pytest.approx(float(probabilities[best]), abs=1e-4), text[:80]
        assert [t for t, _ in answer.terms] == [t for t, _ in terms], text[:80]
        assert [w for _, w in answer.terms] == pytest.approx([w for _, w in terms], abs=2e-3), text[:80]
    assert fallback.predict(analyzer._examples(), ["12345 0xdeadbeef", "--"]) is None


def test_words_are_cut_as_scikit_learn_cuts_them():
    model = fallback._shipped()
    text = "The Disk is FULL: quota_exceeded on /dev/sda1, a b cd efg"
    expected = [
        "disk",
        "quota_exceeded",
        "dev",
        "efg",
        "disk quota_exceeded",
        "quota_exceeded dev",
        "dev efg",
    ]
    assert model.terms(text) == expected
    if fallback._sklearn():
        for text in _texts(Analyzer(learned=False)):
            assert model.terms(text) == fallback.pipeline().steps[0][1].build_analyzer()(text)


def test_a_huge_input_is_read_from_its_tail(analyzer):
    tail = ["ERROR disk quota exceeded on the volume"] * 300  # more than MAX_TEXT characters
    lines = ["ERROR permission denied for user etl"] * 200_000 + ["x" * 10**6] + tail
    started = time.perf_counter()
    answer = fallback.predict(analyzer._examples(), lines)
    assert time.perf_counter() - started < 0.5
    alone = fallback.predict(analyzer._examples(), tail)
    assert answer is not None and alone is not None and answer.category is Category.STORAGE
    assert (answer.probability, answer.terms) == (alone.probability, alone.terms)
    assert answer.lines == [len(lines) - 3, len(lines) - 2, len(lines) - 1]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc")
def test_diagnose_needs_neither_scikit_learn_nor_much_memory(tmp_path):
    log = tmp_path / "odd.log"
    log.write_text("INFO starting\nERROR something odd happened in the frobnicator widget\nINFO done\n")
    script = textwrap.dedent(
        f"""
        import contextlib, io, json, sys
        from airflow_faultcat.cli import main
        def peak_kb():  # this process's own peak (ru_maxrss would count the parent's, across exec)
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
        with contextlib.redirect_stdout(io.StringIO()) as out:
            main(["diagnose", {str(log)!r}])
        print(json.dumps({{
            "sklearn": sorted(m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")),
            "peak_mb": peak_kb() / 1024,
            "learned": "learned fallback" in out.getvalue(),
        }}))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["learned"], "the fallback should answer this log"
    assert result["sklearn"] == []
    assert result["peak_mb"] < 120, f"peak RSS {result['peak_mb']:.0f} MB"
