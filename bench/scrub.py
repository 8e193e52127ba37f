"""How well the secret scrubber does on the independent corpus of pasted credentials.

The corpus is ``tests/data/scrub/corpus/`` (see its README): ``train.yaml`` and
``validation.yaml``, split by source (GitHub repository or site). Each secret case is a text as
people paste it (a command, a log line, a config file, HTTP traffic) with the secret values in it
listed; each look-alike is a text the scrubber must leave unchanged.

Every text is passed on its own to ``airflow_faultcat.core.scrub.scrub`` (no known secrets). A
secret *survives* when it is still in the output, or, for a secret of 16 characters or more, when
any 8-character substring of it is. For each split it prints: secret cases, secrets, secrets that
survive, cases with a leak, look-alike cases changed, leaks per form, and throughput.

The individual misses (case id, form, scrubbed output) are listed for train only; validation
misses stay unread unless ``--validation-misses`` is given (reading them is how a validation set
stops being one). Quote validation figures as such.

Usage::

    python bench/scrub.py [--corpus train|validation|both] [--validation-misses] [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "scrub" / "corpus"
SPLITS = ("train", "validation")
#: A secret this long or longer also survives when any fragment of FRAGMENT characters is kept.
LONG_SECRET = 16
FRAGMENT = 8


def load(split: str) -> list[dict]:
    """The cases of one split (``train`` or ``validation``)."""
    return yaml.safe_load((CORPUS / f"{split}.yaml").read_text(encoding="utf-8"))


def survives(secret: str, output: str) -> bool:
    """Whether a secret, or for a long one any FRAGMENT-character piece of it, is still in output."""
    if secret in output:
        return True
    if len(secret) < LONG_SECRET:
        return False
    return any(secret[i : i + FRAGMENT] in output for i in range(len(secret) - FRAGMENT + 1))


def run(cases: list[dict], scrub, repeat: int) -> tuple[list[dict], float]:
    """Scrub every text; the rows of results and the best wall time of ``repeat`` full passes."""
    rows = []
    for case in cases:
        try:
            output, error = scrub(case["text"]), None
        except Exception as exc:  # a crash leaks the text as it was
            output, error = case["text"], f"{type(exc).__name__}: {exc}"
        secrets = case.get("secrets") or []
        rows.append(
            {
                "id": case["id"],
                "form": case["form"],
                "secret_case": bool(secrets),
                "secrets": secrets,
                "kept": [s for s in secrets if survives(s, output)],
                "changed": output != case["text"],
                "output": output,
                "error": error,
            }
        )
    best = float("inf")
    for _ in range(max(repeat, 1)):
        start = time.perf_counter()
        for case in cases:
            try:
                scrub(case["text"])
            except Exception:  # already reported above
                pass
        best = min(best, time.perf_counter() - start)
    return rows, best


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:6.1%}" if whole else "     -"


def report(
    split: str, cases: list[dict], rows: list[dict], seconds: float, repeat: int, show_misses: bool
) -> dict:
    secret_rows = [r for r in rows if r["secret_case"]]
    look_rows = [r for r in rows if not r["secret_case"]]
    n_secrets = sum(len(r["secrets"]) for r in secret_rows)
    n_kept = sum(len(r["kept"]) for r in secret_rows)
    leaky = [r for r in secret_rows if r["kept"]]
    changed = [r for r in look_rows if r["changed"]]
    size = sum(len(c["text"].encode("utf-8")) for c in cases)

    print(f"== {split}: {len(rows)} cases ==")
    print(f"  secret cases           {len(secret_rows):5d}")
    print(f"  secrets                {n_secrets:5d}")
    print(f"  secrets surviving      {n_kept:5d}  {_pct(n_kept, n_secrets)}")
    print(f"  cases with a leak      {len(leaky):5d}  {_pct(len(leaky), len(secret_rows))}")
    share = _pct(len(changed), len(look_rows))
    print(f"  look-alikes changed    {len(changed):5d}  {share}  of {len(look_rows)}")
    errors = [r for r in rows if r["error"]]
    if errors:
        print(f"  scrub raised           {len(errors):5d}")
    rate = len(rows) / seconds if seconds else float("inf")
    mib = size / seconds / 2**20 if seconds else float("inf")
    took = f"{size:,} bytes in {seconds * 1e3:.1f} ms, best of {repeat}"
    print(f"  throughput             {rate:,.0f} texts/s, {mib:.2f} MiB/s ({took})")
    print("  by form                leaky cases / cases   surviving secrets / secrets")
    cases_by_form, leaky_by_form = Counter(), Counter()
    secrets_by_form, kept_by_form = Counter(), Counter()
    for r in secret_rows:
        cases_by_form[r["form"]] += 1
        leaky_by_form[r["form"]] += bool(r["kept"])
        secrets_by_form[r["form"]] += len(r["secrets"])
        kept_by_form[r["form"]] += len(r["kept"])
    for form in sorted(cases_by_form):
        print(
            f"    {form:<18} {leaky_by_form[form]:4d} / {cases_by_form[form]:<4d}"
            f"          {kept_by_form[form]:4d} / {secrets_by_form[form]}"
        )
    if show_misses:
        for r in leaky:
            print(f"  -- leak {r['id']} [{r['form']}] kept: {', '.join(r['kept'])}")
            print("\n".join("     | " + line for line in r["output"].splitlines()))
        for r in changed:
            print(f"  -- changed look-alike {r['id']}")
            print("\n".join("     | " + line for line in r["output"].splitlines()))
        for r in errors:
            print(f"  -- error {r['id']}: {r['error']}")
    return {
        "secrets": n_secrets,
        "kept": n_kept,
        "secret_cases": len(secret_rows),
        "leaky_cases": len(leaky),
        "lookalikes": len(look_rows),
        "lookalikes_changed": len(changed),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=[*SPLITS, "both"], default="both")
    parser.add_argument("--validation-misses", action="store_true", help="list validation misses too")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the best is reported")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from airflow_faultcat.core.scrub import scrub

    splits = SPLITS if args.corpus == "both" else (args.corpus,)
    figures = {}
    for split in splits:
        cases = load(split)
        rows, seconds = run(cases, scrub, args.repeat)
        show = args.validation_misses if split == "validation" else True
        figures[split] = report(split, cases, rows, seconds, max(args.repeat, 1), show)
    for split, f in figures.items():
        print(f"{split}_secret_survival: {f['kept'] / f['secrets']:.3f}")
        print(f"{split}_leaky_case_rate: {f['leaky_cases'] / f['secret_cases']:.3f}")
        print(f"{split}_lookalike_change_rate: {f['lookalikes_changed'] / f['lookalikes']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
