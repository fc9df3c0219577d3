"""The internal listener: ``GET /ws/tournaments/{id}`` for backend services.

A backend connects with its API key (``Authorization: Bearer``, scope ``read``) and sends
``{"type":"subscribe","events":["tournament.status","player.updates","game.events"]}``; it
then receives the tournament's events of those groups, in the native protocol's event shape
(``{"type","channel","offset","epoch","ts","data"}``). ``since`` (``{"offset","epoch"}``)
resumes after a reconnect, as on ``/ws``. ``{"type":"ping"}`` is answered with ``pong``.

The connection is a hub :class:`~croupier.hub.Sink` of the tournament's channel: the hub
hands it the frames every ``/ws`` subscriber gets, and it forwards those of the chosen groups
straight to the socket, never awaiting.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
import orjson
from aiohttp import WSMsgType, web

from ...api.toolkit import require_key
from ...appkeys import GATEWAY
from ...core.wire import control, ws_frame
from ...errors import BadRequest, CroupierError, NotFound
from ...events import Event, Position
from ...hub import SubscribeResult
from .rules import GROUPS, group_of
from .schemas import TOURNAMENT_PATTERN

if TYPE_CHECKING:
    from .service import Tournaments

__all__ = ["ALL_GROUPS", "Listener", "ListenerInfo", "listener_handler"]

log = logging.getLogger(__name__)

ALL_GROUPS = frozenset({*GROUPS, "game.events"})


class ListenerInfo(msgspec.Struct, rename="camel", kw_only=True):
    """The answer to a GET without a WebSocket upgrade."""

    tournament_id: str
    channel: str
    groups: list[str]
    upgrade: str


_OUTBOX_BYTES = 4 * 1024 * 1024


class Listener:
    """One backend's connection: which groups it wants, and the socket to write them to."""

    wire = "ws"

    def __init__(self, transport: Any, channel: str) -> None:
        self.transport = transport
        self.channel = channel
        self.groups: set[str] = set()
        self.subscribed = False
        self.closed = False

    @property
    def channels(self) -> dict[str, None]:
        return {self.channel: None} if self.subscribed else {}

    def push(self, frame: bytes, event: Event | None = None) -> None:
        if self.closed or (event is not None and group_of(event.type) not in self.groups):
            return
        if self.transport.is_closing():
            self.closed = True
            return
        if self.transport.get_write_buffer_size() > _OUTBOX_BYTES:
            self.disconnect("slow_consumer", reconnect=True)
            return
        self.transport.write(frame)

    def send(self, payload: bytes) -> None:
        self.push(ws_frame(payload))

    def disconnect(self, reason: str, *, reconnect: bool, code: int = 1001) -> None:
        if self.closed:
            return
        self.send(control("disconnect", code=reason, reconnect=reconnect))
        self.closed = True
        self.transport.close()

    def groups_of(self, message: dict[str, Any]) -> set[str]:
        events = message.get("events")
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            raise BadRequest("events must be a list of group names", code="bad_message")
        unknown = sorted(set(events) - ALL_GROUPS)
        if unknown:
            raise BadRequest(
                f"unknown event groups {unknown}; known: {sorted(ALL_GROUPS)}",
                code="unknown_group",
            )
        return set(events)


def _since(message: dict[str, Any]) -> Position | None:
    since = message.get("since")
    if since is None:
        return None
    if (
        not isinstance(since, dict)
        or not isinstance(since.get("offset"), int)
        or not isinstance(since.get("epoch"), str)
    ):
        raise BadRequest("since must be {offset, epoch}", code="bad_message")
    return Position(since["offset"], since["epoch"])


def listener_handler(
    service: Tournaments,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        require_key(request, "read")
        tid = request.match_info["tournamentId"]
        if not re.fullmatch(TOURNAMENT_PATTERN, tid):
            raise NotFound(f"no tournament {tid[:64]!r}")
        await service.get(tid)  # NotFound before any upgrade
        ws = web.WebSocketResponse(heartbeat=25.0, compress=False, max_msg_size=64 * 1024)
        if not ws.can_prepare(request).ok:
            # A plain GET: say what the endpoint is rather than refuse it.
            info = ListenerInfo(
                tournament_id=tid,
                channel=f"tournament:{tid}",
                groups=sorted(ALL_GROUPS),
                upgrade="websocket",
            )
            return web.Response(body=msgspec.json.encode(info), content_type="application/json")
        await ws.prepare(request)
        if request.transport is None:
            return ws
        gateway = request.app[GATEWAY]
        sink = Listener(request.transport, f"tournament:{tid}")
        gateway.connections.add(sink)
        try:
            await _serve(ws, sink, gateway)
        finally:
            gateway.connections.discard(sink)
            if sink.subscribed:
                gateway.hub.unsubscribe(sink, sink.channel)
            sink.closed = True
            if not ws.closed:
                await ws.close()
        return ws

    return handler


async def _serve(ws: web.WebSocketResponse, sink: Listener, gateway: Any) -> None:
    while not sink.closed:
        message = await ws.receive()
        if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return
        if message.type is WSMsgType.ERROR:
            return
        if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
            continue
        doc: Any = None
        try:
            try:
                doc = orjson.loads(message.data)
            except orjson.JSONDecodeError:
                raise BadRequest("messages are JSON objects", code="bad_json") from None
            if not isinstance(doc, dict):
                raise BadRequest("messages are JSON objects", code="bad_message")
            kind = doc.get("type")
            if kind == "ping":
                sink.send(control("pong", id=doc.get("id")))
            elif kind == "subscribe":
                sink.groups |= sink.groups_of(doc)
                since = _since(doc)
                if sink.subscribed:
                    sink.send(_subscribed(sink, doc, None))
                    continue
                sink.subscribed = True

                def announce(result: SubscribeResult, doc: dict[str, Any] = doc) -> None:
                    sink.send(_subscribed(sink, doc, result))

                try:
                    await gateway.hub.subscribe(
                        sink, sink.channel, since=since, stored=True, announce=announce
                    )
                except CroupierError:
                    sink.subscribed = False
                    raise
            elif kind == "unsubscribe":
                sink.groups -= sink.groups_of(doc)
                sink.send(control("unsubscribed", id=doc.get("id"), events=sorted(sink.groups)))
            else:
                raise BadRequest(
                    "expected a subscribe, unsubscribe or ping message", code="bad_message"
                )
        except CroupierError as exc:
            message_id = doc.get("id") if isinstance(doc, dict) else None
            sink.send(control("error", id=message_id, code=exc.code, message=exc.message))


def _subscribed(sink: Listener, doc: dict[str, Any], result: SubscribeResult | None) -> bytes:
    fields: dict[str, Any] = {
        "id": doc.get("id"),
        "channel": sink.channel,
        "events": sorted(sink.groups),
    }
    if result is not None:
        fields["recovered"] = result.recovered
        fields["position"] = None if result.position is None else result.position.as_dict()
    return control("subscribed", **fields)
