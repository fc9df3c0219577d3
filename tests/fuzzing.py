"""The fuzz suites' budget: a fixed number of cases, derandomized, so every CI run tries
the same cases in a bounded time.

``CROUPIER_FUZZ_SCALE=N`` multiplies every budget by N and draws fresh random cases each
run, for a deeper search on a workstation (the default, 1, is what CI runs).
"""

from __future__ import annotations

import os

import hypothesis
from hypothesis import HealthCheck

SCALE = max(1, int(os.environ.get("CROUPIER_FUZZ_SCALE", "1")))


def budget(examples: int) -> hypothesis.settings:
    """Hypothesis settings for a fuzz test that tries ``examples`` cases (times the scale)."""
    return hypothesis.settings(
        max_examples=examples * SCALE,
        derandomize=SCALE == 1,
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )
