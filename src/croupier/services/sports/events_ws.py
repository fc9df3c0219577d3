"""``GET /ws/events``: the sports viewer's WebSocket.

Client → server (JSON text frames):

* first, ``{"id": <viewer id>, "eventId": <event id>}`` (``"type": "join"`` optional);
* ``{"type":"reaction","emoji":"🔥","comment":"…","id"?:n}`` (needs a player token, as every
  player publish does; the token's ``sub`` is then the viewer id);
* ``{"type":"ping"}``, ``{"type":"auth","token":…}`` as on ``/ws``.

Server → client: ``{"type":"joined","eventId","viewer","channel","viewers"}``, at once
``{"type":"snapshot","channel","ts","data":{"eventId","sport","seq","snapshot","position",
"event"}}``, then the events of
``match:{eventId}`` in the native protocol's shape (``score.updated``, ``sport.event.updated``,
``reactions.summary``, ``viewers.count``), errors as ``{"type":"error","code","message"}``.

The connection is a :class:`~croupier.transports.websocket.WsConnection` whose session
speaks this dialect: rate limits, the idle timeout (twice the ping interval), slow-consumer
handling and presence are the native ones. The join subscribes from the position of the
snapshot's update, so every later update arrives exactly once, in order.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import orjson
from aiohttp import web

from ...appkeys import GATEWAY
from ...config import Settings
from ...core.channels import Claims, resolve
from ...core.session import Action, Close, Session, error
from ...core.wire import MessageId, control
from ...errors import BadRequest, CroupierError, RateLimited
from ...gateway import Gateway
from ...hub import SubscribeResult
from ...transports.websocket import WsConnection, admit, max_message_bytes

if TYPE_CHECKING:
    from .service import Sports

__all__ = ["DoJoin", "EventsConnection", "EventsInfo", "EventsSession", "events_handler"]

_ID = re.compile(r"[A-Za-z0-9_.@=-]{1,64}")


class EventsInfo(msgspec.Struct):
    """The answer to a GET without a WebSocket upgrade: what to send once connected."""

    join: dict[str, str]
    reaction: dict[str, str]
    upgrade: str


@dataclass(frozen=True, slots=True)
class DoJoin:
    event_id: str
    viewer: str
    id: MessageId


class EventsSession(Session):
    """The native session rules behind the ``/ws/events`` dialect. No I/O.

    The first message must be the join; reactions become native publishes on the match
    channel, so they pass the same checks (token, size, per-connection rate).
    """

    def __init__(
        self,
        settings: Settings,
        verify: Callable[[str], Claims],
        claims: Claims | None,
        now: float,
    ) -> None:
        super().__init__(settings, verify, claims, now)
        self.event_id: str | None = None

    def receive(self, raw: bytes | str, now: float) -> list[Action | DoJoin]:  # type: ignore[override]
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            return list(super().receive(raw, now))  # the native errors: bad_json, bad_message
        kind = doc.get("type", "join" if "eventId" in doc else None)
        if kind == "join":
            return self._join(doc, now)
        if self.event_id is None and kind != "ping":
            return self._fail(BadRequest("join first: {id, eventId}", code="not_joined"), doc)
        if kind == "reaction":
            data = {k: doc[k] for k in ("emoji", "comment") if k in doc}
            native: dict[str, Any] = {
                "type": "publish",
                "channel": f"match:{self.event_id}",
                "event": "reaction",
                "data": data,
            }
            if "id" in doc:
                native["id"] = doc["id"]
            return list(super().receive(orjson.dumps(native), now))
        return list(super().receive(raw, now))

    def _fail(self, exc: CroupierError, doc: dict[str, Any]) -> list[Action | DoJoin]:
        """Answer ``exc``; past the abuse limit of errors in a row, close as ``/ws`` does."""
        self.errors_in_a_row += 1
        message_id = doc.get("id")
        if not isinstance(message_id, int | str) or isinstance(message_id, bool):
            message_id = None
        actions: list[Action | DoJoin] = [error(exc, message_id)]
        if self.errors_in_a_row >= self.limits.abuse_errors:
            actions.append(Close("abuse", "too many protocol errors in a row"))
        return actions

    def _join(self, doc: dict[str, Any], now: float) -> list[Action | DoJoin]:
        try:
            if not self._bucket.take(now):
                raise RateLimited("too many messages: slow down")
            if self.event_id is not None:
                raise BadRequest(
                    f"already joined {self.event_id}; one event per connection",
                    code="already_joined",
                )
            event_id = doc.get("eventId")
            if not isinstance(event_id, str) or not _ID.fullmatch(event_id):
                raise BadRequest("eventId must be an event id string", code="bad_message")
            viewer = doc.get("id")
            if isinstance(viewer, int) and not isinstance(viewer, bool):
                viewer = str(viewer)
            if self.claims is not None:
                viewer = self.claims.sub  # a token's player is who the viewer is
            elif not isinstance(viewer, str) or not _ID.fullmatch(viewer):
                raise BadRequest(
                    "id must be the viewer's id (1-64 of A-Z a-z 0-9 _ . @ = -)",
                    code="bad_message",
                )
        except CroupierError as exc:
            return self._fail(exc, doc)
        self.errors_in_a_row = 0
        self.event_id = event_id
        return [DoJoin(event_id, viewer, None)]


class EventsConnection(WsConnection):
    """One viewer on ``/ws/events``."""

    __slots__ = ("service", "viewer")

    def __init__(self, service: Sports, transport: Any, claims: Claims | None) -> None:
        super().__init__(service.gateway, transport, claims)
        self.service = service
        self.viewer: str | None = None
        settings = service.gateway.settings
        self.session = EventsSession(
            settings, service.gateway.auth.verify_token, claims, self.last_seen
        )

    def _member(self) -> dict[str, Any]:
        if self.viewer is None:
            return super()._member()
        return {"id": self.viewer}

    async def _apply(self, action: Any) -> None:
        if isinstance(action, DoJoin):
            await self._join(action)
        else:
            await super()._apply(action)

    async def _join(self, action: DoJoin) -> None:
        gateway = self.gateway
        session = self.session
        assert isinstance(session, EventsSession)
        try:
            event = await self.service.get(action.event_id)
            channel, rules = resolve(gateway.settings, event.channel)
        except CroupierError as exc:
            session.event_id = None
            self.send(error(exc).payload)
            return
        self.viewer = action.viewer
        session.channels[channel] = rules
        await gateway.join(channel, self.client, self._member(), rules)
        since, snapshot = await self.service.start_of(event)

        def announce(result: SubscribeResult) -> None:
            self.send(
                control(
                    "joined",
                    eventId=event.id,
                    viewer=action.viewer,
                    channel=channel,
                    recovered=result.recovered,
                    viewers=self.service.book.count(event.id),
                )
            )
            self.send(snapshot)

        try:
            await gateway.hub.subscribe(self, channel, since=since, stored=True, announce=announce)
        except CroupierError as exc:
            session.channels.pop(channel, None)
            session.event_id = None
            await gateway.leave(channel, self.client, self._member(), rules)
            self.send(error(exc).payload)


def events_handler(service: Sports) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        gateway: Gateway = request.app[GATEWAY]
        ws = web.WebSocketResponse(
            heartbeat=None,  # the sweep pings and enforces the idle timeout
            max_msg_size=max_message_bytes(gateway.settings.limits),
            compress=False,
            autoping=True,
        )
        if not ws.can_prepare(request).ok:
            info = EventsInfo(
                join={"id": "viewer-17", "eventId": "ipl-final"},
                reaction={"type": "reaction", "emoji": "🔥", "comment": "what a shot"},
                upgrade="websocket",
            )
            return web.Response(body=msgspec.json.encode(info), content_type="application/json")
        claims = admit(gateway, request)  # a refused origin or bad token: 401/403 JSON
        if not gateway.ready:
            raise web.HTTPServiceUnavailable()
        await ws.prepare(request)
        transport = request.transport
        if transport is None:
            return ws
        conn = EventsConnection(service, transport, claims)
        await conn.run(ws)
        if not ws.closed:
            await ws.close()
        return ws

    return handler
