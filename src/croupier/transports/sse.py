"""Server-Sent Events (``GET /sse``) and the stream machinery the compatibility endpoints share.

An event-stream endpoint (:class:`StreamEndpoint`) is a path pattern and a :data:`Planner`,
which turns the request (path parameters, query, headers) into the stream's :class:`Plan`
without awaiting: dialect, channels, claims, or a refusal. A :class:`Stream` runs a plan on
a socket. It is opened one of two ways, which end in the same bytes:

* A fresh TCP connection whose first request is a plain HTTP/1.1 ``GET`` of a lean endpoint
  is served by the :class:`~croupier.transports.wsproto.Sniffer` without aiohttp
  (:mod:`croupier.transports.sselean`).
* Otherwise (a request after another on a kept-alive connection, a head the front door
  does not take, or a request its planner refuses: aiohttp's handler answers every refusal
  but the admission budget's ``503``), aiohttp routes it to :func:`stream_handler`.

The response is close-delimited: HTTP/1.1 with neither ``Content-Length`` nor chunked
encoding, and ``Connection: close``. So after the headers the body is nothing but the event
stream, and fan-out writes the hub's pre-encoded bytes straight to the socket's transport,
as the WebSocket does. A stream is a :class:`~croupier.transports.connection.Connection`
whose codec is an :class:`SseCodec` of one :class:`Dialect`: the same outbox bound,
slow-consumer policy, presence, starting points (a sports match's snapshot) and token expiry
as every other connection; its heartbeat is the dialect's keep-alive.

A stream is set up before its headers are sent: every channel is subscribed (history read,
recovery decided) while the connection holds what the hub pushes. Only then is it known where
the stream starts, which the ``Croupier-Last-Event-ID`` header and the greeting's ``id:`` say.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from aiohttp import web
from multidict import MultiMapping

from ..api.toolkit import Handler, error_response
from ..appkeys import GATEWAY
from ..config import NamespaceRules, Settings
from ..core import commands as c
from ..core.channels import Claims, check_subscribe, resolve
from ..core.sse import Cursor, data_frame, decode_cursor, id_line, parse_offset
from ..core.wire import control, encode_event
from ..errors import BadRequest, CroupierError, Overloaded
from ..events import Event
from ..gateway import Gateway
from ..hub import Encoder
from ..logs import now_ts
from .closing import finish
from .common import LeanTable, RequestHead, add_lean_routes, check_origin, token_from_request
from .connection import BaseCodec, Connection
from .flusher import Flusher

__all__ = [
    "ENDPOINT",
    "EVENT_STREAMS",
    "SHUTTING_DOWN",
    "Dialect",
    "EventStreams",
    "Plan",
    "Planner",
    "SseCodec",
    "SseResponse",
    "Stream",
    "StreamEndpoint",
    "StreamRequest",
    "Want",
    "add_stream_routes",
    "close_sse",
    "encode_sse",
    "encode_sse_data",
    "last_event_id",
    "open_stream",
    "plan_sse",
    "resume",
    "since_offset",
    "stream_handler",
    "stream_headers",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one kind of stream renders what is not an event.

    ``wire`` names the hub's encoder for the events themselves. ``greeting`` gets the id
    the stream starts at (``None`` if it has no stored channel) and the ``retry`` delay.
    ``snapshot`` renders a service's starting point (native JSON), ``b""`` to leave it out.
    """

    name: str
    wire: str
    greeting: Callable[[str | None, int], bytes]
    keepalive: Callable[[], bytes]
    reset: Callable[[str], bytes]
    error: Callable[[str, str], bytes]
    disconnect: Callable[[str, bool], bytes]
    snapshot: Callable[[bytes], bytes] = lambda payload: b""


@dataclass(frozen=True, slots=True)
class Want:
    """One channel a stream is asked for, and where the client says it stands.

    ``reset`` is set when the client asked to resume but its id cannot be used: it is told
    to reload state. ``since`` without an epoch is of the channel's current epoch.
    """

    channel: str
    rules: NamespaceRules
    since: c.Since | None = None
    reset: bool = False


class SseResponse(web.StreamResponse):
    """A response whose body runs until the connection closes (no length, no chunks)."""

    # aiohttp turns on chunked encoding for an HTTP/1.1 body of unknown length unless the
    # length check is off, as it is for its own WebSocket responses.
    _length_check = False


class _Watch:
    """Told by aiohttp when the client goes away (it stands where a WebSocket reader would)."""

    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        """An event-stream client has nothing to say; what it sends is dropped."""
        return False, b""

    def feed_eof(self) -> None:
        self.conn.lost()


def close_sse(transport: asyncio.Transport, last: bytes, code: int, reason: str) -> None:
    """End a stream: ``last`` after what is queued (an event stream has no close code)."""
    finish(transport, last)


class SseCodec(BaseCodec):
    """An event stream in one dialect, subscribing to ``wants`` as it opens.

    A client of a stream sends nothing; with more than one channel, each stored event's
    ``id:`` is the stream's cursor (the hub's shared data-only frame with this client's id
    line in front).
    """

    def __init__(self, settings: Settings, dialect: Dialect, wants: Sequence[Want]) -> None:
        super().__init__(settings)
        self.ping_interval = settings.limits.sse_keepalive
        self.dialect = dialect
        self.name = dialect.name
        self.wire = dialect.wire
        self.wants = list(wants)
        self.cursor: Cursor | None = None
        if len(self.wants) > 1:
            self.on_event = self._cursor_id

    def _cursor_id(self, frame: bytes, event: Event) -> bytes:
        if event.offset is None or self.cursor is None:
            return frame
        return self.cursor.advance(event.channel, event.offset, event.epoch) + frame

    def decode(self, message: bytes | str) -> Sequence[c.Command]:
        raise BadRequest("an event stream takes no messages", code="bad_message")

    def opening(self) -> Sequence[c.Command]:
        return [c.Subscribe(w.channel, None, w.since, w.reset) for w in self.wants]

    def encode(self, reply: c.Reply) -> bytes:
        dialect = self.dialect
        if isinstance(reply, c.Subscribed):
            if reply.resumed and not reply.recovered:
                return dialect.reset(reply.channel)
            return b""
        if isinstance(reply, c.Snapshot):
            return dialect.snapshot(reply.payload)
        if isinstance(reply, c.Refused):
            return dialect.error(reply.code, reply.message)
        if isinstance(reply, c.Disconnect):
            return dialect.disconnect(reply.reason, reply.reconnect)
        if isinstance(reply, c.Reset):
            return dialect.reset(reply.channel)
        return b""

    def heartbeat(self) -> bytes:
        return self.dialect.keepalive()


# -- what a stream will be ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamRequest:
    """A request for an event stream as a planner reads it, whichever way it came in
    (aiohttp's request, or the head the lean front door parsed): the path parameters, the
    query and the headers."""

    match_info: Mapping[str, str]
    query: MultiMapping[str]
    headers: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Plan:
    """What a stream will be: its dialect, the channels it subscribes to, the claims it holds.

    With ``refused``, the stream only greets and then reports that error (a channel the
    client may not read is refused in the stream, not with an HTTP status).
    """

    dialect: Dialect
    wants: Sequence[Want]
    claims: Claims | None
    refused: CroupierError | None = None


#: Makes the plan of a stream from its request; raising a ``CroupierError`` refuses the
#: request with that HTTP answer. It never awaits, so the lean path can run it as it reads.
Planner = Callable[[Gateway, StreamRequest], Plan]


def last_event_id(request: RequestHead) -> str | None:
    """The id a client resumes from: ``Last-Event-ID`` (what a reconnecting browser sends)
    or else the ``lastEventId`` query parameter."""
    value = request.headers.get("Last-Event-ID")
    if value is None or not value.strip():
        value = request.query.get("lastEventId")
    if value is None or not value.strip():
        return None
    return value


def since_offset(value: str) -> c.Since | None:
    """A plain-offset id as a position in the channel's current epoch (``None``: unusable).

    A plain offset carries no epoch; it is taken to be of the current one.
    """
    offset = parse_offset(value)
    return None if offset is None else c.Since(offset)


def resume(wants: list[Want], request: RequestHead) -> list[Want]:
    """``wants`` resuming from the request's :func:`last_event_id`, if it has one.

    One channel resumes from a plain offset, several from the stream's cursor; a stored
    channel whose position cannot be read is told to reload (``reset``).
    """
    value = last_event_id(request)
    if value is None:
        return wants
    if len(wants) == 1:
        want = wants[0]
        if not want.rules.stored:
            return wants
        since = since_offset(value)
        return [replace(want, since=since, reset=since is None)]
    positions = decode_cursor(value, [w.channel for w in wants])
    out = []
    for i, want in enumerate(wants):
        if not want.rules.stored:
            out.append(want)
            continue
        position = positions[i] if positions is not None else None
        since = None if position is None else c.Since(position.offset, position.epoch)
        out.append(replace(want, since=since, reset=since is None))
    return out


# -- running a stream ------------------------------------------------------------------------


def stream_headers(origin: str | None, start: str | None) -> dict[str, str]:
    """The response headers of a stream that starts at ``start`` for a page at ``origin``
    (``check_origin`` has let it through: a page there may read the stream)."""
    headers = {
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    }
    if start is not None:
        headers["Croupier-Last-Event-ID"] = start
    if origin is not None:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = "Croupier-Last-Event-ID"
        headers["Vary"] = "Origin"
    return headers


#: The answer to a stream whose opening ended it (the server is stopping), as aiohttp's JSON.
SHUTTING_DOWN = {"error": {"code": "shutting_down", "message": "the server is shutting down"}}


class Stream:
    """One event stream, run the same way whichever path opened it.

    Made from its plan: a connection that holds what the hub pushes until it is attached.
    Then :meth:`Connection.open <croupier.transports.connection.Connection.open>` subscribes
    every channel, at once or in the connection's task (``conn.task``) while a subscribe
    awaits. Once that is done, :meth:`opened` says whether the stream goes ahead and where it
    starts, and :meth:`attach` sends the head, the greeting and what was held in one write.
    """

    __slots__ = ("codec", "conn", "failed", "origin", "plan", "start")

    def __init__(
        self, gateway: Gateway, plan: Plan, origin: str | None, flusher: Flusher | None = None
    ) -> None:
        wants = () if plan.refused is not None else plan.wants
        self.codec = codec = SseCodec(gateway.settings, plan.dialect, wants)
        self.conn = Connection(
            gateway,
            codec,
            plan.claims,
            close_sse,
            reads=False,
            kind="sse",
            origin=origin,
            flusher=flusher,
        )
        self.plan = plan
        self.origin = origin
        self.failed = plan.refused is not None
        self.start: str | None = None

    def opened(self) -> bool:
        """After the opening: ``False`` if it ended the connection (answer 503), else where
        the stream starts is known (:attr:`start`, :meth:`headers`)."""
        conn = self.conn
        if conn.closed:
            return False
        wants = self.plan.wants
        held = conn.channels
        stored = False
        for want in wants:
            if want.channel not in held:
                self.failed = True
            elif want.rules.stored:
                stored = True
        if self.failed or not stored:
            return True
        if len(wants) > 1:
            codec = self.codec
            starts = [conn.starts.get(w.channel) for w in wants]
            codec.cursor = Cursor([w.channel for w in wants], starts)
            self.start = codec.cursor.value()
        else:
            start = conn.starts.get(wants[0].channel)
            if start is not None:
                self.start = str(start.offset)
        return True

    def headers(self) -> dict[str, str]:
        """The response headers (see :func:`stream_headers`)."""
        return stream_headers(self.origin, self.start)

    def attach(self, transport: asyncio.Transport, head: bytes = b"") -> None:
        """Write ``head`` (the response head, unless already written), the greeting and
        what was held, in one write; a refused or failed stream then ends."""
        conn = self.conn
        dialect = self.plan.dialect
        greeting = dialect.greeting(self.start, conn.gateway.settings.limits.sse_retry_ms)
        conn.attach(transport, head + greeting)
        refused = self.plan.refused
        if refused is not None:
            conn.send(self.codec.encode(c.Refused(refused.code, refused.message)))
        if self.failed:
            conn.close(1011)  # the refusal (held, or just sent) is the stream's last word


# -- the aiohttp path ------------------------------------------------------------------------


def _unavailable() -> web.Response:
    response = web.json_response(SHUTTING_DOWN, status=503)
    response.force_close()
    return response


async def open_stream(request: web.Request, gateway: Gateway, plan: Plan) -> web.StreamResponse:
    """Serve the stream ``plan`` describes on aiohttp's connection until it ends."""
    if not gateway.ready:
        return _unavailable()
    try:
        gateway.admit()
    except Overloaded as exc:
        refusal = error_response(exc)
        refusal.force_close()
        return refusal
    stream = Stream(gateway, plan, request.headers.get("Origin"))
    conn = stream.conn
    protocol = request.protocol
    if protocol is not None:
        # From here the connection carries only this stream; the watch hears it close.
        protocol.set_parser(cast(Any, _Watch(conn)))
    try:
        conn.open()
        await conn.run_opening()
        if not stream.opened():
            return _unavailable()
        response = SseResponse(headers=stream.headers())
        response.force_close()
        await response.prepare(request)
        transport = request.transport
        if transport is None:
            return response
        stream.attach(transport)
        await conn.wait_lost()
        return response
    finally:
        await conn.cleanup()


# -- the endpoints ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamEndpoint:
    """One kind of event stream at one path.

    Attributes:
        pattern: an aiohttp path pattern (``/api/tables/{tableId}/events``).
        plan: the stream's :data:`Planner`.
        wires: hub wires its dialects name, with their event encoders.
        lean: a fresh connection's request may be served before aiohttp sees it.
    """

    pattern: str
    plan: Planner
    wires: Mapping[str, Encoder] = field(default_factory=dict)
    lean: bool = True


class EventStreams(LeanTable[StreamEndpoint]):
    """The event-stream endpoints an application serves, found by path."""


EVENT_STREAMS = web.AppKey("event_streams", EventStreams)


def stream_handler(endpoint: StreamEndpoint) -> Handler:
    """The aiohttp handler of ``endpoint``: plan the stream, then serve it."""

    async def handler(request: web.Request) -> web.StreamResponse:
        gateway: Gateway = request.app[GATEWAY]
        head = StreamRequest(request.match_info, request.query, request.headers)
        return await open_stream(request, gateway, endpoint.plan(gateway, head))

    handler.__module__ = getattr(endpoint.plan, "__module__", __name__)
    return handler


def add_stream_routes(app: web.Application, endpoints: Sequence[StreamEndpoint]) -> None:
    """Serve ``endpoints`` (lean path and aiohttp path) and teach the hub their wires."""
    add_lean_routes(app, EVENT_STREAMS, EventStreams, endpoints, stream_handler)


# -- GET /sse --------------------------------------------------------------------------------


def _connected(start: str | None, retry: int) -> bytes:
    head = b"retry: %d\n" % retry
    if start is not None:
        head += id_line(start)
    return head + b"data: " + control("connected", timestamp=now_ts()) + b"\n\n"


def _keepalive() -> bytes:
    ts = now_ts()
    return b": keepalive %b\ndata: %b\n\n" % (
        ts.encode(),
        control("keepalive", timestamp=ts),
    )


def _reset(channel: str) -> bytes:
    return data_frame(control("reset", channel=channel))


def _error(code: str, message: str) -> bytes:
    return data_frame(control("error", code=code, message=message))


def _disconnect(reason: str, reconnect: bool) -> bytes:
    return data_frame(control("disconnect", code=reason, reconnect=reconnect))


def encode_sse(event: Event) -> bytes:
    """The ``sse`` wire: ``id: <offset>`` (stored events) and the event as JSON."""
    return data_frame(encode_event(event), event.offset)


def encode_sse_data(event: Event) -> bytes:
    """The ``sse.data`` wire: the event as JSON alone; each client adds its own cursor."""
    return data_frame(encode_event(event))


def _snapshot(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


NATIVE = Dialect("sse", "sse", _connected, _keepalive, _reset, _error, _disconnect, _snapshot)
NATIVE_MULTI = replace(NATIVE, wire="sse.data")


def plan_sse(gateway: Gateway, request: StreamRequest) -> Plan:
    """``GET /sse?channel=…[&channel=…]`` — the native event stream."""
    settings = gateway.settings
    check_origin(settings, request)
    token = token_from_request(request)
    claims = gateway.auth.verify_token(token) if token else None
    names = list(dict.fromkeys(request.query.getall("channel", [])))
    if not names:
        raise BadRequest("name at least one channel: /sse?channel=<name>[&channel=<name>…]")
    if len(names) > settings.limits.max_subscriptions:
        raise BadRequest(f"at most {settings.limits.max_subscriptions} channels per stream")
    resolved = [resolve(settings, name) for name in names]
    refused: CroupierError | None = None
    for name, rules in resolved:
        try:
            check_subscribe(rules, name, claims)
        except CroupierError as exc:
            refused = exc
            break
    wants = [Want(name, rules) for name, rules in resolved]
    if refused is None:
        wants = resume(wants, request)
    dialect = NATIVE_MULTI if len(wants) > 1 else NATIVE
    return Plan(dialect, wants, claims, refused)


ENDPOINT = StreamEndpoint(
    "/sse", plan_sse, {NATIVE.wire: encode_sse, NATIVE_MULTI.wire: encode_sse_data}
)
