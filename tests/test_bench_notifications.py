"""``croupier bench notifications`` end to end with tiny parameters (no timing assertions)."""

from __future__ import annotations

import pytest

from .test_bench_smoke import bench

pytestmark = pytest.mark.e2e


def test_notifications() -> None:
    result = bench("notifications", "--players", "20", "--rate", "50", "--duration", "1")
    assert result["notifications"] == result["delivered"] == 50
    assert result["latency_p99_ms"] >= 0
    for field in ("failed", "lost", "duplicates", "misrouted", "stream_failures"):
        assert result[field] == 0, field
