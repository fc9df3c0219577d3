"""Crowds for the benchmarks: many subscribers on one channel, and a publisher at a rate.

Shared by ``bench fanout``, ``bench idle`` and ``bench nodes``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import orjson
from picows import ws_connect

from .clients import (
    TICK,
    CentrifugoSubscriber,
    PusherSubscriber,
    SseSubscriber,
    Subscriber,
    Tally,
    WsSubscriber,
)
from .httpclient import connect, post_request
from .server import API_KEY, BenchServer

__all__ = [
    "CONNECT_AT_ONCE",
    "PUSHER_CONFIG",
    "close_subscribers",
    "open_subscribers",
    "paced",
    "publish_ticks",
]

# Connections opened at once while a crowd gathers.
CONNECT_AT_ONCE = 200
PUSHER_KEY = "bench-pusher-key"
# A Pusher app whose public channels ``t-…`` are the ``tournament`` channels the native
# runs use, so both protocols fan out the same stored events under the same rules.
PUSHER_CONFIG = f"""
[[pusher.apps]]
id = "1"
key = "{PUSHER_KEY}"
secret = "bench-pusher-secret"
[[pusher.apps.channels]]
prefix = "t-"
namespace = "tournament"
"""


async def open_subscribers(
    server: BenchServer,
    transport: str,
    channel: str,
    count: int,
    tally: Tally,
    handles: list[Any] | None = None,
) -> tuple[list[Subscriber], list[Any]]:
    """Connect ``count`` subscribers to ``channel`` and wait until each is subscribed.

    Each connection is appended to ``handles`` (a new list if not given) as it opens.
    """
    token = server.token()
    subs: list[Subscriber] = []
    handles = [] if handles is None else handles
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    subscribe = orjson.dumps({"type": "subscribe", "channel": channel, "id": 1})
    ws_url = f"ws://127.0.0.1:{server.port}/ws?token={token}"
    sse_request = (
        f"GET /sse?channel={quote(channel)}&token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    # Over the Pusher protocol: the public Pusher channel ``t-{rest}`` (see PUSHER_CONFIG).
    pusher_subscribe = orjson.dumps(
        {"event": "pusher:subscribe", "data": {"channel": "t-" + channel.partition(":")[2]}}
    )
    pusher_url = f"ws://127.0.0.1:{server.port}/app/{PUSHER_KEY}?protocol=7"
    # Over Centrifugo's protocol: connect and subscribe in one frame, as its SDKs send them.
    centrifugo_hello = b"\n".join(
        [
            orjson.dumps({"id": 1, "connect": {"token": token}}),
            orjson.dumps({"id": 2, "subscribe": {"channel": channel}}),
        ]
    )
    urls = {
        "ws": ws_url,
        "pusher": pusher_url,
        "centrifugo": f"ws://127.0.0.1:{server.port}/connection/websocket",
    }

    def listener_factory() -> WsSubscriber:
        if transport == "pusher":
            return PusherSubscriber(tally, pusher_subscribe)
        if transport == "centrifugo":
            return CentrifugoSubscriber(tally, centrifugo_hello)
        return WsSubscriber(tally, subscribe)

    async def one() -> None:
        handle: WsSubscriber | SseSubscriber
        async with gate:
            if transport in urls:
                _, listener = await ws_connect(
                    listener_factory,
                    urls[transport],
                    read_buffer_init_size=2048,
                    websocket_handshake_timeout=30,
                )
                assert isinstance(listener, WsSubscriber)
                sub, handle = listener.sub, listener
            else:
                _, protocol = await loop.create_connection(
                    lambda: SseSubscriber(tally, sse_request), "127.0.0.1", server.port
                )
                sub, handle = protocol.sub, protocol
            subs.append(sub)
            handles.append(handle)
            await asyncio.wait_for(sub.ready, 30)

    await asyncio.gather(*(one() for _ in range(count)))
    return subs, handles


def close_subscribers(handles: list[Any]) -> None:
    for handle in handles:
        transport = handle.transport
        if transport is None:
            continue
        if isinstance(handle, WsSubscriber):
            transport.disconnect(graceful=False)
        else:
            transport.close()


def _timer(into: list[float]) -> Callable[[object], None]:
    """A done-callback that appends the seconds since it was made to ``into``."""
    sent = time.perf_counter()
    return lambda _: into.append(time.perf_counter() - sent)


async def paced(rate: float, count: int) -> AsyncIterator[int]:
    """Yield ``0 … count - 1``, the ``i``-th at ``i / rate`` seconds from the start."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        yield i


async def publish_ticks(
    server: BenchServer,
    channel: str,
    rate: float,
    warmup: int,
    measured: int,
    on_measure: Callable[[], None],
    rtts: list[float],
    burst: int = 1,
) -> int:
    """Publish ``warmup + measured`` ticks at ``rate``; return the last offset.

    With ``burst`` above 1 each tick is a burst of that many events in one
    ``POST /api/v1/batch`` (event ``i`` of the run is the data's ``i``), as a round's end or
    a tournament's eliminations reach the gateway.
    """
    conn = await connect(server.port)
    replies: list[asyncio.Future[tuple[int, bytes]]] = []
    async for i in paced(rate, warmup + measured):
        if i == warmup:
            on_measure()
        now = time.time()
        events = [
            {"channel": channel, "type": TICK, "data": {"t": now, "m": i >= warmup, "i": n}}
            for n in range(i * burst, (i + 1) * burst)
        ]
        if burst == 1:
            request = post_request("/api/v1/publish", orjson.dumps(events[0]), API_KEY)
        else:
            request = post_request("/api/v1/batch", orjson.dumps({"events": events}), API_KEY)
        reply = conn.request(request)
        reply.add_done_callback(_timer(rtts))
        replies.append(reply)
    answers = await asyncio.gather(*replies)
    conn.close()
    bad = [a for a in answers if a[0] != 200]
    if bad:
        raise RuntimeError(f"{len(bad)} publishes failed, e.g. {bad[0]!r}")
    answer = orjson.loads(answers[-1][1])
    last: int = answer["results"][-1]["offset"] if burst > 1 else answer["offset"]
    return last
