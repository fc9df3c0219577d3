"""``croupier bench leaderboard`` with tiny parameters: the fields are there, the board full.

No timing assertions: the figures depend on the machine.
"""

from __future__ import annotations

import pytest

from .test_bench_smoke import bench

pytestmark = pytest.mark.e2e


def test_leaderboard() -> None:
    result = bench(
        "leaderboard", "--entries", "2000", "--duration", "1", "--queries", "200", "--cores", "0"
    )
    assert result["board_entries"] == 2000
    assert result["updates"] > 0
    assert result["pushes"] >= 1
    assert "service API" in result["measured"]
    for field in ("updates_per_s", "rank_p50_us", "rank_p99_us", "top10_p99_us"):
        assert result[field] >= 0
