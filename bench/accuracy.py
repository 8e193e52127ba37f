"""Accuracy of the analyzer on real failure excerpts from public issue trackers.

Reads ``tests/data/realworld/cases.yaml`` (each case: the excerpt, its source thread, a primary
label and an optional second label), diagnoses every excerpt as a log on its own (no
FailureContext) and prints:

- accuracy: the share of cases whose ``root_cause`` is the label or the second label;
- precision at confidence >= 0.8: the share of those confident answers that are right;
- the same split into the *dev* half (odd ids: patterns may be tuned against it) and the
  *held-out* half (even ids: nobody writes patterns from it), per system, and the misses.

Usage: ``python bench/accuracy.py [--cases FILE] [--misses]``
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "data" / "realworld" / "cases.yaml"
CONFIDENT = 0.8


def evaluate(cases: list[dict], analyzer) -> list[dict]:
    """Diagnose each case; return one row per case with the answer and whether it is right."""
    rows = []
    for case in cases:
        diagnosis = analyzer.diagnose(case["excerpt"])
        labels = {case["label"], *([case["second_label"]] if case.get("second_label") else [])}
        top = diagnosis.findings[0].pattern_id if diagnosis.findings else "-"
        rows.append(
            {
                "id": case["id"],
                "system": case.get("system", "?"),
                "labels": labels,
                "answer": diagnosis.root_cause.value,
                "confidence": diagnosis.confidence,
                "pattern": top,
                "right": diagnosis.root_cause.value in labels,
                "held_out": int(str(case["id"]).rsplit("_", 1)[-1]) % 2 == 0,
            }
        )
    return rows


def summary(rows: list[dict]) -> tuple[float, float, int]:
    """(accuracy, precision at confidence >= 0.8, number of confident answers)."""
    if not rows:
        return 0.0, 1.0, 0
    accuracy = sum(r["right"] for r in rows) / len(rows)
    confident = [r for r in rows if r["confidence"] >= CONFIDENT]
    precision = sum(r["right"] for r in confident) / len(confident) if confident else 1.0
    return accuracy, precision, len(confident)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=CASES)
    parser.add_argument("--misses", action="store_true", help="list every wrong answer")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from airflow_faultcat.core.diagnose import Analyzer

    cases = yaml.safe_load(args.cases.read_text(encoding="utf-8"))
    rows = evaluate(cases, Analyzer())
    for name, subset in (
        ("all", rows),
        ("dev (odd ids)", [r for r in rows if not r["held_out"]]),
        ("held-out (even ids)", [r for r in rows if r["held_out"]]),
    ):
        acc, prec, n_conf = summary(subset)
        print(
            f"{name:<20} cases {len(subset):>4}  accuracy {acc:6.1%}  "
            f"precision@conf>={CONFIDENT} {prec:6.1%} ({n_conf} confident)"
        )
    by_system: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_system[r["system"]].append(r)
    print(
        "per system: "
        + ", ".join(f"{s} {sum(r['right'] for r in rs)}/{len(rs)}" for s, rs in sorted(by_system.items()))
    )
    answers = Counter(r["answer"] for r in rows)
    print("answers: " + ", ".join(f"{k} {v}" for k, v in answers.most_common()))
    if args.misses:
        for r in rows:
            if not r["right"]:
                print(
                    f"  miss {r['id']:<8} {r['system']:<11} want {'/'.join(sorted(r['labels'])):<32} "
                    f"got {r['answer']:<19} {r['confidence']:.2f} {r['pattern']}"
                )
    acc, prec, _ = summary(rows)
    print(f"realworld_accuracy: {acc:.3f}")
    print(f"realworld_precision_at_0.8: {prec:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
