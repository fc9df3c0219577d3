"""Server-Sent Events (``GET /sse``) and the stream machinery the compatibility endpoints share.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from aiohttp import web

from ..api.toolkit import error_response
from ..appkeys import GATEWAY
from ..config import NamespaceRules, Settings
from ..core import commands as c
from ..core.channels import Claims, check_subscribe, resolve
from ..core.sse import Cursor, data_frame, decode_cursor, id_line, parse_offset
from ..core.wire import control, encode_event
from ..errors import BadRequest, CroupierError, Overloaded
from ..events import Event
from ..gateway import Gateway
from ..logs import now_ts
from .closing import finish
from .common import check_origin, token_from_request
from .connection import BaseCodec, Connection

__all__ = [
    "Dialect",
    "SseCodec",
    "SseResponse",
    "Want",
    "add_sse_routes",
    "last_event_id",
    "open_stream",
    "sse_handler",
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


# -- opening a stream --------------------------------------------------------------------------


def last_event_id(request: web.Request) -> str | None:
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


def _headers(request: web.Request, start: str | None) -> dict[str, str]:
    headers = {
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    }
    if start is not None:
        headers["Croupier-Last-Event-ID"] = start
    origin = request.headers.get("Origin")
    if origin is not None:
        # check_origin has let it through: a page there may read the stream.
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Expose-Headers"] = "Croupier-Last-Event-ID"
        headers["Vary"] = "Origin"
    return headers


def _unavailable() -> web.Response:
    response = web.json_response(
        {"error": {"code": "shutting_down", "message": "the server is shutting down"}},
        status=503,
    )
    response.force_close()
    return response


async def open_stream(
    request: web.Request,
    gateway: Gateway,
    dialect: Dialect,
    wants: Sequence[Want],
    claims: Claims | None,
    *,
    refused: CroupierError | None = None,
    multi_dialect: Dialect | None = None,
) -> web.StreamResponse:
    """Subscribe a new stream to ``wants``, send it, and serve it until it ends.

    With ``refused``, the stream only greets and then reports that error. With more than
    one channel the stream uses ``multi_dialect`` (its cursor ids need a data-only wire).
    """
    if not gateway.ready:
        return _unavailable()
    try:
        gateway.admit()
    except Overloaded as exc:
        refusal = error_response(exc)
        refusal.force_close()
        return refusal
    if len(wants) > 1 and multi_dialect is not None:
        dialect = multi_dialect
    codec = SseCodec(gateway.settings, dialect, () if refused is not None else wants)
    origin = request.headers.get("Origin")
    conn = Connection(gateway, codec, claims, close_sse, reads=False, kind="sse", origin=origin)
    protocol = request.protocol
    if protocol is not None:
        # From here the connection carries only this stream; the watch hears it close.
        protocol.set_parser(cast(Any, _Watch(conn)))
    try:
        conn.open()
        await conn.run_opening()
        if conn.closed:
            return _unavailable()
        failed = refused is not None or any(w.channel not in conn.channels for w in wants)
        start: str | None = None
        if not failed and any(w.rules.stored for w in wants):
            starts = [conn.starts.get(w.channel) for w in wants]
            if len(wants) > 1:
                codec.cursor = Cursor([w.channel for w in wants], starts)
                start = codec.cursor.value()
            elif starts[0] is not None:
                start = str(starts[0].offset)
        response = SseResponse(headers=_headers(request, start))
        response.force_close()
        await response.prepare(request)
        transport = request.transport
        if transport is None:
            return response
        conn.attach(transport, dialect.greeting(start, gateway.settings.limits.sse_retry_ms))
        if refused is not None:
            conn.send(codec.encode(c.Refused(refused.code, refused.message)))
        if failed:
            conn.close(1011)  # the refusal (held, or just sent) is the stream's last word
        await conn.wait_lost()
        return response
    finally:
        await conn.cleanup()


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


async def sse_handler(request: web.Request) -> web.StreamResponse:
    """``GET /sse?channel=…[&channel=…]`` — the native event stream."""
    gateway: Gateway = request.app[GATEWAY]
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
    resume = last_event_id(request)
    if refused is None and resume is not None:
        wants = _resume(wants, resume)
    return await open_stream(
        request, gateway, NATIVE, wants, claims, refused=refused, multi_dialect=NATIVE_MULTI
    )


def _resume(wants: list[Want], value: str) -> list[Want]:
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


def add_sse_routes(app: web.Application) -> None:
    """Serve ``GET /sse`` and teach the gateway's hub the SSE wire formats."""
    gateway: Gateway = app[GATEWAY]
    gateway.hub.add_wire(NATIVE.wire, encode_sse)
    gateway.hub.add_wire(NATIVE_MULTI.wire, encode_sse_data)
    app.router.add_get("/sse", sse_handler, allow_head=False)
