"""Accuracy on real failure excerpts from public issue trackers (tests/data/realworld/cases.yaml).

The same figures, with the misses listed, come from ``python bench/accuracy.py --misses``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import accuracy  # noqa: E402


@pytest.fixture(scope="module")
def rows():
    import yaml

    from airflow_faultcat.core.diagnose import Analyzer

    cases = yaml.safe_load(accuracy.CASES.read_text(encoding="utf-8"))
    return accuracy.evaluate(cases, Analyzer())


def test_cases_are_well_formed():
    cases = accuracy.load("realworld")
    assert len(cases) >= 150
    assert accuracy.malformed(cases) == []


def test_names_the_right_category_for_most_real_failures(rows):
    acc, _, _ = accuracy.summary(rows)
    assert acc >= 0.85


def test_held_out_half_is_as_good(rows):
    acc, _, _ = accuracy.summary([r for r in rows if r["held_out"]])
    assert acc >= 0.85


def test_confident_answers_are_right(rows):
    _, precision, confident = accuracy.summary(rows)
    assert confident >= len(rows) / 3
    assert precision >= 0.95
