"""An event stream served on the lean path: no aiohttp request, response, writer or task.

The :class:`~croupier.transports.wsproto.Sniffer` has read a fresh connection's first
request, a plain ``GET`` of a lean event-stream endpoint, and its planner accepted it.
:func:`open_lean_stream` then runs the same :class:`~croupier.transports.sse.Stream` as the
aiohttp path: its channels are subscribed while the connection holds what the hub pushes,
and once they are (at once, or when the connection's task for a subscribe that awaits is
done) the response head, the greeting and what was held leave in one write. The socket's
protocol is then a :class:`StreamReader`, which drops what the client sends and reports the
end of the socket.

The response head is the one aiohttp writes for the same stream (same status line, headers
and order, ``Date`` and ``Server`` included), so a client cannot tell the paths apart.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from email.utils import formatdate
from http import HTTPStatus

import orjson
from aiohttp.http import SERVER_SOFTWARE

from ..errors import Overloaded
from ..gateway import Gateway
from .connection import Connection
from .flusher import Flusher
from .sse import SHUTTING_DOWN, Plan, Stream

__all__ = ["StreamReader", "http_answer", "open_lean_stream", "overloaded_answer"]


class _Tail:
    """The end of every answer's head (``Date``, ``Server``, ``Connection: close`` and the
    blank line), made once a second."""

    __slots__ = ("second", "value")

    def __init__(self) -> None:
        self.second = -1
        self.value = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self.second:
            self.second = second
            self.value = (
                f"Date: {formatdate(second, usegmt=True)}\r\nServer: {SERVER_SOFTWARE}\r\n"
                "Connection: close\r\n\r\n"
            )
        return self.value


_tail = _Tail()
_STATUS_LINES: dict[int, str] = {}


def http_answer(status: int, headers: Mapping[str, str], body: bytes | None = None) -> bytes:
    """An HTTP/1.1 answer that ends its connection, as aiohttp writes it: the status line,
    ``headers`` in order, ``Content-Length`` when there is a body, ``Date``, ``Server`` and
    ``Connection: close``."""
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
    fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    if body is None:
        return (line + fields + _tail.now()).encode("latin-1")
    length = f"Content-Length: {len(body)}\r\n"
    return (line + fields + length + _tail.now()).encode("latin-1") + body


def overloaded_answer(exc: Overloaded) -> bytes:
    """The ``503`` with ``Retry-After`` of a stream over the node's admission budget."""
    body = orjson.dumps({"error": exc.as_dict()})
    headers = {"Content-Type": "application/json", "Retry-After": str(exc.retry_after)}
    return http_answer(503, headers, body)


def _unavailable() -> bytes:
    # aiohttp's json_response: the standard library's encoding, with a charset.
    body = json.dumps(SHUTTING_DOWN).encode()
    return http_answer(503, {"Content-Type": "application/json; charset=utf-8"}, body)


class StreamReader(asyncio.Protocol):
    """A stream's socket: what the client sends is dropped; its end ends the connection."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        """An event-stream client has nothing to say."""

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.lost()


def open_lean_stream(
    gateway: Gateway,
    plan: Plan,
    transport: asyncio.Transport,
    origin: str | None,
    flusher: Flusher | None = None,
) -> None:
    """Serve the stream ``plan`` describes on ``transport`` (admitted, response not begun).

    The socket's protocol becomes a :class:`StreamReader` at once. No task is kept for the
    stream: while a subscribe awaits, the connection's own task runs it, and the answer is
    written when that task is done.
    """
    stream = Stream(gateway, plan, origin, flusher)
    conn = stream.conn
    transport.set_protocol(StreamReader(conn))
    conn.open()
    task = conn.task
    if task is None:
        _answer(stream, transport)
    else:
        task.add_done_callback(lambda _: _answer(stream, transport))


def _answer(stream: Stream, transport: asyncio.Transport) -> None:
    if transport.is_closing():
        return  # the client went while it subscribed: its connection is cleaned up
    if not stream.opened():
        transport.write(_unavailable())
        transport.close()
        return
    stream.attach(transport, http_answer(200, stream.headers()))
