"""The lean front door: a protocol in front of aiohttp that serves WebSockets and event
streams itself.

Every accepted TCP connection starts with a :class:`Sniffer`. It reads the first request
head, a well-formed ``GET`` of HTTP/1.1 (:func:`parse_head`), and serves two kinds of request
without aiohttp:

* a WebSocket upgrade to a lean endpoint (see
  :class:`~croupier.transports.websocket.Endpoint`) that would be accepted (allowed origin,
  valid or no token, a codec for it, server not stopping) is answered with ``101`` here and
  the socket switches to a :class:`~croupier.transports.websocket.WebSocketReader`;
* a request without a body for a lean event stream (see
  :class:`~croupier.transports.sse.StreamEndpoint`) whose planner accepts it is served by
  :func:`~croupier.transports.sselean.open_lean_stream`.

Everything else, refusals included (but for the admission budget's ``503``, answered here
in aiohttp's bytes), is handed to aiohttp with the bytes read so far, as if aiohttp had
accepted it: the endpoint's handler answers a refused request whichever way it came in, and
a request aiohttp accepts ends in the same reader or stream.

Why: an idle aiohttp WebSocket or stream keeps its request, response, writer and a handler
task with its coroutine frames; a lean one keeps a parser, the connection and its session,
and no task.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import weakref
from collections.abc import Callable
from typing import cast
from urllib.parse import parse_qsl, unquote

import orjson
from multidict import CIMultiDict, MultiDict

from ..core.frames import close_frame
from ..core.wire import control, ws_frame
from ..errors import CroupierError, Overloaded
from ..gateway import Gateway
from .flusher import flusher
from .sse import EventStreams, StreamRequest
from .sselean import open_lean_stream, overloaded_answer
from .websocket import Upgrade, WebSockets, admit, handshake_key, open_lean, switching_head

__all__ = ["FirstRequests", "Sniffer", "first_requests", "parse_head"]

_PREFIX = b"GET /"
# aiohttp's own limits on a request head (its line and field sizes, its header count): a
# head past them goes to aiohttp, which refuses it, so both paths take the same requests.
_MAX_HEAD = 8190
_MAX_HEADERS = 128
# A connection that sends no request at all is closed after this long, as aiohttp does
# with its keep-alive timeout (the same default) on the connections it accepts.
_FIRST_REQUEST_TIMEOUT = 75.0


# The request line and header lines the lean path takes; anything else (a control
# character, a bare CR or LF, a name that is not a token, text past ASCII) goes to aiohttp.
_REQUEST_LINE = re.compile(r"GET (/[\x21-\x7e]*) HTTP/1\.1")
_HEADER_LINES = re.compile(r"(?:\r\n[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e]*)*")
# Headers that make a request more than a plain GET: aiohttp decides what they mean.
_NOT_PLAIN = ("Content-Length", "Transfer-Encoding", "Expect", "Upgrade")


class _Head:
    """A request head as the origin and token checks read it."""

    __slots__ = ("headers", "path", "query")

    def __init__(self, path: str, headers: CIMultiDict[str], query: MultiDict[str]) -> None:
        self.path = path
        self.headers = headers
        self.query = query


def parse_head(head: bytes) -> _Head | None:
    """The path, headers and query of a well-formed ``GET`` of HTTP/1.1 within aiohttp's
    limits; None for anything else (aiohttp then handles the request and answers it as it
    would).
    """
    if len(head) > _MAX_HEAD or head.count(b"\r\n") > _MAX_HEADERS:
        return None
    text = head.decode("latin-1")
    end = text.find("\r\n")
    if end < 0:
        end = len(text)
    target = _REQUEST_LINE.fullmatch(text, 0, end)
    if target is None or _HEADER_LINES.fullmatch(text, end) is None:
        return None  # obsolete line folding, a malformed header, a byte out of place
    headers: CIMultiDict[str] = CIMultiDict()
    if end < len(text):
        for line in text[end + 2 :].split("\r\n"):
            name, _, value = line.partition(":")
            headers.add(name, value.strip(" \t"))
    path, _, query = target.group(1).partition("?")
    return _Head(unquote(path), headers, MultiDict(_query(query)))


def _query(query: str) -> list[tuple[str, str]]:
    """The query's pairs, as ``parse_qsl(query, keep_blank_values=True)`` gives them."""
    if "%" in query or "+" in query:
        return parse_qsl(query, keep_blank_values=True)
    pairs = []
    for part in query.split("&"):
        if part:  # parse_qsl skips empty parts too
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


class FirstRequests:
    """The connections of one loop still waiting for their first request, each closed once
    ``timeout`` seconds pass without one.

    One timer sweeps them all (every ``sweep`` seconds while any wait), so a connection that
    sends its request at once, as nearly all do, costs two dictionary operations instead of
    a timer of its own. A connection is closed between ``timeout`` and ``timeout + sweep``
    seconds after it came.
    """

    __slots__ = ("loop", "sweep", "timeout", "timer", "waiting")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, timeout: float = _FIRST_REQUEST_TIMEOUT
    ) -> None:
        self.loop = loop
        self.timeout = timeout
        self.sweep = min(1.0, timeout)
        self.waiting: dict[asyncio.BaseTransport, float] = {}  # transport -> its deadline
        self.timer: asyncio.TimerHandle | None = None

    def add(self, transport: asyncio.BaseTransport) -> None:
        self.waiting[transport] = self.loop.time() + self.timeout
        if self.timer is None:
            self.timer = self.loop.call_later(self.sweep, self._sweep)

    def discard(self, transport: asyncio.BaseTransport) -> None:
        self.waiting.pop(transport, None)

    def _sweep(self) -> None:
        self.timer = None
        now = self.loop.time()
        late = [transport for transport, deadline in self.waiting.items() if deadline <= now]
        for transport in late:
            del self.waiting[transport]
            transport.close()
        if self.waiting:
            self.timer = self.loop.call_later(self.sweep, self._sweep)


# One registry per event loop (a loop that is gone takes its registry with it).
_first_requests: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FirstRequests] = (
    weakref.WeakKeyDictionary()
)


def first_requests(loop: asyncio.AbstractEventLoop) -> FirstRequests:
    """``loop``'s :class:`FirstRequests`."""
    found = _first_requests.get(loop)
    if found is None:
        found = _first_requests[loop] = FirstRequests(loop)
    return found


class Sniffer(asyncio.Protocol):
    """The first protocol of every connection: lean WebSocket, lean event stream, or aiohttp.

    Args:
        http: makes aiohttp's protocol for a connection (the runner's ``server``).
        gateway: what a WebSocket connection or a stream serves.
        websockets: the WebSocket endpoints, of which the lean ones are upgraded here.
        streams: the event-stream endpoints, of which the lean ones are served here.
        loop: the server's loop (default: the running one when the connection is made);
            given, no connection asks for it (on Python 3.11 each ask is a system call).
    """

    __slots__ = (
        "_buffer",
        "_gateway",
        "_http",
        "_loop",
        "_streams",
        "_transport",
        "_waiting",
        "_websockets",
    )

    def __init__(
        self,
        http: Callable[[], asyncio.Protocol],
        gateway: Gateway,
        websockets: WebSockets,
        streams: EventStreams | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._loop = loop
        self._http = http
        self._gateway = gateway
        self._websockets = websockets
        self._streams = streams if streams is not None else EventStreams()
        self._buffer = b""
        self._transport: asyncio.Transport | None = None
        self._waiting: FirstRequests | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        self._waiting = first_requests(loop)
        self._waiting.add(transport)

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
        head = parse_head(buffer[:end])
        if head is None:
            self._to_http(buffer)
            return
        key = handshake_key("GET", head.headers)
        if key is not None:
            self._upgrade(head, key, buffer, end + 4)
        elif not any(name in head.headers for name in _NOT_PLAIN):
            self._stream(head, buffer)
        else:
            self._to_http(buffer)

    def _upgrade(self, head: _Head, key: str, buffer: bytes, rest: int) -> None:
        """A WebSocket upgrade: lean if its endpoint is and accepts it, else aiohttp's."""
        found = self._websockets.lean(head.path)
        if found is None:
            self._to_http(buffer)
            return
        endpoint, params = found
        gateway = self._gateway
        try:
            claims = admit(gateway, head) if endpoint.player_token else None
            if gateway.ready:
                gateway.admit()  # before the codec: a refused client costs nothing more
            codec = endpoint.open(Upgrade(gateway, claims, params, head.query, head.headers))
        except Overloaded as exc:
            self._refuse(overloaded(endpoint.pattern, key, exc.retry_after))
            return
        except CroupierError:
            self._to_http(buffer)  # the endpoint's handler answers with the reason
            return
        # An awaitable is an endpoint's factory that awaits (aiohttp's path runs it). Asked as
        # ``hasattr``: a codec is no awaitable, and the abstract-class check costs more.
        if hasattr(codec, "__await__") or not gateway.ready:
            if inspect.iscoroutine(codec):
                codec.close()
            self._to_http(buffer)
            return
        transport = self._take()
        reader = open_lean(
            gateway,
            codec,
            claims,
            transport,
            head.headers.get("Origin"),
            switching_head(key),
            flusher(self._loop),
        )
        transport.set_protocol(reader)
        if rest < len(buffer):
            reader.data_received(buffer[rest:])

    def _stream(self, head: _Head, buffer: bytes) -> None:
        """A plain GET: a lean event stream if its endpoint is and plans it, else aiohttp's.

        What the client sends after the request is dropped, as it is on aiohttp's path.
        """
        found = self._streams.lean(head.path)
        if found is None:
            self._to_http(buffer)
            return
        endpoint, params = found
        gateway = self._gateway
        try:
            plan = endpoint.plan(gateway, StreamRequest(params, head.query, head.headers))
        except CroupierError:
            self._to_http(buffer)  # the endpoint's handler answers with the reason
            return
        if not gateway.ready:
            self._to_http(buffer)
            return
        try:
            gateway.admit()
        except Overloaded as exc:
            self._refuse(overloaded_answer(exc))
            return
        open_lean_stream(
            gateway, plan, self._take(), head.headers.get("Origin"), flusher(self._loop)
        )

    def eof_received(self) -> bool | None:
        if self._buffer:
            # A request cut short: aiohttp answers it as it would any other.
            proto = self._to_http(self._buffer)
            return proto.eof_received()
        return None  # nothing asked: close

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        self._transport = None

    def _take(self) -> asyncio.Transport:
        """The socket, handed over to the lean path: the sniffer is done with it."""
        self._stop_waiting()
        transport = self._transport
        assert transport is not None
        self._transport = None
        self._buffer = b""
        return transport

    def _refuse(self, answer: bytes) -> None:
        """Write ``answer`` and close: the connection ends here."""
        transport = self._take()
        transport.write(answer)
        transport.close()

    def _stop_waiting(self) -> None:
        if self._waiting is not None:
            if self._transport is not None:
                self._waiting.discard(self._transport)
            self._waiting = None

    def _to_http(self, buffer: bytes) -> asyncio.Protocol:
        self._stop_waiting()
        transport = self._transport
        assert transport is not None
        proto = self._http()
        transport.set_protocol(proto)
        self._transport = None
        self._buffer = b""
        proto.connection_made(transport)
        proto.data_received(buffer)
        return proto


def overloaded(pattern: str, key: str, retry_after: int) -> bytes:
    """A refusal over the node's admission budget, on the lean path.

    The native ``/ws`` is upgraded and told at once: a ``disconnect`` with ``retry_after``
    and a close with 1013 (try again later), the only answer a browser's WebSocket lets a
    page read. Other protocols get ``503`` with ``Retry-After`` before the upgrade.
    """
    if pattern == "/ws":
        advice = control("disconnect", code="overloaded", reconnect=True, retry_after=retry_after)
        return switching_head(key) + ws_frame(advice) + close_frame(1013, "overloaded")
    body = orjson.dumps(
        {
            "error": {
                "code": "overloaded",
                "message": f"this server is admitting no more new connections now: "
                f"retry in {retry_after} s",
            }
        }
    )
    return (
        f"HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body
