"""``croupier bench sports`` end to end with tiny parameters (no timing assertions)."""

from __future__ import annotations

import pytest

from .test_bench_smoke import bench

pytestmark = pytest.mark.e2e


def test_sports() -> None:
    result = bench("sports", "--viewers", "20", "--reactions", "40", "--duration", "2")
    assert result["viewers"] == result["viewers_counted"] == result["viewers_peak"] == 20
    assert result["score_updates"] >= 2
    assert result["score_deliveries"] > 0
    assert result["summary_deliveries"] > 0
    assert result["reactions_accepted"] == result["reactions_sent"] > 0
    assert result["reactions_summarised"] == result["reactions_accepted"]
    assert result["reactions_refused"] == 0
    for field in ("server_cpu_percent", "score_p99_ms", "summary_p99_ms"):
        assert result[field] >= 0, field
