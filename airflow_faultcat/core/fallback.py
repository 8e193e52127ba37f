"""A learned fallback for logs no pattern or signal decides: a linear model over their words.

When nothing in the library matches convincingly, the error lines of a log still say a lot in
words no pattern was written for. This model reads them: TF-IDF over words and word pairs and a
multinomial logistic regression, trained on the library itself - every pattern's and every signal
entry's examples, labelled with their category. So it learns from nothing but the shipped data.

The model is fitted ahead of time, not in every process: ``bench/fit_fallback.py`` fits it with
scikit-learn (deterministic solver, data in a fixed order) and writes its parameters to
``patterns/fallback_model.json`` (the vocabulary with each term's idf and weights per category,
the intercepts, the categories and how text is cut into words), with a hash of the training data;
``tests/unit/core/test_fallback.py`` checks the shipped file is a fit of the current examples.
Prediction reads that file (once per process) and needs no scikit-learn: the same words, the same
TF-IDF vector and a softmax over the categories' scores, in plain Python over the few words a log
holds.

scikit-learn is needed only to fit (``pip install airflow-faultcat[learned]``): by the fit script,
and when :func:`predict` is given examples other than the ones the shipped model was fitted on (a
custom library), which are then fitted in process as before. Without it such examples are read
with the shipped model.

Its answer names the words that weighed most for the category it chose, and the lines holding
them are its evidence.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_faultcat.core.models import Category

#: Words: letters, then letters or underscores (numbers, ids and hashes carry no category).
TOKEN_PATTERN = r"(?u)\b[A-Za-z][A-Za-z_]{2,}\b"
#: scikit-learn's C for the logistic regression (inverse regularisation).
C = 5.0
#: A learned answer is never confident: its calibrated confidence stays below this.
CEILING = 0.75
#: Characters of error lines given to the model at most.
MAX_TEXT = 8000
#: The fitted model shipped with the package (written by ``bench/fit_fallback.py``).
MODEL_FILE = Path(__file__).resolve().parent / "patterns" / "fallback_model.json"
#: Significant digits the shipped idf values, weights and intercepts keep.
DIGITS = 6

_LOCK = threading.Lock()
#: Models fitted in process, by the hash of their training data (examples of a custom library).
_FITTED: dict[str, _Model] = {}
_SHIPPED: list[_Model | None] = []
#: The last examples hashed, their length and hash (the same list comes with every prediction).
_LAST_KEY: list[tuple[Sequence[tuple[str, Category]], int, str]] = []


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


def training_data(texts: Sequence[tuple[str, Category]]) -> tuple[list[str], list[str]]:
    """The texts and labels in a fixed order (the model must not depend on load order)."""
    pairs = sorted({(text, category.value) for text, category in texts})
    return [text for text, _ in pairs], [label for _, label in pairs]


def training_hash(texts: Sequence[str], labels: Sequence[str]) -> str:
    """The sha256 of the training data (as :func:`training_data` orders it)."""
    joined = "\0".join(f"{a}\1{b}" for a, b in zip(texts, labels, strict=True))
    return hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()


def pipeline():
    """The unfitted scikit-learn pipeline the model is (needs scikit-learn)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(
            ngram_range=(1, 2), sublinear_tf=True, token_pattern=TOKEN_PATTERN, stop_words="english"
        ),
        LogisticRegression(C=C, solver="newton-cg", max_iter=200),
    )


def _num(value: float) -> str:
    text = f"{float(value):.{DIGITS}g}"
    return "0" if text == "-0" else text


def export(model, key: str, examples: int) -> dict[str, Any]:
    """A fitted :func:`pipeline`'s parameters as the document :data:`MODEL_FILE` holds.

    :param model: the fitted pipeline.
    :param key: the :func:`training_hash` of what it was fitted on.
    :param examples: how many (text, label) pairs it was fitted on.
    """
    import sklearn

    vectorizer, classifier = model.steps[0][1], model.steps[1][1]
    stop_words = sorted(vectorizer.get_stop_words() or ())
    names = vectorizer.get_feature_names_out()
    coef = classifier.coef_
    features = {
        str(name): " ".join([_num(vectorizer.idf_[i]), *(_num(row[i]) for row in coef)])
        for i, name in enumerate(names)
    }
    return {
        "written_by": "bench/fit_fallback.py; do not edit by hand",
        "training_sha256": key,
        "training_examples": examples,
        "fitted_with": f"scikit-learn {sklearn.__version__}",
        "vectorizer": {
            "lowercase": bool(vectorizer.lowercase),
            "token_pattern": vectorizer.token_pattern,
            "ngram_range": list(vectorizer.ngram_range),
            "stop_words": stop_words,
            "sublinear_tf": bool(vectorizer.sublinear_tf),
            "norm": vectorizer.norm,
        },
        "classifier": {
            "kind": "logistic regression, softmax over the classes (one row of weights: sigmoid)",
            "C": float(classifier.C),
            "solver": classifier.solver,
        },
        "classes": [str(c) for c in classifier.classes_],
        "intercepts": [float(_num(b)) for b in classifier.intercept_],
        "features": features,
        "features_format": "term: idf, then its weight in each row of weights (a row per class, as classes)",
    }


class _Model:
    """A fitted model read from its document: TF-IDF vector, then the classes' probabilities."""

    def __init__(self, document: dict[str, Any]) -> None:
        vectorizer = document["vectorizer"]
        if vectorizer["ngram_range"] != [1, 2] or vectorizer["norm"] != "l2" or not vectorizer["lowercase"]:
            raise ValueError("unsupported vectorizer settings")
        self.key: str = document["training_sha256"]
        self.token = re.compile(vectorizer["token_pattern"])
        self.stop_words = frozenset(vectorizer["stop_words"])
        self.sublinear_tf = bool(vectorizer["sublinear_tf"])
        self.classes = [Category(c) for c in document["classes"]]
        self.intercepts = [float(b) for b in document["intercepts"]]
        self.rows = len(self.intercepts)
        if self.rows != (1 if len(self.classes) == 2 else len(self.classes)):
            raise ValueError("as many intercepts as rows of weights")
        # Term -> "idf w1 w2 ...": parsed only for the few terms a text holds.
        self._raw: dict[str, str] = document["features"]
        self._parsed: dict[str, tuple[float, ...]] = {}

    def _params(self, term: str) -> tuple[float, ...] | None:
        params = self._parsed.get(term)
        if params is None:
            raw = self._raw.get(term)
            if raw is None:
                return None
            params = tuple(float(v) for v in raw.split())
            if len(params) != self.rows + 1:
                raise ValueError(f"feature {term!r}: expected {self.rows + 1} numbers")
            self._parsed[term] = params
        return params

    def terms(self, text: str) -> list[str]:
        """The words and word pairs of ``text``: scikit-learn's word analyzer with stop words."""
        tokens = [t for t in self.token.findall(text.lower()) if t not in self.stop_words]
        return tokens + [f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)]

    def vector(self, text: str) -> dict[str, tuple[float, tuple[float, ...]]]:
        """The l2-normalised TF-IDF vector of ``text``: term -> (value, its parameters)."""
        values: dict[str, tuple[float, tuple[float, ...]]] = {}
        for term, count in Counter(self.terms(text)).items():
            params = self._params(term)
            if params is not None:
                tf = 1.0 + math.log(count) if self.sublinear_tf else float(count)
                values[term] = (tf * params[0], params)
        norm = math.sqrt(sum(v * v for v, _ in values.values()))
        return {term: (v / norm, params) for term, (v, params) in values.items()} if norm else {}

    def probabilities(self, vector: dict[str, tuple[float, tuple[float, ...]]]) -> list[float]:
        scores = list(self.intercepts)
        for value, params in vector.values():
            for k in range(self.rows):
                scores[k] += value * params[k + 1]
        if self.rows == 1:  # a binary model: the sigmoid of the second class's score
            p = 1.0 / (1.0 + math.exp(-scores[0])) if scores[0] >= 0 else _sigmoid_neg(scores[0])
            return [1.0 - p, p]
        top = max(scores)
        exps = [math.exp(s - top) for s in scores]
        total = sum(exps)
        return [e / total for e in exps]

    def weight(self, params: tuple[float, ...], best: int) -> float:
        if self.rows == 1:  # a binary model keeps one row of weights, for its second class
            return params[1] if best == 1 else -params[1]
        return params[best + 1]


def _sigmoid_neg(score: float) -> float:
    e = math.exp(score)
    return e / (1.0 + e)


def _shipped() -> _Model | None:
    """The shipped model, read once per process (``None`` when its file is missing or broken)."""
    if not _SHIPPED:
        with _LOCK:
            if not _SHIPPED:
                try:
                    model: _Model | None = _Model(json.loads(MODEL_FILE.read_text(encoding="utf-8")))
                except (OSError, ValueError, KeyError, TypeError):
                    model = None
                _SHIPPED.append(model)
    return _SHIPPED[0]


def available() -> bool:
    """Whether the fallback can answer: the shipped model file is there and readable."""
    return _shipped() is not None


def _sklearn() -> bool:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


def _model(examples: Sequence[tuple[str, Category]]) -> _Model | None:
    """The model for ``examples``: the shipped one when it was fitted on them, else a fit of them.

    Without scikit-learn, examples the shipped model was not fitted on are read with it anyway.
    """
    shipped = _shipped()
    last = _LAST_KEY[0] if _LAST_KEY else None
    if last is not None and last[0] is examples and last[1] == len(examples):
        key = last[2]  # the caller's list of examples again (an Analyzer keeps one): hashed already
    else:
        x, y = training_data(examples)
        key = training_hash(x, y)
        _LAST_KEY[:] = [(examples, len(examples), key)]
    if shipped is not None and shipped.key == key:
        return shipped
    if not _sklearn():
        return shipped
    with _LOCK:
        model = _FITTED.get(key)
        if model is None:
            x, y = training_data(examples)
            fitted = pipeline().fit(x, y)
            model = _FITTED[key] = _Model(json.loads(json.dumps(export(fitted, key, len(x)))))
    return model


def _tail(lines: Sequence[str]) -> tuple[str, int]:
    """The last :data:`MAX_TEXT` characters of the lines joined, and the first line they reach."""
    size, first = 0, len(lines)
    while first > 0 and size <= MAX_TEXT:
        first -= 1
        size += min(len(lines[first]), MAX_TEXT) + 1
    return "\n".join(line[-MAX_TEXT:] for line in lines[first:])[-MAX_TEXT:], first


def predict(examples: Sequence[tuple[str, Category]], lines: Sequence[str]) -> LearnedAnswer | None:
    """Read error lines with the model trained on ``examples``.

    :param examples: (example line, category) pairs: the library's examples (the shipped model
        is fitted on the default library's; other examples are fitted in process when
        scikit-learn is installed).
    :param lines: the error lines of the log, oldest first; the last :data:`MAX_TEXT` characters
        of them are read.
    :return: the answer, or ``None`` when there is nothing to read or no model.
    """
    if not lines or not examples:
        return None
    model = _model(examples)
    if model is None:
        return None
    text, first = _tail(lines)
    vector = model.vector(text)
    if not vector:
        return None
    probabilities = model.probabilities(vector)
    best = max(range(len(probabilities)), key=probabilities.__getitem__)  # the first of equals
    contributions = sorted(
        ((value * model.weight(params, best), term) for term, (value, params) in vector.items()), reverse=True
    )
    terms = [(name, round(weight, 3)) for weight, name in contributions[:5] if weight > 0]
    words = [name for name, _ in terms]
    held = [i for i in range(first, len(lines)) if any(w in lines[i][-MAX_TEXT:].lower() for w in words)]
    return LearnedAnswer(model.classes[best], float(probabilities[best]), terms, held[-3:])
