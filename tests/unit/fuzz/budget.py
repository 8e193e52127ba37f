"""What every fuzz test shares: reproducible Hypothesis settings and per-input budgets.

CI runs on a small, possibly busy machine: the examples are the same on every run (``derandomize``,
no example database), their number is bounded, and the budgets are generous: seconds proportional
to the input's size with a floor of several seconds, never milliseconds. A budget catches an input
that takes time or memory out of proportion to its size (a quadratic loop, a copy per line), not a
slow machine.
"""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

MB = 1 << 20
#: Scales every test's number of examples: CI runs the default, ``FAULTCAT_FUZZ_SCALE=20`` fuzzes
#: twenty times longer (still the same examples on every run at a given scale).
SCALE = float(os.environ.get("FAULTCAT_FUZZ_SCALE", "1"))


def examples(count: int) -> int:
    """How many examples a test that runs ``count`` in CI runs at :data:`SCALE`."""
    return max(1, round(count * SCALE))


#: The base settings of every fuzz test; each test sets its own ``max_examples``. The deadline
#: only stops a runaway example early; the real time limit is the test's :class:`Budget`.
FUZZ = settings(
    derandomize=True,
    database=None,
    max_examples=50,
    deadline=timedelta(seconds=60),
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
        HealthCheck.filter_too_much,
    ],
)

T = TypeVar("T")


def timed(function: Callable[[], T]) -> tuple[T, float]:
    """Call ``function`` once; return its result and the wall time it took."""
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def traced_peak(function: Callable[[], T]) -> tuple[T, int]:
    """Call ``function`` once under tracemalloc; return its result and the peak of the Python
    memory it allocated (bytes above what was allocated before)."""
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        result = function()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        if not tracing:
            tracemalloc.stop()
    return result, peak


@dataclass(frozen=True)
class Budget:
    """Time and memory allowed for one input of ``size`` bytes.

    :param seconds: the floor, for any input.
    :param seconds_per_mb: added per MiB of input.
    :param memory: the floor, in bytes.
    :param memory_factor: added per byte of input (a small multiple: copies, not growth).
    """

    seconds: float
    seconds_per_mb: float
    memory: int
    memory_factor: float

    def time_limit(self, size: int) -> float:
        return self.seconds + self.seconds_per_mb * size / MB

    def memory_limit(self, size: int) -> int:
        return int(self.memory + self.memory_factor * size)

    def run(self, size: int, function: Callable[[], T]) -> T:
        """Call ``function`` twice: timed, then under tracemalloc (which slows allocations several
        times over, so it is not timed). Fail if either is over the budget for ``size`` bytes, or
        if the two calls disagree (the function must be deterministic)."""
        result, seconds = timed(function)
        assert seconds <= self.time_limit(size), (
            f"{seconds:.2f} s for {size} bytes; the budget is {self.time_limit(size):.1f} s"
        )
        again, peak = traced_peak(function)
        limit = self.memory_limit(size)
        assert peak <= limit, f"{peak / MB:.1f} MiB traced for {size} bytes; the budget is {limit / MB:.1f}"
        assert comparable(again) == comparable(result), "a second call gave another result"
        return result


def comparable(value: Any) -> Any:
    """``value`` as plain data to compare, without the timings that differ between calls."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude={"stats": {"duration_ms"}})
    return value
