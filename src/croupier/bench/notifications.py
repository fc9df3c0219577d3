"""``croupier bench notifications``: notification created → delivered on the player stream.

This process holds one casino player stream (``GET /gateway/sse/1001/stream``) per player
and creates notifications over HTTP (``POST /api/v1/players/1001/{player}/notifications``) at
a steady rate, each for the next player of a shuffled round. Each notification carries the
wall-clock time its request was written; the latency is the time its ``notification`` event
reached that player's stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

import orjson

from .clients import SseSubscriber, Subscriber, Tally
from .httpclient import HttpConnection, connect, post_request
from .measures import percentile
from .procstat import cpu_split
from .server import API_KEY, BenchServer

__all__ = ["run_notifications"]

_CONNECT_AT_ONCE = 200
BRAND = "1001"


class _Deliveries(Tally):
    """Counts each notification once, by ``message_id``, with its latency."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()
        self.wrong_player = 0

    def message(self, sub: Subscriber, raw: bytes, offset: int | None = None) -> None:
        doc: Any = orjson.loads(raw)
        if not isinstance(doc, dict):
            return
        if doc.get("event_type") == "notification":
            data = doc["event_data"]
            details = data["event_details"]
            if details["p"] != doc["player_id"]:
                self.wrong_player += 1
            if data["message_id"] in self.seen:
                self.duplicates += 1
                return
            self.seen.add(data["message_id"])
            self.received += 1
            if details["m"]:
                self.latencies.append(time.time() - details["t"])
                self.deliveries += 1
                if self.deliveries == self.expected:
                    self.done.set()
        elif doc.get("type") == "connected":
            if not sub.ready.done():
                sub.ready.set_result(None)
        elif doc.get("type") in ("error", "reset"):
            sub.fail(f"{doc.get('type')}: {raw[:200]!r}")


async def _open(server: BenchServer, players: int, tally: _Deliveries) -> list[SseSubscriber]:
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(_CONNECT_AT_ONCE)
    streams: list[SseSubscriber] = []

    async def one(player: int) -> None:
        request = (
            f"GET /gateway/sse/{BRAND}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"x-auth-token: {server.token(str(player))}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        async with gate:
            _, stream = await loop.create_connection(
                lambda: SseSubscriber(tally, request), "127.0.0.1", server.port
            )
            streams.append(stream)
            await asyncio.wait_for(stream.sub.ready, 30)

    await asyncio.gather(*(one(p) for p in range(players)))
    return streams


async def _create(
    conns: list[HttpConnection],
    players: int,
    rate: float,
    warmup: int,
    measured: int,
    on_measure: Any,
) -> list[tuple[int, bytes]]:
    loop = asyncio.get_running_loop()
    order = list(range(players))
    random.Random(7).shuffle(order)
    replies: list[asyncio.Future[tuple[int, bytes]]] = []
    start = loop.time()
    for i in range(warmup + measured):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if i == warmup:
            on_measure()
        player = order[i % players]
        body = orjson.dumps(
            {
                "event": "bench.tick",
                "event_details": {"t": time.time(), "m": i >= warmup, "p": player},
            }
        )
        path = f"/api/v1/players/{BRAND}/{player}/notifications"
        replies.append(conns[i % len(conns)].request(post_request(path, body, API_KEY)))
    return list(await asyncio.gather(*replies))


async def run_notifications(
    server: BenchServer,
    *,
    players: int,
    rate: float,
    duration: float,
    connections: int = 8,
    warmup: float = 2.0,
) -> dict[str, Any]:
    """``rate`` notifications/s for ``duration`` s, spread over ``players`` connected players."""
    tally = _Deliveries()
    started = time.perf_counter()
    streams = await _open(server, players, tally)
    connect_s = time.perf_counter() - started
    conns = [await connect(server.port) for _ in range(connections)]
    warm_n = max(1, int(rate * warmup))
    measured_n = max(1, int(rate * duration))
    tally.expected = measured_n
    marks: dict[str, float] = {}

    def on_measure() -> None:
        marks["user"], marks["sys"] = cpu_split(server.pid)
        marks["wall"] = time.perf_counter()

    answers = await _create(conns, players, rate, warm_n, measured_n, on_measure)
    with contextlib.suppress(TimeoutError):  # what has not arrived is counted as lost
        await asyncio.wait_for(tally.done.wait(), 10.0)
    wall = time.perf_counter() - marks["wall"]
    user, system = cpu_split(server.pid)
    cpu = user - marks["user"] + system - marks["sys"]
    for conn in conns:
        conn.close()
    for stream in streams:
        if stream.transport is not None:
            stream.transport.close()
    failed = sum(1 for status, _ in answers if status != 200)
    latencies = sorted(tally.latencies)
    return {
        "bench": "notifications",
        "players": players,
        "rate": rate,
        "duration": duration,
        "connect_s": connect_s,
        "notifications": measured_n,
        "delivered": tally.deliveries,
        "created_per_s": measured_n / wall if wall else 0.0,
        "server_cpu_s": cpu,
        "server_cpu_us_per_notification": cpu / measured_n * 1e6,
        "latency_p50_ms": percentile(latencies, 0.50) * 1000,
        "latency_p99_ms": percentile(latencies, 0.99) * 1000,
        "latency_max_ms": (latencies[-1] if latencies else float("nan")) * 1000,
        "failed": failed,
        "lost": measured_n - tally.deliveries,
        "duplicates": tally.duplicates,
        "misrouted": tally.wrong_player,
        "stream_failures": sum(
            1 for s in streams if s.sub.failed and s.sub.failed != "disconnected"
        ),
    }
