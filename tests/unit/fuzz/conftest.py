from __future__ import annotations

import faulthandler
import sys

import pytest

#: A fuzz test that runs this long is hung (the whole folder takes well under two minutes):
#: dump every thread's stack and exit rather than wait for CI's own timeout.
HANG_SECONDS = 600


@pytest.fixture(autouse=True)
def _hang_guard():
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True, file=sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="session")
def analyzer():
    """The shipped library and signal tables, Hyperscan where installed, warmed up."""
    from airflow_faultcat.core.diagnose import Analyzer

    built = Analyzer()
    # The learned fallback trains on first use: not an input's cost.
    built.diagnose("ERROR the gizmo failed to frobnicate\n")
    return built


@pytest.fixture(scope="session")
def re2_analyzer():
    """The same library on the RE2 engine: every input must get the same diagnosis."""
    from airflow_faultcat.core.diagnose import Analyzer

    built = Analyzer(engine="re2")
    built.diagnose("ERROR the gizmo failed to frobnicate\n")
    return built
