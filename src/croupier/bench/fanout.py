"""``croupier bench fanout`` and ``croupier bench idle``: the client side of each run.

The server runs in its own process (see :mod:`.server`); this process holds every
subscriber and the publisher. Server CPU is the server process's user+system time over the
measured window, divided by the deliveries the subscribers received in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from typing import Any, cast

import orjson
from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from .clients import TICK, Tally, WsSubscriber
from .crowd import CONNECT_AT_ONCE, close_subscribers, open_subscribers, paced, publish_ticks
from .measures import percentile
from .node import NodeReference
from .procstat import cpu_split, rss_bytes
from .server import API_KEY, BenchServer

__all__ = ["run_fanout", "run_fanout_node", "run_idle"]


class LogWatcher(asyncio.Protocol):
    """A console watching the live log (``GET /api/v1/admin/log``): reads and counts the
    records, as a browser would, and does nothing else with them."""

    def __init__(self) -> None:
        self.records = 0
        self.ready = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    @classmethod
    async def open(cls, server: BenchServer) -> LogWatcher:
        loop = asyncio.get_running_loop()
        _, watcher = await loop.create_connection(cls, "127.0.0.1", server.port)
        assert watcher.transport is not None
        watcher.transport.write(
            b"GET /api/v1/admin/log HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer " + API_KEY.encode() + b"\r\n"
            b"Accept: text/event-stream\r\n\r\n"
        )
        await asyncio.wait_for(watcher.ready, 10)  # the server is recording from here on
        return watcher

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if not self.ready.done() and b"event: hello" in data:
            self.ready.set_result(None)
        self.records += data.count(b"\ndata: ") + data.startswith(b"data: ")

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("the log stream closed"))

    def close(self) -> int:
        """Stop watching; return about how many records came (less the greeting)."""
        if self.transport is not None:
            self.transport.close()
        return max(0, self.records - 1)


async def run_fanout(
    server: BenchServer,
    *,
    transport: str,
    subscribers: int,
    rate: float,
    duration: float,
    warmup: float = 1.0,
    watch_log: bool = False,
    burst: int = 1,
) -> dict[str, Any]:
    """Fan ``rate`` publishes/s out to ``subscribers`` on one channel for ``duration`` s.

    With ``burst`` above 1, each publish is a batch of that many events. With
    ``watch_log``, a console's live-log stream is open for the whole run, so the CPU per
    delivery shows what watching costs.
    """
    channel = f"tournament:bench-{transport}-{time.monotonic_ns()}"
    tally = Tally()
    watcher = await LogWatcher.open(server) if watch_log else None
    subs, handles = await open_subscribers(server, transport, channel, subscribers, tally)
    await asyncio.sleep(1.5)  # let the throttled presence broadcast of the joins pass
    warm_n = max(1, int(rate * warmup))
    measured_n = max(1, int(rate * duration))
    tally.expected = measured_n * burst * subscribers
    window = _Window(server.pid)
    rtts: list[float] = []
    final = await publish_ticks(
        server, channel, rate, warm_n, measured_n, window.start, rtts, burst=burst
    )
    rtts.sort()
    with contextlib.suppress(TimeoutError):  # what has not arrived is counted as lost
        await asyncio.wait_for(tally.done.wait(), 10.0)
    figures = window.figures(tally)
    tally.finish(subs, final)
    close_subscribers(handles)
    log_records = watcher.close() if watcher is not None else None
    failed = sum(1 for s in subs if s.failed and s.failed != "disconnected")
    return {
        "bench": "fanout",
        "transport": transport,
        "watch_log": watch_log,
        "log_records": log_records,
        "subscribers": subscribers,
        "rate": rate,
        "burst": burst,
        "duration": duration,
        "events": measured_n * burst,
        **figures,
        "publish_p50_ms": percentile(rtts, 0.50) * 1000,
        "publish_max_ms": (rtts[-1] if rtts else float("nan")) * 1000,
        "lost": tally.lost,
        "duplicates": tally.duplicates,
        "disconnects": tally.disconnects + failed,
    }


class _Window:
    """The measured window of a run: server and client CPU, wall time, and what they give."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.marks: dict[str, float] = {}

    def start(self) -> None:
        marks = self.marks
        marks["user"], marks["sys"] = cpu_split(self.pid)
        marks["client_user"], marks["client_sys"] = cpu_split(os.getpid())
        marks["wall"] = time.perf_counter()

    def figures(self, tally: Tally) -> dict[str, Any]:
        """CPU per delivery, rate and latency from :meth:`start` until now."""
        marks = self.marks
        user, system = cpu_split(self.pid)
        client_user, client_sys = cpu_split(os.getpid())
        wall = time.perf_counter() - marks["wall"]
        user, system = user - marks["user"], system - marks["sys"]
        cpu = user + system
        client_cpu = client_user - marks["client_user"] + client_sys - marks["client_sys"]
        latencies = sorted(tally.latencies)
        deliveries = tally.deliveries
        return {
            "deliveries": deliveries,
            "deliveries_per_s": deliveries / wall if wall else 0.0,
            "server_cpu_s": cpu,
            "server_user_s": user,
            "server_sys_s": system,
            "client_cpu_s": client_cpu,
            "server_cpu_us_per_delivery": cpu / deliveries * 1e6 if deliveries else float("nan"),
            "latency_p50_ms": percentile(latencies, 0.50) * 1000,
            "latency_p99_ms": percentile(latencies, 0.99) * 1000,
            "latency_max_ms": (latencies[-1] if latencies else float("nan")) * 1000,
        }


class _Publisher(WSListener):
    """The Node reference's publisher: asks the server to fan messages out to every other
    client, and waits for the answer to a ``count``."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT and not self.answer.done():
            self.answer.set_result(frame.get_payload_as_bytes())


async def run_fanout_node(
    node: NodeReference,
    *,
    subscribers: int,
    rate: float,
    duration: float,
    burst: int = 1,
    warmup: float = 1.0,
) -> dict[str, Any]:
    """The same fan-out against the bare Node ``ws`` reference: each burst is ``burst``
    messages, each shaped as Croupier's event frame, sent to every subscriber back to back.

    Node keeps no log, so the publisher numbers the messages itself (``offset``) and the
    tally checks them the same way.
    """
    url = f"ws://127.0.0.1:{node.port}/"
    channel = "tournament:bench-node"
    tally = Tally()
    control, publisher = await ws_connect(_Publisher, url)
    assert isinstance(publisher, _Publisher)
    subscribed = orjson.dumps({"type": "subscribed", "channel": channel, "position": {"offset": 0}})
    control.send(WSMsgType.TEXT, orjson.dumps({"op": "greet", "messages": [subscribed.decode()]}))
    control.send(WSMsgType.TEXT, orjson.dumps({"op": "count"}))
    await asyncio.wait_for(publisher.answer, 10)  # the greeting is set from here on
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    handles: list[WsSubscriber] = []

    async def one() -> None:
        async with gate:
            _, listener = await ws_connect(
                lambda: WsSubscriber(tally, b"{}"), url, read_buffer_init_size=2048
            )
            assert isinstance(listener, WsSubscriber)
            handles.append(listener)
            await asyncio.wait_for(listener.sub.ready, 30)

    await asyncio.gather(*(one() for _ in range(subscribers)))
    await asyncio.sleep(1.5)  # as for Croupier
    warm_n = max(1, int(rate * warmup))
    measured_n = max(1, int(rate * duration))
    tally.expected = measured_n * burst * subscribers
    window = _Window(node.pid)
    async for i in paced(rate, warm_n + measured_n):
        if i == warm_n:
            window.start()
        now = time.time()
        messages = [
            orjson.dumps(
                {
                    "type": TICK,
                    "channel": channel,
                    "offset": n + 1,
                    "ts": "2026-01-01T00:00:00.000Z",
                    "data": {"t": now, "m": i >= warm_n, "i": n},
                }
            ).decode()
            for n in range(i * burst, (i + 1) * burst)
        ]
        control.send(WSMsgType.TEXT, orjson.dumps({"op": "fanout", "messages": messages}))
    with contextlib.suppress(TimeoutError):  # what has not arrived is counted as lost
        await asyncio.wait_for(tally.done.wait(), 10.0)
    figures = window.figures(tally)
    subs = [h.sub for h in handles]
    tally.finish(subs, (warm_n + measured_n) * burst)
    close_subscribers(list(handles))
    control.disconnect()
    return {
        "bench": "fanout",
        "transport": "node-ws",
        "subscribers": subscribers,
        "rate": rate,
        "burst": burst,
        "duration": duration,
        "events": measured_n * burst,
        **figures,
        "lost": tally.lost,
        "duplicates": tally.duplicates,
        "disconnects": sum(1 for s in subs if s.failed and s.failed != "disconnected"),
    }


async def _keep_alive(handles: list[Any], every: float = 15.0) -> None:
    """Ping every WebSocket now and then, so the server's idle timeout spares slow setups."""
    ping = orjson.dumps({"type": "ping"})
    while True:
        await asyncio.sleep(every)
        for handle in list(handles):
            if isinstance(handle, WsSubscriber) and handle.transport is not None:
                handle.transport.send(WSMsgType.TEXT, ping)


async def run_idle(
    server: BenchServer, *, transport: str, connections: int, settle: float = 2.0
) -> dict[str, Any]:
    """Hold ``connections`` authenticated subscribers idle; report server RSS per connection."""
    channel = f"tournament:idle-{transport}-{time.monotonic_ns()}"
    tally = Tally()
    # One connection first, so the baseline includes the code and caches a connection
    # warms up (imports, the JWT verifier), not just an empty process.
    warm_subs, warm = await open_subscribers(server, transport, channel + "-warm", 1, tally)
    await asyncio.sleep(settle)
    before = rss_bytes(server.pid)
    started = time.perf_counter()
    handles: list[Any] = []
    pinger = asyncio.ensure_future(_keep_alive(handles))
    subs, _ = await open_subscribers(server, transport, channel, connections, tally, handles)
    connect_s = time.perf_counter() - started
    await asyncio.sleep(settle)
    after = rss_bytes(server.pid)
    failed = sum(1 for s in subs if s.failed)
    pinger.cancel()
    close_subscribers(handles + warm)
    del warm_subs
    return {
        "bench": "idle",
        "transport": transport,
        "connections": connections,
        "connect_s": connect_s,
        "server_rss_before_mb": before / 2**20,
        "server_rss_after_mb": after / 2**20,
        "rss_per_connection_kb": (after - before) / connections / 1024,
        "failed": failed,
    }
