"""The lean WebSocket path: a protocol in front of aiohttp that upgrades ``GET /ws`` itself.

Every accepted TCP connection starts with a :class:`Sniffer`. It reads the first request
head; a WebSocket upgrade to ``/ws`` that would be accepted (allowed origin, valid or no
token, server not stopping) is answered with ``101`` here and the socket switches to a
:class:`LeanWebSocket`, which is just a frame parser in front of a
:class:`~croupier.transports.websocket.WsConnection`. Everything else, refusals included,
is handed to aiohttp with the bytes read so far, as if aiohttp had accepted it: the same
handler answers a refused upgrade whichever way it came in.

Why: an idle aiohttp WebSocket keeps its request, response, reader, writer, heartbeat timers
and a handler task with its coroutine frames; a lean one keeps a parser, the connection and
its session, and no task at all.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable
from typing import cast
from urllib.parse import parse_qsl

from multidict import CIMultiDict, MultiDict

from ..core.frames import BINARY, CLOSE, PING, TEXT, FrameParser, pong_frame
from ..errors import CroupierError
from ..gateway import Gateway
from .websocket import WsConnection, admit, max_message_bytes

__all__ = ["LeanWebSocket", "Sniffer"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_PREFIX = b"GET /ws"
_MAX_HEAD = 16 * 1024  # a longer head goes to aiohttp, which answers it
# A connection that sends no request at all is closed after this long, as aiohttp does
# with its keep-alive timeout (the same default) on the connections it accepts.
_FIRST_REQUEST_TIMEOUT = 75.0


class _Head:
    """A request head as the origin and token checks read it."""

    __slots__ = ("headers", "query")

    def __init__(self, headers: CIMultiDict[str], query: MultiDict[str]) -> None:
        self.headers = headers
        self.query = query


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def parse_upgrade(head: bytes) -> tuple[_Head, str] | None:
    """The head and key of a well-formed WebSocket upgrade to ``/ws``; None for anything else.

    Anything unusual is None: aiohttp then handles the request and answers it as it would.
    """
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[0] != "GET" or parts[2] != "HTTP/1.1":
        return None
    path, _, query = parts[1].partition("?")
    if path != "/ws":
        return None
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return None  # obsolete line folding or a malformed header
        headers.add(name, value.strip(" \t"))
    if (
        "websocket" not in headers.get("Upgrade", "").lower()
        or "upgrade" not in (t.strip() for t in headers.get("Connection", "").lower().split(","))
        or headers.get("Sec-WebSocket-Version") != "13"
        or "Content-Length" in headers
        or "Transfer-Encoding" in headers
    ):
        return None
    key = headers.get("Sec-WebSocket-Key", "")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return None
    except ValueError:
        return None
    pairs = parse_qsl(query, keep_blank_values=True) if query else []
    return _Head(headers, MultiDict(pairs)), key


class Sniffer(asyncio.Protocol):
    """The first protocol of every connection: lean WebSocket, or aiohttp.

    Args:
        http: makes aiohttp's protocol for a connection (the runner's ``server``).
        gateway: what a WebSocket connection serves.
    """

    __slots__ = ("_buffer", "_gateway", "_http", "_timer", "_transport")

    def __init__(self, http: Callable[[], asyncio.Protocol], gateway: Gateway) -> None:
        self._http = http
        self._gateway = gateway
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._timer = asyncio.get_running_loop().call_later(_FIRST_REQUEST_TIMEOUT, transport.close)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        if not buffer.startswith(_PREFIX[: len(buffer)]):
            self._to_http(buffer)
            return
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _MAX_HEAD:
                self._to_http(buffer)
            else:
                self._buffer = buffer
            return
        upgrade = parse_upgrade(buffer[:end])
        if upgrade is None:
            self._to_http(buffer)
            return
        head, key = upgrade
        gateway = self._gateway
        try:
            claims = admit(gateway, head)
        except CroupierError:
            claims = None
            refused = True
        else:
            refused = not gateway.ready
        if refused:
            self._to_http(buffer)  # aiohttp's handler answers with the reason
            return
        self._cancel_timer()
        transport = self._transport
        assert transport is not None
        transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
        )
        conn = WsConnection(gateway, transport, claims)
        lean = LeanWebSocket(conn, FrameParser(max_message_bytes(gateway.settings.limits)))
        transport.set_protocol(lean)
        self._transport = None
        self._buffer = b""
        conn.open()
        rest = buffer[end + 4 :]
        if rest:
            lean.data_received(rest)

    def eof_received(self) -> bool | None:
        if self._buffer:
            # A request cut short: aiohttp answers it as it would any other.
            proto = self._to_http(self._buffer)
            return proto.eof_received()
        return None  # nothing asked: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._transport = None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _to_http(self, buffer: bytes) -> asyncio.Protocol:
        self._cancel_timer()
        transport = self._transport
        assert transport is not None
        proto = self._http()
        transport.set_protocol(proto)
        self._transport = None
        self._buffer = b""
        proto.connection_made(transport)
        proto.data_received(buffer)
        return proto


class LeanWebSocket(asyncio.Protocol):
    """An upgraded socket: frames in, complete messages to the connection.

    Pings are answered here; pongs only show the peer is alive, which the idle rule
    ignores; a close is answered once the messages before it are handled. A frame that
    breaks the rules is answered with a close frame and the rest of the input is dropped.
    """

    __slots__ = ("conn", "parser")

    def __init__(self, conn: WsConnection, parser: FrameParser) -> None:
        self.conn = conn
        self.parser: FrameParser | None = parser

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:
            return  # closing: the rest is ignored
        conn = self.conn
        for opcode, payload in parser.feed(data):
            if opcode in (TEXT, BINARY):
                conn.receive(payload)
            elif opcode == PING:
                transport = conn.transport
                if not transport.is_closing():
                    assert isinstance(payload, bytes)
                    transport.write(pong_frame(payload))
            elif opcode == CLOSE:
                self.parser = None
                conn.receive(None)
                return
        if parser.error is not None:
            self.parser = None  # from now on, what arrives is dropped
            conn.close(*parser.error, linger=True)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.parser = None
        self.conn.lost()
