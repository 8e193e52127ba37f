"""Hostile inputs through the real ``faultcat`` command: ``bench/hostile.py --quick`` as tests.

Each case is finished or refused with one ``faultcat: error:`` line (as it expects), stays under
150 MB of peak RSS, and passes its own check (the right root cause, no secret in the output).

The issue's time budget, 2x the time of a normal log of the same size, is what the bench reports;
the bound here is generous (4x, and never under the normal log's time plus 5 s) so that a busy
machine does not fail the test while a hang or a blow-up still does.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "hostile.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_hostile", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


hostile = _load_bench()

TIME_FACTOR = 4.0
TIME_FLOOR_S = 5.0

#: Cases that miss the budget today, and why; strict, so that a fix shows up as XPASS.
KNOWN: dict[str, str] = {}


@pytest.fixture(scope="module")
def results() -> dict:
    return {r.name: r for r in hostile.run_cases(quick=True, timeout=60.0)}


def _params():
    for name in hostile.case_names(quick=True):
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN[name])] if name in KNOWN else []
        yield pytest.param(name, marks=marks, id=name)


def test_known_failures_are_cases():
    assert set(KNOWN) <= set(hostile.case_names(quick=True))


@pytest.mark.parametrize("name", list(_params()))
def test_hostile_input_within_budget(results: dict, name: str) -> None:
    r = results[name]
    assert r.outcome in ("finished", "refused"), f"{r.outcome}: {r.message}"
    if r.expect != "either":
        assert r.outcome == r.expect, r.message
    assert r.peak_mb < hostile.MAX_PEAK_MB, f"peak RSS {r.peak_mb:.0f} MB"
    assert r.check is None, r.check
    if r.outcome == "finished" and r.baseline:
        bound = max(TIME_FACTOR * r.baseline, r.baseline + TIME_FLOOR_S)
        assert r.seconds <= bound, f"{r.seconds:.2f} s against a normal log's {r.baseline:.2f} s"
