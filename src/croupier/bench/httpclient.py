"""A small raw HTTP/1.1 client for benchmarks: keep-alive, pipelined, no per-request objects.

Only what the benchmarks need: ``Content-Length`` responses to requests built once as bytes.
"""

from __future__ import annotations

import asyncio
import collections
from typing import cast

__all__ = ["HttpConnection", "connect", "post_request"]


def post_request(path: str, body: bytes, api_key: str, host: str = "127.0.0.1") -> bytes:
    """The bytes of one ``POST`` with a JSON body and a bearer key."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection; :meth:`request` may be called again before earlier answers.

    Responses are matched to requests in order (HTTP/1.1 pipelining).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiting: collections.deque[asyncio.Future[tuple[int, bytes]]] = collections.deque()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        error = exc or ConnectionError("the server closed the connection")
        while self._waiting:
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(None)

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Send ``raw``; the future gets ``(status, body)``."""
        assert self.transport is not None
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._waiting.append(fut)
        self.transport.write(raw)
        return fut

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).lower()
            at = head.find(b"content-length:")
            if at < 0:
                raise ConnectionError("a response without Content-Length")
            stop = head.find(b"\r\n", at)
            length = int(head[at + 15 : stop if stop >= 0 else len(head)])
            start = end + 4
            if len(buf) < start + length:
                return
            status = int(head[9:12])
            body = bytes(buf[start : start + length])
            del buf[: start + length]
            fut = self._waiting.popleft()
            if not fut.done():
                fut.set_result((status, body))

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(port: int, host: str = "127.0.0.1") -> HttpConnection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(HttpConnection, host, port)
    return protocol
