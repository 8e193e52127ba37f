"""Fit the learned fallback on the library's examples, and write it as data.

Fits :func:`airflow_faultcat.core.fallback.pipeline` (TF-IDF over words and word pairs, then a
logistic regression; scikit-learn) on every pattern's and signal entry's examples
(``Analyzer()._examples()``, in the fixed order of ``fallback.training_data``) and writes its
parameters to ``airflow_faultcat/core/patterns/fallback_model.json``, with the sha256 of that
training data. At run time the fallback reads that file and needs no scikit-learn.
``tests/unit/core/test_fallback.py`` refits and checks the shipped file is this fit.

Run it whenever a pattern's or signal's examples change, then ``bench/calibrate.py`` (it
calibrates the fallback's answers).

Usage: ``python bench/fit_fallback.py [--check]`` (``--check``: compare with the shipped file, write nothing)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airflow_faultcat.core import fallback  # noqa: E402

#: How far a refit's weights, intercepts and idf values may be from the shipped ones (the solver
#: stops at a tolerance, and other versions of scikit-learn or BLAS round differently).
TOLERANCE = 1e-3


def fit() -> dict[str, Any]:
    """The document of a fit of the current library's examples."""
    from airflow_faultcat.core.diagnose import Analyzer

    x, y = fallback.training_data(Analyzer()._examples())
    model = fallback.pipeline().fit(x, y)
    return fallback.export(model, fallback.training_hash(x, y), len(x))


def differences(shipped: dict[str, Any], refit: dict[str, Any], tolerance: float = TOLERANCE) -> list[str]:
    """How ``shipped`` differs from ``refit`` beyond the tolerance (empty when it is that fit)."""
    problems = []
    for key in ("training_sha256", "training_examples", "vectorizer", "classes"):
        if shipped.get(key) != refit.get(key):
            problems.append(f"{key} differs")
    if set(shipped.get("features", {})) != set(refit["features"]):
        problems.append("the vocabulary differs")
        return problems

    def far(a: float, b: float) -> bool:
        return abs(a - b) > tolerance * max(1.0, abs(b))

    if len(shipped.get("intercepts", [])) != len(refit["intercepts"]) or any(
        far(a, b) for a, b in zip(shipped["intercepts"], refit["intercepts"], strict=True)
    ):
        problems.append("the intercepts differ")
    worst = ("", 0.0)
    for term, raw in refit["features"].items():
        old = [float(v) for v in shipped["features"][term].split()]
        new = [float(v) for v in raw.split()]
        if len(old) != len(new):
            problems.append(f"feature {term!r}: {len(old)} numbers, expected {len(new)}")
            continue
        gap = max(abs(a - b) / max(1.0, abs(b)) for a, b in zip(old, new, strict=True))
        if gap > worst[1]:
            worst = (term, gap)
    if worst[1] > tolerance:
        problems.append(f"weights differ, the most for {worst[0]!r}: {worst[1]:.2g}")
    return problems


def render(document: dict[str, Any]) -> str:
    """The file's text: one feature per line, so a refit's diff reads term by term."""
    dump = json.dumps
    head = [
        f"{dump(key)}: {dump(value, ensure_ascii=False)}"
        for key, value in document.items()
        if key != "features"
    ]
    features = [
        f"{dump(term, ensure_ascii=False)}: {dump(raw)}" for term, raw in document["features"].items()
    ]
    return "{\n" + ",\n".join(head) + ',\n"features": {\n' + ",\n".join(features) + "\n}\n}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped file, write nothing")
    args = parser.parse_args()

    document = fit()
    print(
        f"examples: {document['training_examples']}, classes: {len(document['classes'])}, "
        f"features: {len(document['features'])}, training_sha256: {document['training_sha256']}"
    )
    if args.check:
        shipped = json.loads(fallback.MODEL_FILE.read_text(encoding="utf-8"))
        problems = differences(shipped, document)
        print("fallback_matches_shipped:", not problems, *problems, sep="\n  " if problems else " ")
        return 1 if problems else 0
    fallback.MODEL_FILE.write_text(render(document), encoding="utf-8")
    size = fallback.MODEL_FILE.stat().st_size
    print(f"written: {fallback.MODEL_FILE.relative_to(ROOT)} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
