"""``croupier bench publish``: stored events per second over HTTP, single and batched.

Many keep-alive connections, each with a few requests in flight (pipelined), built once as
bytes so the client is not what is measured. Every reply must be 200, and the channels'
positions afterwards must account for every event.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

import orjson

from .httpclient import HttpConnection, connect, post_request
from .procstat import cpu_seconds
from .server import API_KEY, BenchServer

__all__ = ["run_publish"]

_CHANNELS = 16


async def _drive(
    conns: list[HttpConnection], depth: int, requests: list[bytes], duration: float
) -> tuple[int, list[tuple[int, bytes]]]:
    """Send ``requests`` round-robin until ``duration`` is up; return sent and failures."""
    deadline = time.perf_counter() + duration
    failures: list[tuple[int, bytes]] = []
    sent = 0

    async def worker(conn: HttpConnection, start: int) -> None:
        nonlocal sent
        i = start
        while time.perf_counter() < deadline:
            status, body = await conn.request(requests[i % len(requests)])
            i += 1
            sent += 1
            if status != 200:
                failures.append((status, body))

    await asyncio.gather(
        *(worker(c, n * depth + d) for n, c in enumerate(conns) for d in range(depth))
    )
    return sent, failures


def _stored(server: BenchServer, prefix: str) -> int:
    request = urllib.request.Request(
        f"{server.url}/api/v1/channels?prefix={prefix}&limit=1000",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        doc = orjson.loads(response.read())
    return sum(int(c["offset"]) for c in doc["channels"])


async def _one_mode(
    server: BenchServer, mode: str, connections: int, depth: int, batch: int, duration: float
) -> dict[str, Any]:
    prefix = f"match:pub-{mode}-{time.monotonic_ns()}-"
    data = {"t": 0.0, "pad": "x" * 64}

    def event(i: int) -> dict[str, Any]:
        return {"channel": f"{prefix}{i % _CHANNELS}", "type": "bench.pub", "data": data}

    if mode == "single":
        bodies = [orjson.dumps(event(i)) for i in range(_CHANNELS)]
        requests = [post_request("/api/v1/publish", b, API_KEY) for b in bodies]
        per_request = 1
    else:
        requests = [
            post_request(
                "/api/v1/batch",
                orjson.dumps({"events": [event(k * batch + i) for i in range(batch)]}),
                API_KEY,
            )
            for k in range(4)
        ]
        per_request = batch
    conns = [await connect(server.port) for _ in range(connections)]
    await _drive(conns, depth, requests, 0.5)  # warm up: caches, the writer, connections
    base = _stored(server, prefix)
    cpu = cpu_seconds(server.pid)
    started = time.perf_counter()
    sent, failures = await _drive(conns, depth, requests, duration)
    wall = time.perf_counter() - started
    cpu = cpu_seconds(server.pid) - cpu
    for conn in conns:
        conn.close()
    stored = _stored(server, prefix) - base
    events = sent * per_request
    return {
        "bench": "publish",
        "mode": mode,
        "connections": connections,
        "pipeline": depth,
        "batch": per_request,
        "duration": wall,
        "requests": sent,
        "events": events,
        "stored": stored,
        "events_per_s": stored / wall,
        "requests_per_s": sent / wall,
        "server_cpu_us_per_event": cpu / stored * 1e6 if stored else float("nan"),
        "failed": len(failures) + (events - stored if events > stored else 0),
    }


async def run_publish(
    server: BenchServer,
    *,
    modes: tuple[str, ...],
    connections: int,
    depth: int,
    batch: int,
    duration: float,
) -> list[dict[str, Any]]:
    """Measure each of ``modes`` (``single``, ``batch``) in turn against one server."""
    results = []
    for mode in modes:
        conns = connections if mode == "single" else max(1, min(connections, 8))
        results.append(await _one_mode(server, mode, conns, depth, batch, duration))
    return results
