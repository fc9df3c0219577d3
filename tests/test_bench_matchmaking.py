"""``croupier bench matchmaking`` with tiny parameters: the fields are there, every action
was answered.

No timing assertions: the figures depend on the machine.
"""

from __future__ import annotations

import pytest

from .test_bench_smoke import bench

pytestmark = pytest.mark.e2e


def test_matchmaking() -> None:
    match, service, room = bench(
        "matchmaking", "--tickets", "500", "--passes", "2", "--rooms", "2", "--actions", "10"
    )
    assert match["tickets"] == 500
    assert 0 < match["matched_per_pass"] <= 500
    for field in ("pass_ms_p50", "pass_ms_max", "pass_cpu_ms_p50"):
        assert match[field] >= 0
    assert service["tickets"] == 500
    assert 0 < service["matched_per_pass"] <= 500
    assert service["service_pass_ms_p50"] > 0
    assert room["actions"] == 20
    for field in ("room_rtt_ms_p50", "room_rtt_ms_p99", "actions_per_s"):
        assert room[field] > 0
