"""Accuracy and calibration of the analyzer on real failure excerpts from public places.

Three sets of cases, each a YAML list (the excerpt, its source, a label and an optional second
label by the rules in ``docs/patterns.md``):

- ``realworld``: ``tests/data/realworld/cases.yaml``, the older corpus the pattern library was
  written from (its odd ids were tuned against; even ids were meant as held-out);
- ``train``: ``tests/data/corpus/train.yaml``, new sources that patterns and calibration may learn from;
- ``validation``: ``tests/data/corpus/validation.yaml``, other sources (the split is by repository
  or site, see ``tests/data/corpus/README.md``): nobody writes a pattern from it.

Every excerpt is diagnosed as a log on its own (no FailureContext). For each set it prints:

- accuracy: the share of cases whose ``root_cause`` is the label or the second label, for all
  cases, the long ones (15 lines or more) and the short ones, and per labelled category;
- precision at confidence >= 0.8: the share of confident answers that are right;
- how many cases were answered UNKNOWN;
- calibration: the expected calibration error (ECE, 5 equal bins of confidence, weighted by the
  cases in each) and the reliability table (per bin: cases, mean confidence, share right).

``--misses`` lists the wrong answers of ``realworld`` and ``train`` only; validation misses stay
unread unless ``--validation-misses`` is given (reading them is how a validation set stops being one).

Usage: ``python bench/accuracy.py [--set realworld|train|validation|all] [--misses]``
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import urlparse

import yaml

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "data" / "realworld" / "cases.yaml"
CORPUS = ROOT / "tests" / "data" / "corpus"
SETS = {
    "realworld": CASES,
    "train": CORPUS / "train.yaml",
    "validation": CORPUS / "validation.yaml",
}
CONFIDENT = 0.8
LONG_LINES = 15
BINS = 5


def source_key(url: str) -> str:
    """The source a case is split by: ``github.com/owner/name`` or the site's host name."""
    parsed = urlparse(url)
    host = parsed.netloc.lower().removeprefix("www.")
    if host.endswith("github.com"):
        return "github.com/" + "/".join(parsed.path.strip("/").split("/")[:2]).lower()
    return host


def in_validation(url: str) -> bool:
    """The fixed split rule: SHA-256 of the source key, first 8 hex digits, modulo 5 in {0, 1}."""
    return int(hashlib.sha256(source_key(url).encode()).hexdigest()[:8], 16) % 5 < 2


def load(name: str) -> list[dict]:
    """The cases of one set (``realworld``, ``train`` or ``validation``)."""
    return yaml.safe_load(SETS[name].read_text(encoding="utf-8"))


def malformed(cases: list[dict]) -> list[str]:
    """What is wrong with a set of cases (empty when every case is well formed)."""
    sys.path.insert(0, str(ROOT))
    from airflow_faultcat.core.models import Category

    problems = []
    ids = [str(c.get("id")) for c in cases]
    problems += [f"duplicate id {i}" for i in sorted({i for i in ids if ids.count(i) > 1})]
    names = {c.value for c in Category} - {"UNKNOWN"}
    for case in cases:
        if not str(case.get("source", "")).startswith("https://"):
            problems.append(f"{case.get('id')}: the source must be an https:// address")
        for key in ("label", "second_label"):
            if (key == "label" or case.get(key)) and case.get(key) not in names:
                problems.append(f"{case.get('id')}: {key} {case.get(key)!r} is not a category")
        if not str(case.get("excerpt", "")).strip():
            problems.append(f"{case.get('id')}: empty excerpt")
    return problems


def evaluate(cases: list[dict], analyzer) -> list[dict]:
    """Diagnose each case; return one row per case with the answer and whether it is right."""
    rows = []
    for case in cases:
        diagnosis = analyzer.diagnose(case["excerpt"])
        labels = {case["label"], *([case["second_label"]] if case.get("second_label") else [])}
        top = diagnosis.findings[0].pattern_id if diagnosis.findings else "-"
        case_id = str(case["id"])
        tail = case_id.rsplit("_", 1)[-1]
        rows.append(
            {
                "id": case_id,
                "system": case.get("system", "?"),
                "label": case["label"],
                "labels": labels,
                "answer": diagnosis.root_cause.value,
                "confidence": diagnosis.confidence,
                "pattern": top,
                "right": diagnosis.root_cause.value in labels,
                "long": len(case["excerpt"].strip("\n").splitlines()) >= LONG_LINES,
                "held_out": tail.isdigit() and int(tail) % 2 == 0,
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


def reliability(rows: list[dict], bins: int = BINS) -> tuple[float, list[tuple[str, int, float, float]]]:
    """Expected calibration error and the reliability table.

    :return: (ECE, one row per bin: (range, cases, mean confidence, share right)).
    """
    table = []
    ece = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [
            r for r in rows if low <= r["confidence"] < high or (b == bins - 1 and r["confidence"] >= high)
        ]
        if members:
            conf = sum(r["confidence"] for r in members) / len(members)
            right = sum(r["right"] for r in members) / len(members)
            ece += len(members) / len(rows) * abs(conf - right)
        else:
            conf = right = 0.0
        table.append((f"{low:.1f}-{high:.1f}", len(members), conf, right))
    return ece, table


def report(name: str, rows: list[dict]) -> dict[str, float]:
    """Print one set's figures; return the headline numbers."""
    acc, prec, n_conf = summary(rows)
    long_rows = [r for r in rows if r["long"]]
    short_rows = [r for r in rows if not r["long"]]
    ece, table = reliability(rows)
    unknown = sum(r["answer"] == "UNKNOWN" for r in rows)
    print(f"== {name}: {len(rows)} cases")
    print(
        f"  accuracy {acc:6.1%}   precision@conf>={CONFIDENT} {prec:6.1%} ({n_conf} confident)   "
        f"UNKNOWN {unknown}   ECE {ece:.3f}"
    )
    for label, subset in (("long (>=15 lines)", long_rows), ("short", short_rows)):
        s_acc, s_prec, s_conf = summary(subset)
        print(
            f"  {label:<18} {len(subset):>4} cases  accuracy {s_acc:6.1%}  precision {s_prec:6.1%} ({s_conf})"
        )
    by_label: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r)
    print(
        "  per category: "
        + ", ".join(f"{k} {sum(r['right'] for r in v)}/{len(v)}" for k, v in sorted(by_label.items()))
    )
    print(
        "  reliability: " + "  ".join(f"[{rng}] n={n} conf={c:.2f} right={a:.2f}" for rng, n, c, a in table)
    )
    return {"accuracy": acc, "precision": prec, "ece": ece, "long": summary(long_rows)[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=[*SETS, "all"], default="all")
    parser.add_argument("--misses", action="store_true", help="list the wrong answers (not of validation)")
    parser.add_argument("--validation-misses", action="store_true", help="list validation misses too")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from airflow_faultcat.core.diagnose import Analyzer

    train, validation = load("train"), load("validation")
    crossing = {source_key(c["source"]) for c in train} & {source_key(c["source"]) for c in validation}
    wrong_side = [c["id"] for c in train if in_validation(c["source"])] + [
        c["id"] for c in validation if not in_validation(c["source"])
    ]
    if crossing or wrong_side:
        print(f"the split is broken: sources on both sides {sorted(crossing)}, wrong side {wrong_side}")
        return 2

    analyzer = Analyzer()
    names = list(SETS) if args.set == "all" else [args.set]
    results = {}
    for name in names:
        rows = evaluate(load(name), analyzer)
        results[name] = report(name, rows)
        if name == "realworld":
            for half, subset in (
                ("dev (odd ids)", [r for r in rows if not r["held_out"]]),
                ("held-out (even ids)", [r for r in rows if r["held_out"]]),
            ):
                h_acc, h_prec, h_conf = summary(subset)
                print(f"  {half:<20} accuracy {h_acc:6.1%}  precision {h_prec:6.1%} ({h_conf})")
        answers = Counter(r["answer"] for r in rows)
        print("  answers: " + ", ".join(f"{k} {v}" for k, v in answers.most_common()))
        show = args.validation_misses if name == "validation" else args.misses
        if show:
            for r in rows:
                if not r["right"]:
                    print(
                        f"  miss {r['id']:<8} {r['system']:<11} want {'/'.join(sorted(r['labels'])):<32} "
                        f"got {r['answer']:<19} {r['confidence']:.2f} {r['pattern']}"
                    )
    for name, figures in results.items():
        print(f"{name}_accuracy: {figures['accuracy']:.3f}")
        print(f"{name}_precision_at_0.8: {figures['precision']:.3f}")
        print(f"{name}_long_accuracy: {figures['long']:.3f}")
        print(f"{name}_ece: {figures['ece']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
