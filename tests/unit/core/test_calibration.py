"""Confidence calibration: the shipped fit is reproducible, and applying it behaves."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from airflow_faultcat.core.calibration import Calibration, ConfidenceFeatures, load_calibration

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))


def test_the_shipped_calibration_is_the_fit_of_the_current_library():
    pytest.importorskip("sklearn")
    import accuracy
    import calibrate

    train = accuracy.load("train")
    refit = calibrate.fit(calibrate.collect(train), calibrate.collect(train, learned_only=True))
    shipped = load_calibration()
    assert (shipped.points, shipped.learned_points) == (refit.points, refit.learned_points), (
        "run python bench/calibrate.py"
    )


def test_it_is_monotone_and_never_above_its_ceiling():
    calibration = load_calibration()
    raws = [i / 100 for i in range(101)]
    mapped = [calibration.map(r) for r in raws]
    assert mapped == sorted(mapped)
    assert max(mapped) <= calibration.ceiling


def test_interpolates_between_points_and_clips_outside():
    calibration = Calibration(method="t", fitted_on="t", points=[(0.2, 0.4), (0.6, 0.8)], ceiling=0.99)
    assert calibration.map(0.0) == 0.4
    assert calibration.map(0.4) == pytest.approx(0.6)
    assert calibration.map(1.0) == 0.8


def test_rejects_points_that_go_down():
    with pytest.raises(ValidationError):
        Calibration(method="t", fitted_on="t", points=[(0.2, 0.8), (0.6, 0.4)])


def test_the_reason_names_what_raised_and_lowered_it():
    calibration = Calibration(method="t", fitted_on="t", points=[(0.0, 0.1), (1.0, 0.9)])
    confidence, reason = calibration.apply(
        ConfidenceFeatures(raw=0.5, kind="generic", agreeing_lines=2, at_exception=True, contested=True)
    )
    assert confidence == 0.5
    assert "raw 0.50" in reason
    assert "raised by the exception that failed the task, 2 agreeing line(s)" in reason
    assert "lowered by only a generic phrasing, another category matching too" in reason
