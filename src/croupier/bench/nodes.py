"""``croupier bench nodes``: the delivery latency a second node adds.

Two gateway processes share a PostgreSQL log and a broker. Events are published over HTTP
to node A; half the subscribers are on A, half on B. The latency B's subscribers see minus
the latency A's subscribers see is what crossing the broker costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from .clients import Tally
from .crowd import close_subscribers, open_subscribers, publish_ticks
from .measures import percentile
from .server import BenchServer

__all__ = ["run_nodes"]


async def run_nodes(
    node_a: BenchServer,
    node_b: BenchServer,
    *,
    subscribers: int,
    rate: float,
    duration: float,
    warmup: float = 1.0,
) -> dict[str, Any]:
    channel = f"tournament:bench-nodes-{time.monotonic_ns()}"
    local, remote = Tally(), Tally()
    half = max(1, subscribers // 2)
    subs_a, handles_a = await open_subscribers(node_a, "ws", channel, half, local)
    subs_b, handles_b = await open_subscribers(node_b, "ws", channel, half, remote)
    await asyncio.sleep(1.5)  # let the throttled presence broadcasts pass
    warm_n = max(1, int(rate * warmup))
    measured_n = max(1, int(rate * duration))
    local.expected = remote.expected = measured_n * half
    rtts: list[float] = []
    final = await publish_ticks(node_a, channel, rate, warm_n, measured_n, lambda: None, rtts)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(local.done.wait(), remote.done.wait()), 10.0)
    local.finish(subs_a, final)
    remote.finish(subs_b, final)
    close_subscribers(handles_a + handles_b)
    a = sorted(local.latencies)
    b = sorted(remote.latencies)
    return {
        "bench": "nodes",
        "subscribers_per_node": half,
        "rate": rate,
        "events": measured_n,
        "local_p50_ms": percentile(a, 0.50) * 1000,
        "local_p99_ms": percentile(a, 0.99) * 1000,
        "remote_p50_ms": percentile(b, 0.50) * 1000,
        "remote_p99_ms": percentile(b, 0.99) * 1000,
        "added_p50_ms": (percentile(b, 0.50) - percentile(a, 0.50)) * 1000,
        "added_p99_ms": (percentile(b, 0.99) - percentile(a, 0.99)) * 1000,
        "lost": local.lost + remote.lost,
        "duplicates": local.duplicates + remote.duplicates,
    }
