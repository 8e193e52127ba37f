"""Calibrated confidence: the analyzer's raw confidence -> the chance that the answer is right.

The analyzer ranks root causes by scores that are not probabilities; its raw confidence combines
the winning score with its margin over the next category. An isotonic regression (a monotone
step function, interpolated between its steps) turns that into a confidence that means what it
says: of the answers given 0.8, about 8 in 10 are right. It is fitted by ``bench/calibrate.py`` on
the *train* split of ``tests/data/corpus`` (real failure excerpts; never the validation split) and
shipped as data (``patterns/calibration.yaml``); this module only applies it, so the core needs
no machine-learning library at run time.

The confidence reason names what raised and lowered the raw confidence (the kind of evidence,
where it was read, agreeing lines, a competing category) and the calibration applied to it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CALIBRATION_FILE = Path(__file__).parent / "patterns" / "calibration.yaml"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_RAISE = {
    "specific": "a specific pattern",
    "signal": "a signal (exception class, status or error code)",
}
_LOWER = {
    "learned": "only the learned fallback (no pattern or signal)",
    "generic": "only a generic phrasing",
    "symptom": "only a symptom (an exit, a signal, a wrapper line)",
}


@dataclass(frozen=True)
class ConfidenceFeatures:
    """What the ranking knew about its answer.

    :param raw: the uncalibrated confidence (0-1): winning score scaled by its margin.
    :param kind: what decided: ``specific`` (pattern), ``signal``, ``generic`` or ``symptom``.
    :param agreeing_lines: other lines backing the same category.
    :param at_exception: the deciding line is the exception that ended the failure.
    :param contested: another category scored above zero.
    """

    raw: float
    kind: str
    agreeing_lines: int
    at_exception: bool
    contested: bool

    def explain(self) -> tuple[list[str], list[str]]:
        """What raised and what lowered the raw confidence, in words."""
        raised, lowered = [], []
        if self.kind in _RAISE:
            raised.append(_RAISE[self.kind])
        if self.kind in _LOWER:
            lowered.append(_LOWER[self.kind])
        if self.at_exception:
            raised.append("the exception that failed the task")
        if self.agreeing_lines:
            raised.append(f"{self.agreeing_lines} agreeing line(s)")
        if self.contested:
            lowered.append("another category matching too")
        return raised, lowered


class Calibration(BaseModel):
    """A fitted calibration: points of a monotone map from raw to calibrated confidence.

    :param method: how it was fitted (for people).
    :param fitted_on: the data it was fitted on (for people).
    :param points: ``[raw, calibrated]`` pairs, raw increasing; between two points the map is
        linear, outside them it is the nearest point's value.
    :param learned_points: the same for answers of the learned fallback (its raw confidence is
        the model's probability); empty: ``points`` serve.
    :param ceiling: the highest confidence ever given.
    :param fit: figures of the fit (cases, calibration error), for people.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str
    fitted_on: str
    points: list[tuple[float, float]] = Field(min_length=1)
    learned_points: list[tuple[float, float]] = Field(default_factory=list)
    ceiling: float = Field(default=0.99, gt=0.0, le=1.0)
    fit: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _monotone(self) -> Calibration:
        for points in (self.points, self.learned_points):
            for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
                if x1 < x0 or y1 < y0:
                    raise ValueError("calibration points must increase in raw and calibrated confidence")
            for x, y in points:
                if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                    raise ValueError("calibration points must lie in [0, 1]")
        return self

    def map(self, raw: float, kind: str = "specific") -> float:
        """The calibrated confidence for a raw confidence (0-1) of an answer of that kind."""
        points = self.learned_points if kind == "learned" and self.learned_points else self.points
        xs = [x for x, _ in points]
        i = bisect.bisect_right(xs, raw)
        if i == 0:
            value = points[0][1]
        elif i == len(xs):
            value = points[-1][1]
        else:
            (x0, y0), (x1, y1) = points[i - 1], points[i]
            value = y0 if x1 == x0 else y0 + (y1 - y0) * (raw - x0) / (x1 - x0)
        return round(min(self.ceiling, value), 3)

    def apply(self, features: ConfidenceFeatures) -> tuple[float, str]:
        """The calibrated confidence and a short reason naming what raised and lowered it.

        :return: (confidence in [0, ceiling], reason).
        """
        confidence = self.map(features.raw, features.kind)
        raised, lowered = features.explain()
        parts = [f"{confidence:.2f}, calibrated from raw {features.raw:.2f} on real failures"]
        if raised:
            parts.append("raised by " + ", ".join(raised))
        if lowered:
            parts.append("lowered by " + ", ".join(lowered))
        return confidence, "; ".join(parts)


def load_calibration(path: str | Path | None = None) -> Calibration:
    """Load a calibration file (default: the shipped one).

    :raises OSError: if the file cannot be read.
    :raises ValueError: if it is not a valid calibration.
    """
    text = Path(path or CALIBRATION_FILE).read_text(encoding="utf-8")
    return Calibration.model_validate(yaml.load(text, Loader=_Loader))  # noqa: S506 - a SafeLoader
