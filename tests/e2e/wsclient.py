"""A small WebSocket test client and HTTP helpers for the end-to-end tests.

Every wait has a deadline scaled by :func:`tests.support.timeout`; nothing sleeps to
synchronise.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from tests.support import ServerProcess, running_server, timeout

# Ephemeral notices the server sends on its own (presence, a match's viewer count); tests that
# count events skip them.
NOISE = frozenset({"presence.count", "presence.join", "presence.leave", "viewers.count"})
CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED)


class WsClient:
    """One test WebSocket connection: send JSON, receive JSON, with deadlines."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.connected: dict[str, Any] = {}

    def drop(self) -> None:
        """Cut the TCP connection with no close handshake, as a lost network does."""
        connection = self.ws._response.connection
        assert connection is not None
        assert connection.transport is not None
        connection.transport.abort()

    async def send(self, doc: Mapping[str, Any]) -> None:
        await self.ws.send_str(json.dumps(doc))

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def _receive(self, seconds: float) -> aiohttp.WSMessage:
        # A deadline over the whole call: ``receive(timeout=…)`` restarts on every protocol
        # ping the server sends, so it would never expire against a pinging server.
        async with asyncio.timeout(timeout(seconds)):
            return await self.ws.receive()

    async def recv(self, seconds: float = 5.0) -> dict[str, Any]:
        """The next text message, decoded; fails on a close or after ``seconds``."""
        message = await self._receive(seconds)
        if message.type is not aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"expected a text message, got {message.type!r} {message.data!r}")
        doc: dict[str, Any] = json.loads(message.data)
        return doc

    async def recv_quiet(self, seconds: float = 5.0) -> dict[str, Any]:
        """The next message that is not a presence notice."""
        while True:
            doc = await self.recv(seconds)
            if doc.get("type") not in NOISE:
                return doc

    async def expect(self, kind: str, seconds: float = 5.0) -> dict[str, Any]:
        doc = await self.recv_quiet(seconds)
        assert doc.get("type") == kind, doc
        return doc

    async def subscribe(
        self, channel: str, *, since: Mapping[str, Any] | None = None, id: int = 1
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "subscribe", "channel": channel, "id": id}
        if since is not None:
            message["since"] = dict(since)
        await self.send(message)
        return await self.expect("subscribed")

    async def events(self, count: int, seconds: float = 10.0) -> list[dict[str, Any]]:
        """The next ``count`` stored events (control messages and presence skipped)."""
        got: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + timeout(seconds)
        while len(got) < count:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"got {len(got)} of {count} events: {got[-3:]}")
            doc = await self.recv_quiet(left)
            if "offset" in doc:
                got.append(doc)
        return got

    async def barrier(self) -> list[dict[str, Any]]:
        """Ping and wait for the pong; return what came before it (presence skipped).

        The server answers messages in order, so anything it queued for this connection
        before reading the ping arrives before the pong.
        """
        await self.send({"type": "ping", "id": "barrier"})
        return await self.barrier_after("barrier")

    async def barrier_after(self, ping_id: str) -> list[dict[str, Any]]:
        """Read up to the pong for an already sent ping ``ping_id``; return what came before."""
        before: list[dict[str, Any]] = []
        while (doc := await self.recv_quiet()) != {"type": "pong", "id": ping_id}:
            before.append(doc)
        return before

    async def wait_closed(self, seconds: float = 5.0) -> list[dict[str, Any]]:
        """Read until the server closes the connection; return the text messages seen."""
        seen: list[dict[str, Any]] = []
        while True:
            try:
                message = await self._receive(seconds)
            except aiohttp.ClientConnectionResetError:
                # A ping read together with the close: the client's automatic pong found
                # the connection already closing. What followed the ping is still queued.
                continue
            if message.type in CLOSED or message.type is aiohttp.WSMsgType.ERROR:
                return seen
            if message.type is aiohttp.WSMsgType.TEXT:
                seen.append(json.loads(message.data))


@contextlib.asynccontextmanager
async def ws_connect(
    server: ServerProcess,
    token: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    origin: str | None = None,
    expect_connected: bool = True,
    query: Sequence[tuple[str, str]] = (),
) -> AsyncIterator[WsClient]:
    """Open ``/ws`` (token in the query when given, then ``query``) and read the
    ``connected`` message."""
    params = ([("token", token)] if token is not None else []) + list(query)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            server.ws_url,
            params=params,
            headers=headers,
            origin=origin,
            autoping=True,
            timeout=aiohttp.ClientWSTimeout(ws_close=timeout(5)),
        ) as ws,
    ):
        client = WsClient(ws)
        if expect_connected:
            client.connected = await client.expect("connected")
        yield client


def http(server: ServerProcess, key: str | None = None) -> httpx.AsyncClient:
    """An async HTTP client for the server's API, with the full-scope key by default."""
    headers = server.headers if key is None else {"Authorization": f"Bearer {key}"}
    return httpx.AsyncClient(base_url=server.url, headers=headers, timeout=timeout(10))


async def publish(
    api: httpx.AsyncClient, channel: str, type: str = "test.event", data: Any = None, **kw: Any
) -> dict[str, Any]:
    response = await api.post(
        "/api/v1/publish", json={"channel": channel, "type": type, "data": data, **kw}
    )
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


async def history(api: httpx.AsyncClient, channel: str, **params: Any) -> dict[str, Any]:
    response = await api.get(f"/api/v1/channels/{channel}/history", params=params)
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


def metric(text: str, name: str) -> float:
    """The value of one unlabelled sample in a Prometheus exposition."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not found")


def offsets(events: Iterable[Mapping[str, Any]]) -> list[int]:
    return [int(e["offset"]) for e in events]


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@contextlib.contextmanager
def configured_server(tmp: Path, config: str) -> Iterator[ServerProcess]:
    """A real server in ``tmp`` started from the TOML text ``config``."""
    with running_server(tmp, config=write_config(tmp / "croupier.toml", config)) as server:
        yield server


def channel_names(tag: str) -> Callable[[str], str]:
    """A module's ``fresh(namespace)``: channels of ``namespace`` that no other test uses."""
    ids = itertools.count(1)

    def fresh(namespace: str = "tournament") -> str:
        return f"{namespace}:{tag}-{next(ids)}"

    return fresh


def raw_handshake(
    server: ServerProcess, token: str, channel: str, *, rcvbuf: int = 4096
) -> socket.socket:
    """A WebSocket by hand on a socket with a tiny receive buffer, subscribed to ``channel``.

    The caller then stops reading it, which is what a stalled client looks like to the
    server: its kernel buffers fill and the server's writes queue up.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout(5))
    sock.connect(("127.0.0.1", server.port))
    request = (
        f"GET /ws?token={token} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"handshake refused: {head!r}")
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    payload = json.dumps({"type": "subscribe", "channel": channel, "id": 1}).encode()
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    sock.sendall(bytes((0x81, 0x80 | len(payload))) + mask + masked)
    # Read until the subscription is confirmed, so fan-out to it has started.
    seen = head.split(b"\r\n\r\n", 1)[1]
    while b'"subscribed"' not in seen:
        chunk = sock.recv(4096)
        if not chunk:
            raise AssertionError(f"closed before subscribing: {seen!r}")
        seen += chunk
    return sock


def server_frames(stream: bytes) -> list[tuple[int, bytes]]:
    """The complete (opcode, payload) frames in bytes a server sent; a cut-off tail is dropped."""
    frames = []
    at = 0
    while at + 2 <= len(stream):
        opcode = stream[at] & 0x0F
        n = stream[at + 1] & 0x7F
        head = 2
        if n == 126:
            if at + 4 > len(stream):
                break
            n = int.from_bytes(stream[at + 2 : at + 4], "big")
            head = 4
        elif n == 127:
            if at + 10 > len(stream):
                break
            n = int.from_bytes(stream[at + 2 : at + 10], "big")
            head = 10
        if at + head + n > len(stream):
            break
        frames.append((opcode, stream[at + head : at + head + n]))
        at += head + n
    return frames
