"""The one WebSocket implementation: every upgrade path, every endpoint, one frame parser.

A connection is upgraded one of two ways, and both end in the same place:

* On a fresh TCP connection whose first request is an upgrade to a *lean* endpoint, the
  :class:`~croupier.transports.wsproto.Sniffer` answers ``101`` itself and switches the
  socket's protocol to a :class:`WebSocketReader` (no aiohttp objects, no task).
* Otherwise (an upgrade after a kept-alive request, or an endpoint whose codec needs I/O to
  open), aiohttp parses the request, the endpoint's handler answers ``101`` and hands the
  socket's input to a :class:`WebSocketReader` as aiohttp's payload parser.

Either way frames are parsed by :class:`~croupier.core.frames.FrameParser` (so RFC 6455's
rules are checked in one place), complete messages go to a
:class:`~croupier.transports.connection.Connection` running the endpoint's codec, and every
server-initiated close goes through :func:`close_websocket`: the close frame follows what was
already queued, and the client's input is read and dropped until it closes its side, so it
always learns why instead of getting a reset.

An :class:`Endpoint` is a path pattern and a codec factory; :func:`add_websocket_routes`
serves a list of them (see :mod:`croupier.transports.connection` on adding a protocol).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from aiohttp import web

from ..api.toolkit import error_response
from ..appkeys import GATEWAY
from ..config import Limits
from ..core.channels import Claims
from ..core.frames import BINARY, CLOSE, PING, PONG, TEXT, FrameParser, close_frame, pong_frame
from ..errors import CroupierError
from ..gateway import Gateway
from ..hub import Encoder
from .closing import finish
from .common import LeanTable, RequestHead, add_lean_routes, check_origin, token_from_request
from .connection import Codec, Connection
from .flusher import Flusher

__all__ = [
    "WEBSOCKETS",
    "Endpoint",
    "InfoHandler",
    "Upgrade",
    "WebSocketReader",
    "WebSockets",
    "accept_key",
    "add_websocket_routes",
    "admit",
    "close_websocket",
    "endpoint_handler",
    "handshake_key",
    "max_message_bytes",
    "open_lean",
]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def max_message_bytes(limits: Limits) -> int:
    """The largest message a client may send before the socket is closed with 1009.

    Smaller messages over ``max_frame_bytes`` are answered with a ``too_large`` error.
    """
    return max(limits.max_frame_bytes * 4, 1 << 20)


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def handshake_key(method: str, headers: Mapping[str, str]) -> str | None:
    """The ``Sec-WebSocket-Key`` of a well-formed upgrade request; ``None`` otherwise."""
    if (
        method != "GET"
        or "websocket" not in headers.get("Upgrade", "").lower()
        or "upgrade" not in (t.strip() for t in headers.get("Connection", "").lower().split(","))
        or headers.get("Sec-WebSocket-Version") != "13"
        or "Content-Length" in headers
        or "Transfer-Encoding" in headers
    ):
        return None
    key = headers.get("Sec-WebSocket-Key", "")
    try:
        if len(binascii.a2b_base64(key, strict_mode=True)) != 16:
            return None
    except (binascii.Error, ValueError):
        return None  # not base64 (strictly: no stray characters), or not ASCII
    return key


def switching_head(key: str) -> bytes:
    """The ``101`` answer to an upgrade with ``key``."""
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
    )


def admit(gateway: Gateway, request: RequestHead) -> Claims | None:
    """The claims of an upgrade's token (None: anonymous), the checks every path makes.

    Raises:
        CroupierError: the origin is not allowed or the token is not valid.
    """
    check_origin(gateway.settings, request)
    token = token_from_request(request)
    return gateway.auth.verify_token(token) if token else None


# -- endpoints ---------------------------------------------------------------------------------


class Upgrade(NamedTuple):
    """An accepted upgrade request as a codec factory sees it.

    ``claims`` are the verified player token's (``None``: none given, or the endpoint does
    not take player tokens). ``request`` is aiohttp's request, ``None`` on the lean path.
    (A named tuple: one is made for every connection, and it is made in one C call.)
    """

    gateway: Gateway
    claims: Claims | None
    match_info: Mapping[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    request: web.Request | None = None


#: Makes the codec of one connection; raising a ``CroupierError`` refuses the upgrade.
CodecFactory = Callable[[Upgrade], "Codec | Awaitable[Codec]"]
InfoHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One WebSocket protocol at one path.

    Attributes:
        pattern: an aiohttp path pattern (``/ws/room/{roomId}``).
        open: the codec factory (see :data:`CodecFactory`).
        wires: hub wires this protocol's codecs name, with their event encoders.
        info: answers a plain GET of the path (no upgrade); default: 400.
        player_token: the token of the request is a player token, verified before ``open``
            (an endpoint for backends checks its own credentials in ``open``).
        lean: a fresh connection's upgrade may be answered before aiohttp sees it; ``open``
            must then not await.
    """

    pattern: str
    open: CodecFactory
    wires: Mapping[str, Encoder] = field(default_factory=dict)
    info: InfoHandler | None = None
    player_token: bool = True
    lean: bool = True


class WebSockets(LeanTable[Endpoint]):
    """The WebSocket endpoints an application serves, found by path."""


WEBSOCKETS = web.AppKey("websockets", WebSockets)


# -- the reader and the close --------------------------------------------------------------------


def close_websocket(transport: asyncio.Transport, last: bytes, code: int, reason: str) -> None:
    """Write ``last`` and a close frame after what is queued, then drain and close (see
    :func:`~croupier.transports.closing.finish`)."""
    finish(transport, last + close_frame(code, reason))


class WebSocketReader(asyncio.Protocol):
    """An upgraded socket's input: frames in, complete messages to the connection.

    It is the socket's protocol on the lean path and aiohttp's payload parser otherwise
    (:meth:`feed_data`, :meth:`feed_eof`). Pings are answered; pongs go to the connection
    (activity, for a codec whose clients are quiet); a close is answered once the messages
    before it are handled; a frame that breaks the rules closes with its code. Once the
    connection is closing, what arrives is read and dropped.
    """

    __slots__ = ("conn", "parser")

    def __init__(self, conn: Connection, parser: FrameParser) -> None:
        self.conn = conn
        self.parser: FrameParser | None = parser

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:
            return  # closing: the rest is dropped
        conn = self.conn
        if conn.closed:
            self.parser = None
            return
        for opcode, payload in parser.feed(data):
            if opcode in (TEXT, BINARY):
                conn.receive(payload)
            elif opcode == PING:
                assert isinstance(payload, bytes)
                conn.send(pong_frame(payload))
            elif opcode == PONG:
                conn.pong()
            elif opcode == CLOSE:
                self.parser = None
                conn.receive(None)
                return
        if parser.error is not None:
            self.parser = None
            conn.close(*parser.error)

    def eof_received(self) -> bool | None:
        return None  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.parser = None
        self.conn.lost()

    # aiohttp's payload parser interface, for a connection upgraded through aiohttp.
    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.data_received(data)
        return False, b""

    def feed_eof(self) -> None:
        self.connection_lost(None)


def open_lean(
    gateway: Gateway,
    codec: Codec,
    claims: Claims | None,
    transport: asyncio.Transport,
    origin: str | None = None,
    head: bytes = b"",
    flusher: Flusher | None = None,
) -> WebSocketReader:
    """A connection on an upgraded socket, greeted: ``head`` (the ``101``, unless already
    written) and the greeting leave in one write."""
    conn = Connection(
        gateway,
        codec,
        claims,
        close_websocket,
        transport=transport,
        origin=origin,
        flusher=flusher,
    )
    reader = WebSocketReader(conn, FrameParser(max_message_bytes(gateway.settings.limits)))
    conn.open(head)  # the head, the greeting and what follows this turn: one write
    return reader


# -- the aiohttp path ------------------------------------------------------------------------


class _Switching(web.StreamResponse):
    """A ``101`` with no body; the socket is the WebSocket's from then on."""

    _length_check = False


def _unavailable() -> web.Response:
    return web.json_response(
        {"error": {"code": "shutting_down", "message": "the server is shutting down"}},
        status=503,
    )


async def open_codec(endpoint: Endpoint, upgrade: Upgrade) -> Codec:
    """Run ``endpoint``'s factory, awaiting it when it awaits."""
    codec = endpoint.open(upgrade)
    if inspect.isawaitable(codec):
        return await codec
    return codec


def endpoint_handler(endpoint: Endpoint) -> InfoHandler:
    """The aiohttp handler of ``endpoint``: upgrades through aiohttp, then the same reader."""

    async def handler(request: web.Request) -> web.StreamResponse:
        gateway: Gateway = request.app[GATEWAY]
        key = handshake_key(request.method, request.headers)
        if key is None:
            if endpoint.info is not None:
                return await endpoint.info(request)
            return web.json_response(
                {
                    "error": {
                        "code": "upgrade_required",
                        "message": f"{request.path[:200]} is a WebSocket endpoint: send a "
                        "WebSocket upgrade (Upgrade: websocket, Sec-WebSocket-Version: 13)",
                    }
                },
                status=400,
            )
        try:
            claims = admit(gateway, request) if endpoint.player_token else None
            if not gateway.ready:
                return _unavailable()
            gateway.admit()
            upgrade = Upgrade(
                gateway, claims, request.match_info, request.query, request.headers, request
            )
            codec = await open_codec(endpoint, upgrade)
        except CroupierError as exc:
            if gateway.debug.watching:
                gateway.debug.emit(
                    "auth.failed" if exc.status in (401, 403) else "connection.refused",
                    path=request.path,
                    code=exc.code,
                    status=exc.status,
                    origin=request.headers.get("Origin"),
                    remote=request.remote,
                )
            return error_response(exc)
        transport = request.transport
        protocol = request.protocol
        if transport is None or protocol is None:
            raise web.HTTPServiceUnavailable()
        response = _Switching(
            status=101,
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Accept": accept_key(key),
            },
        )
        response.force_close()
        await response.prepare(request)
        reader = open_lean(gateway, codec, claims, transport, request.headers.get("Origin"))
        protocol.keep_alive(False)
        protocol.set_parser(reader)  # type: ignore[arg-type]  # it reads bytes as aiohttp's do
        await reader.conn.wait_lost()
        return response

    # The handler is the endpoint's own (a service's endpoint is that service's route).
    handler.__module__ = getattr(endpoint.open, "__module__", __name__)
    return handler


def add_websocket_routes(app: web.Application, endpoints: Sequence[Endpoint]) -> None:
    """Serve ``endpoints`` (lean path and aiohttp path) and teach the hub their wires."""
    add_lean_routes(app, WEBSOCKETS, WebSockets, endpoints, endpoint_handler)
