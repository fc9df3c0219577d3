"""HTTP, SSE and WebSocket on one port: the lean WebSocket path and aiohttp side by side.

A WebSocket upgrade on a fresh connection is served by the lean path; one that arrives on a
kept-alive HTTP connection goes through aiohttp. Both speak the same protocol.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct
from typing import Any

import pytest

from tests.support import ServerProcess, timeout, token

from .sseclient import RawStream
from .wsclient import http, publish, ws_connect

pytestmark = pytest.mark.e2e

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _frame(opcode: int, payload: bytes, *, masked: bool = True) -> bytes:
    assert len(payload) < 126
    if not masked:
        return bytes((0x80 | opcode, len(payload))) + payload
    key = os.urandom(4)
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + key + body


def _text(doc: dict[str, Any]) -> bytes:
    return _frame(0x1, json.dumps(doc).encode())


class RawWs:
    """A client on a plain socket: exact bytes in and out, HTTP first if wanted."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, server: ServerProcess) -> RawWs:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        return cls(reader, writer)

    async def http_get(self, path: str) -> tuple[int, bytes]:
        """A keep-alive GET; returns the status and the body."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout(5))
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
        assert headers.get("connection", "").lower() != "close", headers
        length = int(headers["content-length"])
        body = await asyncio.wait_for(self.reader.readexactly(length), timeout(5))
        return int(lines[0].split()[1]), body

    async def upgrade(self, query: str, extra: bytes = b"") -> bytes:
        """Send the upgrade request (then ``extra`` in the same write); return the head."""
        key = base64.b64encode(os.urandom(16)).decode()
        self.writer.write(
            (
                f"GET /ws?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
            + extra
        )
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout(5))
        assert head.startswith(b"HTTP/1.1 101"), head
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:] if h)}
        accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        assert headers["sec-websocket-accept"] == accept
        assert headers["upgrade"].lower() == "websocket"
        return head

    async def frame(self) -> tuple[int, bytes]:
        """The next server frame, which must be unmasked and final."""
        b0, b1 = await asyncio.wait_for(self.reader.readexactly(2), timeout(5))
        assert b0 & 0x80
        assert not b1 & 0x80
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return b0 & 0x0F, await asyncio.wait_for(self.reader.readexactly(n), timeout(5))

    async def message(self) -> dict[str, Any]:
        """The next text message that is not a presence notice (protocol pings skipped)."""
        while True:
            opcode, payload = await self.frame()
            if opcode != 0x1:
                continue
            doc: dict[str, Any] = json.loads(payload)
            if not doc["type"].startswith("presence."):
                return doc

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def closed(self) -> bytes:
        """Everything until the server closes the socket."""
        return await asyncio.wait_for(self.reader.read(), timeout(5))

    def close(self) -> None:
        self.writer.close()


async def test_http_sse_and_websocket_share_the_port(server: ServerProcess) -> None:
    async with http(server) as api:
        assert (await api.get("/healthz")).status_code == 200
        sse = await asyncio.to_thread(
            RawStream, server, f"/sse?channel=tournament:port&token={token('p1')}"
        )
        try:
            assert sse.status == 200
            assert sse.headers["content-type"].startswith("text/event-stream")
            async with ws_connect(server, token("p2")) as ws:
                await ws.subscribe("tournament:port")
                await publish(api, "tournament:port", "t.x", {"n": 1})
                (event,) = await ws.events(1)
                assert event["data"] == {"n": 1}
                # The stream's greeting first, then the same event.
                block = await asyncio.to_thread(sse.read_until, b'"n":1}')
                assert b"data: " in block
        finally:
            sse.sock.close()


async def test_upgrade_on_a_kept_alive_connection_goes_through_aiohttp(
    server: ServerProcess,
) -> None:
    c = await RawWs.open(server)
    try:
        status, body = await c.http_get("/healthz")
        assert status == 200, body
        await c.upgrade(f"token={token('p1')}")
        connected = await c.message()
        assert connected["type"] == "connected"
        c.send(_text({"type": "subscribe", "channel": "tournament:kept", "id": 1}))
        assert (await c.message())["type"] == "subscribed"
        async with http(server) as api:
            await publish(api, "tournament:kept", "t.x", {"n": 2})
        event = await c.message()
        assert (event["type"], event["offset"], event["data"]) == ("t.x", 1, {"n": 2})
        c.send(_text({"type": "ping", "id": "p"}))
        assert await c.message() == {"type": "pong", "id": "p"}
    finally:
        c.close()


async def test_lean_upgrade_with_frames_in_the_same_packet(server: ServerProcess) -> None:
    c = await RawWs.open(server)
    try:
        # The client does not wait for the 101 before its first messages.
        await c.upgrade(
            f"token={token('p1')}&x=1",
            _text({"type": "ping", "id": 1}) + _frame(0x9, b"are you there"),
        )
        assert (await c.message())["type"] == "connected"
        assert await c.message() == {"type": "pong", "id": 1}
        assert await c.frame() == (0xA, b"are you there")
        # A close is answered with a close, and then the server closes the socket.
        c.send(_frame(0x8, struct.pack("!H", 1000) + b"bye"))
        rest = await c.closed()
        assert rest[:2] == b"\x88\x02"
        assert struct.unpack("!H", rest[2:4]) == (1000,)
    finally:
        c.close()


async def test_lean_path_closes_on_a_broken_frame(server: ServerProcess) -> None:
    c = await RawWs.open(server)
    try:
        await c.upgrade(f"token={token('p1')}")
        assert (await c.message())["type"] == "connected"
        c.send(_frame(0x1, b'{"type":"ping"}', masked=False))
        rest = await c.closed()
        assert rest[:1] == b"\x88"
        assert struct.unpack("!H", rest[2:4]) == (1002,)
    finally:
        c.close()
