"""``croupier bench leaderboard``: score updates per second on a large board, and rank-query
latency, measured in-process through the Leaderboards service API (not over HTTP).

The board is filled first (through the same API), then watched, so the 1 Hz
``leaderboard.updated`` push runs for the whole measurement. Many coroutines submit ``add``
updates for random players for ``duration`` seconds; then rank, top-10 and around queries are
timed one by one.
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from ..config import Settings
from ..events import Event
from ..gateway import Gateway
from ..services.leaderboards import Leaderboards
from ..storage import database_from_url
from .measures import percentile
from .procstat import cpu_seconds

__all__ = ["run_leaderboard"]

BOARD = "tournament:bench"


async def _fill(lb: Leaderboards, entries: int, concurrency: int) -> None:
    next_player = iter(range(entries))

    async def worker() -> None:
        for i in next_player:
            await lb.submit(BOARD, f"p{i}", float(i % 10_007), at=1.0 + i % 97)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _updates(
    lb: Leaderboards, entries: int, concurrency: int, duration: float
) -> tuple[int, float]:
    done = 0
    deadline = time.perf_counter() + duration

    async def worker(seed: int) -> None:
        nonlocal done
        rnd = random.Random(seed)
        while time.perf_counter() < deadline:
            await lb.submit(BOARD, f"p{rnd.randrange(entries)}", rnd.randrange(1, 50), mode="add")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return done, time.perf_counter() - started


async def _query_latency(lb: Leaderboards, entries: int, queries: int) -> dict[str, float]:
    rnd = random.Random(1)
    out: dict[str, float] = {}
    for name, make in (
        ("rank", lambda p: lb.rank(BOARD, p)),
        ("top10", lambda p: lb.top(BOARD, 10)),
        ("around5", lambda p: lb.around(BOARD, p, 5)),
    ):
        times: list[float] = []
        for _ in range(queries):
            player = f"p{rnd.randrange(entries)}"
            started = time.perf_counter_ns()
            await make(player)
            times.append((time.perf_counter_ns() - started) / 1000)
        out[f"{name}_p50_us"] = round(percentile(sorted(times), 0.50), 2)
        out[f"{name}_p99_us"] = round(percentile(sorted(times), 0.99), 2)
    return out


async def run_leaderboard(
    *,
    entries: int,
    duration: float,
    concurrency: int,
    queries: int,
    database_url: str | None,
) -> dict[str, Any]:
    """Fill a board of ``entries`` players, then measure updates and queries."""
    with tempfile.TemporaryDirectory(prefix="croupier-bench-lb-") as tmp:
        url = database_url or f"sqlite:///{Path(tmp) / 'services.db'}"
        pushes: list[Event] = []
        async with Gateway(Settings(database_url="memory://")) as gateway:
            gateway.hooks.on_publish(
                lambda events: pushes.extend(e for e in events if e.type == "leaderboard.updated")
            )
            async with database_from_url(url) as database, Leaderboards(gateway, database) as lb:
                started = time.perf_counter()
                await _fill(lb, entries, concurrency)
                fill_s = time.perf_counter() - started
                await lb.watch(BOARD, BOARD, "bench")
                pushes.clear()
                cpu_before = cpu_seconds(os.getpid())
                done, elapsed = await _updates(lb, entries, concurrency, duration)
                cpu = cpu_seconds(os.getpid()) - cpu_before
                await asyncio.sleep(1.1)  # the last push of the run
                latencies = await _query_latency(lb, entries, queries)
                size = await lb.size(BOARD)
    return {
        "measured": "in-process, through the Leaderboards service API (not HTTP)",
        "database": "postgres" if database_url else "sqlite",
        "board_entries": size,
        "fill_s": round(fill_s, 2),
        "concurrency": concurrency,
        "updates": done,
        "updates_per_s": round(done / elapsed),
        "cpu_us_per_update": round(cpu / done * 1e6, 2) if done else float("nan"),
        "pushes": len(pushes),
        "pushes_per_s": round(len(pushes) / (elapsed + 1.1), 2),
        **latencies,
        "cores": len(os.sched_getaffinity(0)),
    }
