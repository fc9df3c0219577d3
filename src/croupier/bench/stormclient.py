"""One process of benchmark clients for ``croupier bench storm`` and ``croupier bench connect``.

Run as ``python -m croupier.bench.stormclient``; the benchmark starts one or two (a process
may hold 20,000 open files). It reads one JSON command per line on stdin and answers each
with one JSON line on stdout:

* ``open``: connect ``clients`` clients (``concurrency`` at a time) of one ``kind`` and wait
  until each is ready: ``node`` (a bare WebSocket to the Node reference; ready once
  upgraded), ``ws`` (``/ws``, with a token if ``token``; subscribed to its channel if
  ``subscribe``, else ready once upgraded) or ``sse`` (``/sse?channel=…&token=…``; ready
  at the stream's greeting). Each Croupier client has its own player token.
* ``drop``: cut every connection at once (no close handshake), as a network blip would.
* ``storm``: every client reconnects at the same moment. A ``ws`` client subscribes again
  with ``since`` its last position and is back once ``subscribed`` said ``recovered`` and
  every event up to its channel's ``targets`` offset arrived, each exactly once and in
  order; a ``node`` client is back once it received ``expect`` messages. A refusal with a
  retry hint (HTTP 503 with ``Retry-After``) is retried after the hint with jitter, other
  connection failures with a jittered exponential backoff, until ``timeout``.
* ``exit``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import sys
import time
from collections import Counter
from typing import Any, cast

import jwt
import orjson
from picows import WSFrame, WSInvalidStatusError, WSListener, WSMsgType, WSTransport, ws_connect

__all__ = ["main"]

TICK = "bench.tick"


def retry_after(exc: WSInvalidStatusError) -> float | None:
    """The seconds a 503 refusal asks to wait, or None if it is not one."""
    response = exc.response
    if response is None or response.status != 503:
        return None
    value = response.headers.get("Retry-After") if response.headers else None
    try:
        return max(0.0, float(value)) if value is not None else 1.0
    except ValueError:
        return 1.0


class Phase:
    """What one command's clients did; decodes each distinct message once."""

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.done = asyncio.Event()
        if pending == 0:
            self.done.set()
        self.reasons: Counter[str] = Counter()
        self.duplicates = 0
        self.gaps = 0
        self.not_recovered = 0
        self.refused = 0
        self.retries = 0
        self.last_back = 0.0
        self.times: list[float] = []  # when each client was back, from the start
        self.cpu = time.process_time()
        self.started = time.perf_counter()
        self._cache: dict[bytes, tuple[str, int | None]] = {}

    def decode(self, raw: bytes) -> tuple[str, Any]:
        known = self._cache.get(raw)
        if known is not None:
            return known
        doc = orjson.loads(raw)
        kind = str(doc.get("type")) if isinstance(doc, dict) else ""
        if kind == TICK:
            tick = (kind, doc.get("offset"))
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[raw] = tick
            return tick
        return kind, doc

    def back(self, client: Client) -> None:
        if client.back:
            return
        client.back = True
        self.last_back = time.perf_counter() - self.started
        self.times.append(self.last_back)
        self.pending -= 1
        if self.pending == 0:
            self.done.set()


class Client:
    """One simulated player: its token, channel and position survive reconnects."""

    __slots__ = (
        "back",
        "channel",
        "epoch",
        "expect",
        "failed",
        "hint",
        "last",
        "outcome",
        "received",
        "resuming",
        "target",
        "token",
        "transport",
    )

    def __init__(self, token: str, channel: str) -> None:
        self.token = token
        self.channel = channel
        self.last: int | None = None
        self.epoch: str | None = None
        self.target = 0
        self.expect = 0
        self.received = 0
        self.resuming = False
        self.back = False
        self.failed: str | None = None
        self.hint: float | None = None  # seconds the server said to wait (overloaded)
        self.transport: WSTransport | asyncio.Transport | None = None
        self.outcome: asyncio.Future[str] | None = None

    def settle(self, outcome: str) -> None:
        if self.outcome is not None and not self.outcome.done():
            self.outcome.set_result(outcome)


class WsClient(WSListener):
    """A client's WebSocket for one connection attempt."""

    def __init__(self, client: Client, phase: Phase, kind: str, subscribe: bool) -> None:
        super().__init__()
        self.client = client
        self.phase = phase
        self.kind = kind
        self.subscribe = subscribe

    def on_ws_connected(self, transport: WSTransport) -> None:
        client = self.client
        client.transport = transport
        if self.kind == "node":
            if client.expect == 0:
                self.phase.back(client)
                client.settle("back")
            return
        if not self.subscribe:
            self.phase.back(client)
            client.settle("back")
            return
        message: dict[str, Any] = {"type": "subscribe", "channel": client.channel, "id": 1}
        if client.resuming and client.last is not None:
            message["since"] = {"offset": client.last, "epoch": client.epoch}
        transport.send(WSMsgType.TEXT, orjson.dumps(message))

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.CLOSE:
            transport.disconnect()
            return
        if frame.msg_type is not WSMsgType.TEXT:
            return
        client = self.client
        phase = self.phase
        if self.kind == "node":
            client.received += 1
            if client.received >= client.expect:
                phase.back(client)
                client.settle("back")
            return
        kind, doc = phase.decode(frame.get_payload_as_bytes())
        if kind == TICK:
            offset = doc
            last = client.last or 0
            if offset <= last:
                phase.duplicates += 1
                return
            if offset != last + 1:
                phase.gaps += 1
            client.last = offset
            if client.resuming and offset >= client.target:
                phase.back(client)
                client.settle("back")
        elif kind == "subscribed":
            position = doc.get("position") or {}
            if not client.resuming:
                client.last = position.get("offset")
                client.epoch = position.get("epoch")
                phase.back(client)
                client.settle("back")
            elif not doc.get("recovered"):
                phase.not_recovered += 1
                client.settle("not recovered")
            elif (client.last or 0) >= client.target:
                phase.back(client)
                client.settle("back")
        elif kind == "disconnect":
            hint = doc.get("retry_after")
            client.hint = float(hint) if isinstance(hint, int | float) and hint > 0 else None
            client.settle(f"disconnect: {doc.get('code')}")
        elif kind == "error":
            client.settle(f"error: {doc.get('code')}")

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.client.settle("disconnected")


class SseClient(asyncio.Protocol):
    """``GET /sse?channel=…&token=…``: ready once the stream's greeting arrives."""

    def __init__(self, client: Client, phase: Phase, request: bytes) -> None:
        self.client = client
        self.phase = phase
        self.request = request
        self.seen = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.client.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.client.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.client.back:
            return
        self.seen += data
        if not self.seen.startswith(b"HTTP/1.1 200"):
            if b"\r\n\r\n" in self.seen:
                self.client.settle(f"HTTP {self.seen[9:12].decode(errors='replace')}")
            return
        if b'"type":"connected"' in self.seen:
            self.seen = b""
            self.phase.back(self.client)
            self.client.settle("back")

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.settle("disconnected")


class Worker:
    def __init__(self) -> None:
        self.clients: list[Client] = []
        self.kind = "ws"
        self.url = ""
        self.subscribe = False

    def open_clients(self, command: dict[str, Any]) -> None:
        secret: str = command.get("secret", "")
        channels: list[str] = command.get("channels") or ["lobby"]
        first: int = command.get("first", 0)
        tag: str = command.get("tag", "s")
        now = int(time.time())
        self.clients = []
        for i in range(first, first + int(command["clients"])):
            token = ""
            if command.get("token"):
                claims = {"sub": f"{tag}{i}", "brand": "1001", "iat": now, "exp": now + 3600}
                token = jwt.encode(claims, secret, algorithm="HS256")
            self.clients.append(Client(token, channels[i % len(channels)]))

    def _ws_url(self, client: Client) -> str:
        if self.kind == "node":
            return self.url + "/"
        return self.url + "/ws" + (f"?token={client.token}" if client.token else "")

    async def _attempt(self, client: Client, phase: Phase) -> str:
        loop = asyncio.get_running_loop()
        client.outcome = loop.create_future()
        if self.kind == "sse":
            host, port = self.url.removeprefix("ws://").rsplit(":", 1)
            query = f"channel={client.channel}&token={client.token}"
            request = (
                f"GET /sse?{query} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
            await loop.create_connection(lambda: SseClient(client, phase, request), host, int(port))
        else:
            await ws_connect(
                lambda: WsClient(client, phase, self.kind, self.subscribe),
                self._ws_url(client),
                read_buffer_init_size=4096,
                websocket_handshake_timeout=60,
            )
        return await client.outcome

    async def connect(self, client: Client, phase: Phase, deadline: float) -> None:
        """Bring ``client`` back, retrying as a well-behaved client does, until ``deadline``."""
        failures = 0
        while True:
            wait: float | None = None
            try:
                outcome = await self._attempt(client, phase)
            except WSInvalidStatusError as exc:
                hint = retry_after(exc)
                if hint is None:
                    outcome = f"HTTP {exc.response.status if exc.response else '?'}"
                else:
                    phase.refused += 1
                    outcome = "refused"
                    wait = hint + random.uniform(0, max(hint, 0.1))
            except Exception as exc:  # any failure to connect is retried
                outcome = f"connect: {type(exc).__name__}"
            if outcome == "back":
                return
            if client.hint is not None:  # told by the protocol when to come back
                phase.refused += 1
                wait = client.hint + random.uniform(0, client.hint)
                client.hint = None
            if outcome.startswith("error:") or outcome == "not recovered":
                client.failed = outcome
                return
            if wait is None:
                failures += 1
                wait = random.uniform(0, min(5.0, 0.25 * 2**failures))
            if time.perf_counter() + wait > deadline:
                client.failed = outcome
                return
            phase.retries += 1
            self._cut(client)
            await asyncio.sleep(wait)

    def _cut(self, client: Client) -> None:
        transport = client.transport
        client.transport = None
        if isinstance(transport, WSTransport):
            transport.disconnect(graceful=False)
        elif transport is not None:
            transport.abort()

    async def open(self, command: dict[str, Any]) -> dict[str, Any]:
        self.kind = command["kind"]
        self.url = command["url"]
        self.subscribe = bool(command.get("subscribe"))
        self.open_clients(command)
        phase = Phase(len(self.clients))
        gate = asyncio.Semaphore(int(command.get("concurrency", 200)))
        deadline = time.perf_counter() + float(command.get("timeout", 120))

        async def one(client: Client) -> None:
            async with gate:
                client.back = False
                await self.connect(client, phase, deadline)

        await asyncio.gather(*(one(c) for c in self.clients))
        return self._report(phase)

    async def storm(self, command: dict[str, Any]) -> dict[str, Any]:
        targets: dict[str, int] = command.get("targets") or {}
        expect = int(command.get("expect", 0))
        for client in self.clients:
            client.back = False
            client.failed = None
            client.resuming = True
            client.received = 0
            client.expect = expect
            client.target = targets.get(client.channel, 0)
        phase = Phase(len(self.clients))
        deadline = phase.started + float(command.get("timeout", 120))
        await asyncio.gather(*(self.connect(c, phase, deadline) for c in self.clients))
        for client in self.clients:
            if client.back and client.resuming and client.target and client.last != client.target:
                phase.reasons["ended elsewhere"] += 1
        return self._report(phase)

    def _report(self, phase: Phase) -> dict[str, Any]:
        failed = [c.failed for c in self.clients if not c.back]
        phase.reasons.update(f or "unknown" for f in failed)
        return {
            "clients": len(self.clients),
            "back": sum(1 for c in self.clients if c.back),
            "failed": len(failed),
            "reasons": dict(phase.reasons),
            "duplicates": phase.duplicates,
            "gaps": phase.gaps,
            "not_recovered": phase.not_recovered,
            "refused": phase.refused,
            "retries": phase.retries,
            "seconds": phase.last_back,
            "half_back_s": sorted(phase.times)[len(phase.times) // 2] if phase.times else 0.0,
            "client_cpu_s": time.process_time() - phase.cpu,
        }

    def drop(self) -> dict[str, Any]:
        for client in self.clients:
            self._cut(client)
        return {"dropped": len(self.clients)}


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = Worker()
    while line := await reader.readline():
        command = orjson.loads(line)
        name = command.get("cmd")
        if name == "open":
            reply = await worker.open(command)
        elif name == "storm":
            reply = await worker.storm(command)
        elif name == "drop":
            reply = worker.drop()
        elif name == "exit":
            worker.drop()
            break
        else:
            reply = {"error": f"unknown command {name!r}"}
        sys.stdout.buffer.write(orjson.dumps(reply) + b"\n")
        sys.stdout.flush()


def main() -> None:
    # Thousands of clients are many long-lived objects: the collector's full passes over
    # them would cost this process more than the clients do (it is short-lived, and its
    # objects go in cycles-free bursts).
    gc.disable()
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(_serve())
        return
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(_serve())


if __name__ == "__main__":
    main()
