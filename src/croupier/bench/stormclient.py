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
import base64
import contextlib
import gc
import os
import random
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import jwt
import orjson

__all__ = ["main"]

TICK = "bench.tick"
_ATTEMPT_TIMEOUT = 60.0  # seconds an attempt may take before it counts as failed


def retry_after(head: bytes) -> float:
    """The seconds a ``503`` refusal's ``Retry-After`` asks to wait (1 if it names none)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"retry-after":
            try:
                return max(0.0, float(value.strip()))
            except ValueError:
                break
    return 1.0


def masked_text(payload: bytes) -> bytes:
    """A client's text frame (RFC 6455 §5.2: masked, FIN set)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x81, 0xFE)) + struct.pack("!H", size)
    else:
        head = bytes((0x81, 0xFF)) + struct.pack("!Q", size)
    key = os.urandom(4)
    body = int.from_bytes(payload, "big") ^ int.from_bytes((key * (size // 4 + 1))[:size], "big")
    return head + key + body.to_bytes(size, "big")


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
        self.transport: asyncio.Transport | None = None
        self.outcome: asyncio.Future[str] | None = None

    def settle(self, outcome: str) -> None:
        if self.outcome is not None and not self.outcome.done():
            self.outcome.set_result(outcome)


class WsClient(asyncio.Protocol):
    """A client's WebSocket for one connection attempt: the upgrade and the server's frames
    read by hand, so that ten thousand of them cost their one core less than the server
    they load costs its own (a storm is timed from this side)."""

    __slots__ = (
        "buffer",
        "client",
        "in_url",
        "kind",
        "phase",
        "request",
        "subscribe",
        "transport",
    )

    def __init__(
        self,
        client: Client,
        phase: Phase,
        kind: str,
        subscribe: bool,
        request: bytes,
        in_url: bool = False,
    ) -> None:
        self.client = client
        self.phase = phase
        self.kind = kind
        self.subscribe = subscribe
        self.in_url = in_url
        self.request = request
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.client.transport = self.transport
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        if self.request:  # not upgraded yet
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            head = buffer[:end]
            self.request = b""
            if not head.startswith(b"HTTP/1.1 101"):
                self.buffer = b""
                status = head[9:12].decode(errors="replace")
                if status == "503":
                    self.client.hint = retry_after(head)
                self.client.settle(f"HTTP {status}")
                assert self.transport is not None
                self.transport.close()
                return
            buffer = buffer[end + 4 :]
            self.upgraded()
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            length = buffer[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                start = pos + 4
                length = int.from_bytes(buffer[pos + 2 : start], "big")
            elif length == 127:
                start = pos + 10
                length = int.from_bytes(buffer[pos + 2 : start], "big")
            end = start + length
            if end > size:
                break
            opcode = buffer[pos] & 0x0F
            pos = end
            if opcode == 1:
                self.text(buffer[start:end])
            elif opcode == 8:
                self.client.settle("disconnected")
                assert self.transport is not None
                self.transport.close()
                return
        self.buffer = buffer[pos:] if pos < size else b""

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.settle("disconnected")

    def upgraded(self) -> None:
        client = self.client
        if self.kind == "node":
            if client.expect == 0:
                self.phase.back(client)
                client.settle("back")
            return
        if not self.subscribe:
            if not self.in_url:
                self.phase.back(client)
                client.settle("back")
            return  # else back at the URL's subscription's reply
        message: dict[str, Any] = {"type": "subscribe", "channel": client.channel, "id": 1}
        if client.resuming and client.last is not None:
            message["since"] = {"offset": client.last, "epoch": client.epoch}
        assert self.transport is not None
        self.transport.write(masked_text(orjson.dumps(message)))

    def text(self, payload: bytes) -> None:
        client = self.client
        phase = self.phase
        if self.kind == "node":
            client.received += 1
            if client.received >= client.expect:
                phase.back(client)
                client.settle("back")
            return
        kind, doc = phase.decode(payload)
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
        self.host = ""
        self.port = 0
        self.subscribe = False
        self.in_url = False  # subscribe (and resume) in the connect URL, not by a message
        self.key = base64.b64encode(os.urandom(16)).decode()

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

    def _request(self, client: Client) -> bytes:
        host = f"Host: {self.host}:{self.port}\r\n"
        if self.kind == "sse":
            query = f"channel={client.channel}&token={client.token}"
            return f"GET /sse?{query} HTTP/1.1\r\n{host}Accept: text/event-stream\r\n\r\n".encode()
        if self.kind == "node":
            path = "/"
        else:
            params = [f"token={client.token}"] if client.token else []
            if self.in_url:
                params.append(f"channel={client.channel}")
                if client.resuming and client.last is not None:
                    params.append(f"since={client.last}.{client.epoch}")
            path = "/ws" + ("?" + "&".join(params) if params else "")
        return (
            f"GET {path} HTTP/1.1\r\n{host}Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()

    async def _attempt(self, client: Client, phase: Phase) -> str:
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[str] = loop.create_future()
        client.outcome = outcome
        request = self._request(client)
        protocol: Callable[[], asyncio.Protocol]
        if self.kind == "sse":
            protocol = lambda: SseClient(client, phase, request)  # noqa: E731
        else:
            subscribe, in_url = self.subscribe and not self.in_url, self.in_url
            protocol = lambda: WsClient(client, phase, self.kind, subscribe, request, in_url)  # noqa: E731
        timer = loop.call_later(_ATTEMPT_TIMEOUT, client.settle, "timed out")
        try:
            await loop.create_connection(protocol, self.host, self.port)
            return await outcome
        finally:
            timer.cancel()

    async def connect(self, client: Client, phase: Phase, deadline: float) -> None:
        """Bring ``client`` back, retrying as a well-behaved client does, until ``deadline``."""
        failures = 0
        while True:
            wait: float | None = None
            try:
                outcome = await self._attempt(client, phase)
            except Exception as exc:  # any failure to connect is retried
                outcome = f"connect: {type(exc).__name__}"
            if outcome == "back":
                return
            if client.hint is not None:  # told when to come back (503 Retry-After, or the protocol)
                phase.refused += 1
                wait = client.hint + random.uniform(0, max(client.hint, 0.1))
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
        if transport is not None:
            transport.abort()

    async def open(self, command: dict[str, Any]) -> dict[str, Any]:
        self.kind = command["kind"]
        host, port = command["url"].removeprefix("ws://").rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.subscribe = bool(command.get("subscribe"))
        self.in_url = bool(command.get("in_url"))
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
