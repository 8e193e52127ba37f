"""Fit the analyzer's confidence calibration on the train split, and write it as data.

Diagnoses every case of ``tests/data/corpus/train.yaml`` with the calibration off and records the
raw confidence of each answer and whether it is right, then fits an isotonic regression
(scikit-learn ``IsotonicRegression``: the monotone step function closest to the share of right
answers) from raw to calibrated confidence. UNKNOWN answers take no part: their confidence is 0.

It never reads the validation split. It prints the expected calibration error on train before
and after, in-sample and by 5-fold cross-validation grouped by source (so a source's cases are
never both fitted and scored), and writes ``airflow_faultcat/core/patterns/calibration.yaml``.
``tests/unit/core/test_calibration.py`` refits and checks the shipped file is this fit.

Usage: ``python bench/calibrate.py [--check]`` (``--check``: compare with the shipped file, write nothing)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import accuracy  # noqa: E402

from airflow_faultcat.core.calibration import CALIBRATION_FILE, Calibration  # noqa: E402

CEILING = 0.99
#: The lowest confidence given to an answer at all (an answer is better than UNKNOWN's 0).
FLOOR = 0.05


def collect(cases: list[dict], learned_only: bool = False) -> list[tuple[float, bool, str]]:
    """(raw confidence, right, source key) for each case answered with a category.

    :param learned_only: the learned fallback's answers on every case (its model learns from the
        library's examples only, so the train cases are new to it).
    """
    from airflow_faultcat.core.diagnose import Analyzer

    analyzer = Analyzer(calibration=False)
    rows = []
    for case in cases:
        diagnosis, features = analyzer.diagnose_with_features(case["excerpt"], learned_only=learned_only)
        # The analyzer's own answers, or the fallback's alone: each kind has its own map.
        if features is not None and (features.kind == "learned") == learned_only:
            labels = {case["label"], case.get("second_label")}
            rows.append(
                (features.raw, diagnosis.root_cause.value in labels, accuracy.source_key(case["source"]))
            )
    return rows


def isotonic(rows: list[tuple[float, bool, str]], ceiling: float = CEILING) -> list[tuple[float, float]]:
    """The points of an isotonic regression of "right" on the rows' raw confidences.

    Each step of the fit is a bucket of answers; its value is then the Laplace-smoothed share of
    right answers in it, (right + 1) / (answers + 2), not the raw share: a bucket of 26 answers of
    which 21 were right says 0.79, not 0.81. Small buckets move toward 0.5, so a confidence that
    rests on few cases is not overstated on text the fit never saw.
    """
    from collections import defaultdict

    from sklearn.isotonic import IsotonicRegression

    raws = [raw for raw, _, _ in rows]
    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(raws, [float(right) for _, right, _ in rows])
    buckets: dict[float, list[tuple[float, bool]]] = defaultdict(list)
    for (raw, right, _), step in zip(rows, model.predict(raws), strict=True):
        buckets[round(float(step), 9)].append((raw, right))
    points: list[tuple[float, float]] = []
    level = 0.0
    for step in sorted(buckets):
        members = buckets[step]
        smoothed = (sum(right for _, right in members) + 1) / (len(members) + 2)
        level = max(level, min(ceiling, max(FLOOR, smoothed)))  # stays monotone
        low, high = min(r for r, _ in members), max(r for r, _ in members)
        points += [(round(low, 4), round(level, 4)), (round(high, 4), round(level, 4))]
    return points


def fit(rows: list[tuple[float, bool, str]], learned: list[tuple[float, bool, str]] = ()) -> Calibration:
    """An isotonic calibration of the analyzer's answers and of the learned fallback's."""
    from airflow_faultcat.core import fallback

    return Calibration(
        method="isotonic regression of right answers on the raw confidence (scikit-learn), each step "
        "Laplace-smoothed",
        fitted_on="tests/data/corpus/train.yaml, answers other than UNKNOWN; never the validation split",
        points=isotonic(rows),
        learned_points=isotonic(learned, fallback.CEILING) if learned else [],
        ceiling=CEILING,
    )


def ece(confidences: list[float], rights: list[bool]) -> float:
    rows = [{"confidence": c, "right": r} for c, r in zip(confidences, rights, strict=True)]
    return round(float(accuracy.reliability(rows)[0]), 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped file, write nothing")
    args = parser.parse_args()

    from sklearn.model_selection import GroupKFold

    train = accuracy.load("train")
    rows = collect(train)
    learned = collect(train, learned_only=True)
    calibration = fit(rows, learned)
    rights = [right for _, right, _ in rows]
    cv = [0.0] * len(rows)
    for train_idx, test_idx in GroupKFold(n_splits=5).split(rows, rights, [s for *_, s in rows]):
        fold = fit([rows[i] for i in train_idx])
        for i in test_idx:
            cv[i] = fold.map(rows[i][0])
    document = calibration.model_dump(mode="json")
    document["fit"] = {
        "cases": len(rows),
        "right": sum(rights),
        "ece_raw": ece([raw for raw, _, _ in rows], rights),
        "ece_in_sample": ece([calibration.map(raw) for raw, _, _ in rows], rights),
        "ece_cross_validated_by_source": ece(cv, rights),
        "learned_cases": len(learned),
        "learned_right": sum(right for _, right, _ in learned),
        "learned_ece_in_sample": ece(
            [calibration.map(r, "learned") for r, _, _ in learned], [x for _, x, _ in learned]
        ),
    }
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=None)
    print(text.rstrip())
    if args.check:
        shipped = Calibration.model_validate(yaml.safe_load(CALIBRATION_FILE.read_text(encoding="utf-8")))
        same = shipped.points == calibration.points and shipped.learned_points == calibration.learned_points
        print("calibration_matches_shipped:", same)
        return 0 if same else 1
    header = "# Written by bench/calibrate.py from the train split; do not edit by hand.\n"
    CALIBRATION_FILE.write_text(header + text, encoding="utf-8")
    print(f"written: {CALIBRATION_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
