"""A learned fallback for logs no pattern or signal decides: a linear model over their words.

When nothing in the library matches convincingly, the error lines of a log still say a lot in
words no pattern was written for. This model reads them: TF-IDF over words and word pairs and a
multinomial logistic regression (scikit-learn), trained on the library itself - every pattern's
and every signal entry's examples, labelled with their category. So it learns from nothing but
the shipped data, is built the same way in every process (deterministic solver, data in a fixed
order) and needs no download. It is built on first use (well under a second) and kept per library.

scikit-learn is optional (``pip install airflow-faultcat[learned]``); without it the analyzer
answers UNKNOWN as before and says why in the ``diagnostics_gap``.

Its answer names the words that weighed most for the category it chose, and the lines holding
them are its evidence.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from airflow_faultcat.core.models import Category

#: Words: letters, then letters or underscores (numbers, ids and hashes carry no category).
TOKEN_PATTERN = r"(?u)\b[A-Za-z][A-Za-z_]{2,}\b"
#: scikit-learn's C for the logistic regression (inverse regularisation).
C = 5.0
#: A learned answer is never confident: its calibrated confidence stays below this.
CEILING = 0.75
#: Characters of error lines given to the model at most.
MAX_TEXT = 8000

_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class LearnedAnswer:
    """What the fallback read.

    :param category: the category it chose.
    :param probability: the model's probability for it (0-1, not calibrated).
    :param terms: the words that weighed most for it, with their weight, highest first.
    :param lines: indexes into the lines given whose text holds one of those words.
    """

    category: Category
    probability: float
    terms: list[tuple[str, float]]
    lines: list[int]


def available() -> bool:
    """Whether scikit-learn is installed (the fallback needs it)."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def training_data(texts: Sequence[tuple[str, Category]]) -> tuple[list[str], list[str]]:
    """The texts and labels in a fixed order (the model must not depend on load order)."""
    pairs = sorted({(text, category.value) for text, category in texts})
    return [text for text, _ in pairs], [label for _, label in pairs]


def _model(examples: Sequence[tuple[str, Category]]):
    x, y = training_data(examples)
    key = hashlib.sha256("\0".join(f"{a}\1{b}" for a, b in zip(x, y, strict=True)).encode()).hexdigest()
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline

            model = make_pipeline(
                TfidfVectorizer(
                    ngram_range=(1, 2), sublinear_tf=True, token_pattern=TOKEN_PATTERN, stop_words="english"
                ),
                LogisticRegression(C=C, solver="newton-cg", max_iter=200),
            )
            model.fit(x, y)
            _MODELS[key] = model
    return model


def predict(examples: Sequence[tuple[str, Category]], lines: Sequence[str]) -> LearnedAnswer | None:
    """Read error lines with the model trained on ``examples``.

    :param examples: (example line, category) pairs: the library's examples.
    :param lines: the error lines of the log, oldest first.
    :return: the answer, or ``None`` when there is nothing to read or scikit-learn is missing.
    """
    if not lines or not examples or not available():
        return None
    model = _model(examples)
    text = "\n".join(lines)[-MAX_TEXT:]
    vectorizer, classifier = model.steps[0][1], model.steps[1][1]
    features = vectorizer.transform([text])
    if features.nnz == 0:
        return None
    probabilities = classifier.predict_proba(features)[0]
    best = int(probabilities.argmax())
    label = classifier.classes_[best]
    row = features.tocoo()
    names = vectorizer.get_feature_names_out()
    if len(classifier.classes_) > 2:
        weights = classifier.coef_[best]
    else:  # a binary model keeps one row of weights, for its second class
        weights = classifier.coef_[0] if best == 1 else -classifier.coef_[0]
    pairs = zip(row.col, row.data, strict=True)
    contributions = sorted(((float(v * weights[col]), str(names[col])) for col, v in pairs), reverse=True)
    terms = [(name, round(weight, 3)) for weight, name in contributions[:5] if weight > 0]
    words = [name for name, _ in terms]
    held = [i for i, line in enumerate(lines) if any(w in line.lower() for w in words)]
    return LearnedAnswer(Category(label), float(probabilities[best]), terms, held[-3:])
