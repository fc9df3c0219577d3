"""Server-Sent Events (``GET /sse``) and the stream machinery the compatibility endpoints share.

The response is close-delimited: HTTP/1.1 with neither ``Content-Length`` nor chunked
encoding, and ``Connection: close``. So after the headers the body is nothing but the event
stream, and fan-out writes the hub's pre-encoded bytes straight to the socket's transport,
as the WebSocket does. The transport's write buffer is the connection's outbox, with the
same bound and the same slow-consumer policy.

A stream is set up before its headers are sent: every channel is subscribed (history read,
recovery decided) while what the hub pushes is held back. Only then is it known where the
stream starts, which the ``Croupier-Last-Event-ID`` header and the greeting's ``id:`` say.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from aiohttp import web

from ..appkeys import GATEWAY
from ..config import NamespaceRules
from ..core.channels import Claims, check_subscribe, resolve
from ..core.sse import Cursor, data_frame, decode_cursor, id_line, parse_offset
from ..core.wire import control, encode_event
from ..errors import BadRequest, CroupierError
from ..events import Event, Position
from ..gateway import Gateway
from ..hub import SubscribeResult
from ..logs import now_ts
from .common import BoundedOutbox, check_origin, new_client_id, token_from_request

__all__ = [
    "Dialect",
    "SseConnection",
    "SseResponse",
    "Want",
    "add_sse_routes",
    "last_event_id",
    "open_stream",
    "sse_handler",
]

log = logging.getLogger(__name__)

_CLOSE_GRACE = 1.0  # seconds a closing stream may take to flush before it is aborted


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one kind of stream renders what is not an event.

    ``wire`` names the hub's encoder for the events themselves. ``greeting`` gets the id
    the stream starts at (``None`` if it has no stored channel) and the ``retry`` delay.
    """

    wire: str
    greeting: Callable[[str | None, int], bytes]
    keepalive: Callable[[], bytes]
    reset: Callable[[str], bytes]
    error: Callable[[CroupierError], bytes]
    disconnect: Callable[[str, bool], bytes]


@dataclass(frozen=True, slots=True)
class Want:
    """One channel a stream is asked for, and where the client says it stands.

    ``reset`` is set when the client asked to resume but its id cannot be used: it is told
    to reload state.
    """

    channel: str
    rules: NamespaceRules
    since: Position | None = None
    reset: bool = False


class SseResponse(web.StreamResponse):
    """A response whose body runs until the connection closes (no length, no chunks)."""

    # aiohttp turns on chunked encoding for an HTTP/1.1 body of unknown length unless the
    # length check is off, as it is for its own WebSocket responses.
    _length_check = False


class _Watch:
    """Told by aiohttp when the client goes away (it stands where a WebSocket reader would)."""

    __slots__ = ("conn",)

    def __init__(self, conn: SseConnection) -> None:
        self.conn = conn

    def feed_data(self, data: bytes) -> None:
        """An event-stream client has nothing to say; what it sends is dropped."""

    def feed_eof(self) -> None:
        self.conn.lost()


class SseConnection(BoundedOutbox):
    """One client's event stream: a :class:`~croupier.hub.Sink` that writes to the socket.

    Until :meth:`start`, pushes are held in order; after it they go to the transport.
    """

    __slots__ = (
        "_expiry",
        "channels",
        "claims",
        "client",
        "closed",
        "dialect",
        "done",
        "gateway",
        "held",
        "max_held",
        "transport",
        "wire",
    )

    def __init__(self, gateway: Gateway, dialect: Dialect, claims: Claims | None) -> None:
        limits = gateway.settings.limits
        self.gateway = gateway
        self.dialect = dialect
        self.wire = dialect.wire
        self.claims = claims
        self.client = new_client_id()
        self.channels: dict[str, NamespaceRules] = {}
        self.transport: asyncio.Transport | None = None
        self.held: list[tuple[bytes, Event | None]] | None = []
        BoundedOutbox.__init__(self, limits)
        self.max_held = limits.recover_max + limits.outbox_messages
        self.closed = False
        self.done = asyncio.Event()
        self._expiry: asyncio.TimerHandle | None = None

    # -- the hot path ----------------------------------------------------------------------

    def push(self, frame: bytes, event: Event | None = None) -> None:
        if self.closed:
            return
        held = self.held
        if held is not None:
            held.append((frame, event))
            if len(held) > self.max_held:
                self._slow_consumer()
            return
        transport = self.transport
        assert transport is not None
        self.write_bounded(transport, frame)

    def send(self, frame: bytes) -> None:
        """Queue a frame that is not an event (keep-alive, reset, error)."""
        self.push(frame, None)

    def _frame(self, frame: bytes, event: Event | None) -> bytes:
        """A held frame as it goes out (a multi-channel stream adds its cursor)."""
        return frame

    # -- the lifecycle ---------------------------------------------------------------------

    def start(self, transport: asyncio.Transport, greeting: bytes) -> None:
        """Write ``greeting`` and everything held, then write pushes as they come."""
        held = self.held or []
        self.held = None
        self.transport = transport
        if self.closed:
            return
        transport.write(b"".join([greeting, *(self._frame(f, e) for f, e in held)]))
        claims = self.claims
        if claims is not None and claims.exp is not None:
            delay = max(0.0, claims.exp - time.time())
            self._expiry = asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        self.disconnect("token_expired", reconnect=True)

    def _slow_consumer(self) -> None:
        self.gateway.metrics.slow_consumers += 1
        self.disconnect("slow_consumer", reconnect=True)

    def disconnect(self, reason: str, *, reconnect: bool, code: int | None = None) -> None:
        """Tell the client why (in the stream's own shape), close, and stop pushing to it.

        ``code`` is accepted for symmetry with the WebSocket and unused: an event stream
        has no close code.
        """
        if self.closed:
            return
        self._close(self.dialect.disconnect(reason, reconnect))

    def fail(self, exc: CroupierError) -> None:
        """Send the error event, then close."""
        if not self.closed:
            self._close(self.dialect.error(exc))

    def _close(self, last: bytes) -> None:
        self.closed = True
        self.held = None
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(last)
            transport.close()
            asyncio.get_running_loop().call_later(_CLOSE_GRACE, transport.abort)
        self.done.set()

    def lost(self) -> None:
        """The client closed the connection."""
        self.closed = True
        self.held = None
        self.done.set()

    async def keep_alive(self) -> None:
        """Send the dialect's keep-alive every ``sse_keepalive`` seconds until the end."""
        interval = self.gateway.settings.limits.sse_keepalive
        while not self.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self.done.wait()
            transport = self.transport
            if transport is not None and transport.is_closing():
                self.lost()  # closed before the watch was in place
            if not self.closed:
                self.send(self.dialect.keepalive())

    def member(self) -> dict[str, Any]:
        claims = self.claims
        if claims is None:
            return {"id": None}
        info: dict[str, Any] = {"id": claims.sub}
        if claims.name:
            info["name"] = claims.name
        return info

    async def cleanup(self) -> None:
        self.closed = True
        self.held = None
        if self._expiry is not None:
            self._expiry.cancel()
        gateway = self.gateway
        gateway.connections.discard(self)
        member = self.member()
        for channel, rules in list(self.channels.items()):
            gateway.hub.unsubscribe(self, channel)
            await gateway.leave(channel, self.client, member, rules)
        self.channels.clear()


class MultiSseConnection(SseConnection):
    """A stream of several channels: each stored event's ``id`` is the stream's cursor.

    The event bytes are the hub's shared data-only frame; only the ``id:`` line in front of
    it is this client's.
    """

    __slots__ = ("cursor",)

    def __init__(
        self, gateway: Gateway, dialect: Dialect, claims: Claims | None, channels: Sequence[str]
    ) -> None:
        super().__init__(gateway, dialect, claims)
        self.cursor = Cursor(channels, [None] * len(channels))

    def push(self, frame: bytes, event: Event | None = None) -> None:
        if event is not None and event.offset is not None and self.held is None:
            if self.closed:
                return
            frame = self.cursor.advance(event.channel, event.offset, event.epoch) + frame
        SseConnection.push(self, frame, event)

    def _frame(self, frame: bytes, event: Event | None) -> bytes:
        if event is None or event.offset is None:
            return frame
        return self.cursor.advance(event.channel, event.offset, event.epoch) + frame


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


async def since_offset(gateway: Gateway, channel: str, value: str) -> Position | None:
    """A plain-offset id as a position in the channel's current epoch (``None``: unusable).

    A plain offset carries no epoch; it is taken to be of the current one.
    """
    offset = parse_offset(value)
    if offset is None:
        return None
    top = await gateway.log.position(channel)
    return Position(offset, top.epoch)


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
    channels = [w.channel for w in wants]
    conn: SseConnection
    if len(wants) > 1:
        conn = MultiSseConnection(gateway, multi_dialect or dialect, claims, channels)
    else:
        conn = SseConnection(gateway, dialect, claims)
    protocol = request.protocol
    if protocol is not None:
        # From here the connection carries only this stream; the watch hears it close.
        protocol.set_parser(cast(Any, _Watch(conn)))
    gateway.connections.add(conn)
    gateway.metrics.connections_total += 1
    starts: list[Position | None] = [None] * len(wants)
    try:
        failure = refused
        if failure is None:
            failure = await _subscribe_all(conn, wants, starts)
        if conn.closed and failure is None:
            return _unavailable()
        stored = any(w.rules.stored for w in wants)
        start: str | None = None
        if stored and failure is None:
            if isinstance(conn, MultiSseConnection):
                conn.cursor = Cursor(channels, starts)
                start = conn.cursor.value()
            elif starts[0] is not None:
                start = str(starts[0].offset)
        response = SseResponse(headers=_headers(request, start))
        response.force_close()
        await response.prepare(request)
        transport = request.transport
        if transport is None:
            return response
        limits = gateway.settings.limits
        conn.start(transport, dialect.greeting(start, limits.sse_retry_ms))
        if failure is not None:
            conn.fail(failure)
        await conn.keep_alive()
        return response
    finally:
        await conn.cleanup()


async def _subscribe_all(
    conn: SseConnection, wants: Sequence[Want], starts: list[Position | None]
) -> CroupierError | None:
    gateway = conn.gateway
    hub = gateway.hub
    member = conn.member()
    for i, want in enumerate(wants):
        if conn.closed:
            return None
        channel, rules = want.channel, want.rules

        def announce(result: SubscribeResult, i: int = i, want: Want = want) -> None:
            if not want.rules.stored:
                return
            starts[i] = want.since if result.recovered else result.position
            if (want.since is not None or want.reset) and not result.recovered:
                conn.send(conn.dialect.reset(want.channel))

        conn.channels[channel] = rules
        try:
            await gateway.join(channel, conn.client, member, rules)
        except Exception:
            log.exception("presence join failed for %s", channel)
        try:
            await hub.subscribe(
                conn, channel, since=want.since, stored=rules.stored, announce=announce
            )
        except CroupierError as exc:
            return exc
    return None


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


def _error(exc: CroupierError) -> bytes:
    return data_frame(control("error", code=exc.code, message=exc.message))


def _disconnect(reason: str, reconnect: bool) -> bytes:
    return data_frame(control("disconnect", code=reason, reconnect=reconnect))


def encode_sse(event: Event) -> bytes:
    """The ``sse`` wire: ``id: <offset>`` (stored events) and the event as JSON."""
    return data_frame(encode_event(event), event.offset)


def encode_sse_data(event: Event) -> bytes:
    """The ``sse.data`` wire: the event as JSON alone; each client adds its own cursor."""
    return b"data: " + encode_event(event) + b"\n\n"


NATIVE = Dialect("sse", _connected, _keepalive, _reset, _error, _disconnect)
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
        try:
            wants = await _resume(gateway, wants, resume)
        except CroupierError as exc:
            refused = exc
    return await open_stream(
        request, gateway, NATIVE, wants, claims, refused=refused, multi_dialect=NATIVE_MULTI
    )


async def _resume(gateway: Gateway, wants: list[Want], value: str) -> list[Want]:
    if len(wants) == 1:
        want = wants[0]
        if not want.rules.stored:
            return wants
        since = await since_offset(gateway, want.channel, value)
        return [replace(want, since=since, reset=since is None)]
    positions = decode_cursor(value, [w.channel for w in wants])
    out = []
    for i, want in enumerate(wants):
        if not want.rules.stored:
            out.append(want)
            continue
        since = positions[i] if positions is not None else None
        out.append(replace(want, since=since, reset=since is None))
    return out


def add_sse_routes(app: web.Application) -> None:
    """Serve ``GET /sse`` and teach the gateway's hub the SSE wire formats."""
    gateway: Gateway = app[GATEWAY]
    gateway.hub.add_wire(NATIVE.wire, encode_sse)
    gateway.hub.add_wire(NATIVE_MULTI.wire, encode_sse_data)
    app.router.add_get("/sse", sse_handler, allow_head=False)
