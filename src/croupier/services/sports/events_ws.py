"""``GET /ws/events``: the sports viewer's WebSocket, a codec on the connection core.

Client → server (JSON text frames):

* first, ``{"id": <viewer id>, "eventId": <event id>}`` (``"type": "join"`` optional); a
  viewer coming back adds ``"since": {"offset", "epoch"}`` (the last update it saw; without
  ``epoch``, the channel's current one) and gets the updates it missed, in order, instead
  of a snapshot (a snapshot after all when history no longer covers the gap);
* ``{"type":"reaction","emoji":"🔥","comment":"…","id"?:n}`` or, as the seed's client sends
  it, ``{"id": <viewer id>, "emoji", "comment"}`` (needs a player token, as every player
  publish does; the token's ``sub`` is then the viewer id, and the seed's ``id`` must be it);
* ``{"type":"ping"}``, ``{"type":"auth","token":…}`` and the rest of the native protocol.

Server → client: ``{"type":"joined","eventId","viewer","channel","recovered","viewers"}``,
at once ``{"type":"snapshot","channel","ts","data":{"eventId","sport","seq","snapshot",
"position","event"}}``, then the events of ``match:{eventId}`` in the native protocol's
shape (``score.updated``, ``sport.event.updated``, ``reactions.summary``,
``viewers.count``), errors as ``{"type":"error","code","message"}``.

Rate limits, the idle timeout (twice the ping interval), slow-consumer handling and
presence are the connection core's. The join subscribes from the position of the
snapshot's update, so every later update arrives exactly once, in order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import orjson
from aiohttp import web

from ...api.toolkit import struct_response
from ...config import Settings
from ...core import commands as c
from ...core.channels import Claims
from ...core.wire import control, decode_client, ws_frame
from ...hooks import Start
from ...transports.native import NativeCodec, native_command
from ...transports.websocket import Endpoint, InfoHandler, Upgrade, endpoint_handler

if TYPE_CHECKING:
    from .service import Sports

__all__ = ["EventsCodec", "EventsInfo", "events_endpoint", "events_handler"]

_ID = re.compile(r"[A-Za-z0-9_.@=-]{1,64}")


class EventsInfo(msgspec.Struct):
    """The answer to a GET without a WebSocket upgrade: what to send once connected."""

    join: dict[str, str]
    reaction: dict[str, str]
    upgrade: str


def _message_id(doc: dict[str, Any]) -> c.MessageId:
    value = doc.get("id")
    if isinstance(value, int | str) and not isinstance(value, bool):
        return value
    return None


class EventsCodec(NativeCodec):
    """The ``/ws/events`` dialect: one join per connection, reactions on its match."""

    name = "sports"

    def __init__(self, settings: Settings, service: Sports, claims: Claims | None) -> None:
        super().__init__(settings)
        self.service = service
        self.claims = claims
        self.event_id: str | None = None
        self.viewer: str | None = None
        self.start = self._start

    @property
    def channel(self) -> str | None:
        return None if self.event_id is None else f"match:{self.event_id}"

    async def _start(self, channel: str, claims: Claims | None) -> Start:
        assert self.event_id is not None
        event = await self.service.get(self.event_id)  # NotFound refuses the join
        return await self.service.start_of(event)

    def decode(self, message: bytes | str) -> Sequence[c.Command]:
        try:
            doc = orjson.loads(message)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            return super().decode(message)  # the native errors: bad_json, bad_message
        kind = doc.get("type")
        if kind is None:
            # The seed's client sends a join as {id, eventId} and a reaction as
            # {id, emoji, comment}, neither with a type.
            kind = "join" if "eventId" in doc else "reaction" if "emoji" in doc else None
        if kind == "join":
            return [self._join(doc)]
        if self.event_id is None and kind != "ping":
            return [c.Refuse("not_joined", "join first: {id, eventId}", _message_id(doc))]
        if kind == "reaction":
            data = {k: doc[k] for k in ("emoji", "comment") if k in doc}
            channel = self.channel
            assert channel is not None
            if "type" not in doc:
                # The seed's id is the viewer's own id, not a message id: it must be who
                # joined (the token's player when there is one).
                sender = doc.get("id")
                if isinstance(sender, int) and not isinstance(sender, bool):
                    sender = str(sender)
                if sender is not None and sender != self.viewer:
                    return [c.Refuse("not_your_viewer", "id must be your own viewer id")]
                return [c.Publish(channel, "reaction", orjson.dumps(data))]
            return [c.Publish(channel, "reaction", orjson.dumps(data), _message_id(doc))]
        return [native_command(decode_client(message))]

    def _join(self, doc: dict[str, Any]) -> c.Command:
        message_id = _message_id(doc)
        if self.event_id is not None:
            return c.Refuse(
                "already_joined",
                f"already joined {self.event_id}; one event per connection",
                message_id,
            )
        event_id = doc.get("eventId")
        if not isinstance(event_id, str) or not _ID.fullmatch(event_id):
            return c.Refuse("bad_message", "eventId must be an event id string", message_id)
        viewer = doc.get("id")
        if isinstance(viewer, int) and not isinstance(viewer, bool):
            viewer = str(viewer)
        if self.claims is not None:
            viewer = self.claims.sub  # a token's player is who the viewer is
        elif not isinstance(viewer, str) or not _ID.fullmatch(viewer):
            return c.Refuse(
                "bad_message",
                "id must be the viewer's id (1-64 of A-Z a-z 0-9 _ . @ = -)",
                message_id,
            )
        since = doc.get("since")
        resume: c.Since | None = None
        if since is not None:
            offset = since.get("offset") if isinstance(since, dict) else None
            epoch = since.get("epoch") if isinstance(since, dict) else None
            if (
                not isinstance(offset, int)
                or isinstance(offset, bool)
                or offset < 0
                or not (epoch is None or isinstance(epoch, str))
            ):
                return c.Refuse(
                    "bad_message",
                    "since must be {offset, epoch?}: the offset and epoch of the last update seen",
                    message_id,
                )
            resume = c.Since(offset, epoch)
        self.event_id = event_id
        self.viewer = viewer
        return c.Subscribe(f"match:{event_id}", None, resume)

    def encode(self, reply: c.Reply) -> bytes:
        if isinstance(reply, c.Subscribed) and reply.channel == self.channel:
            assert self.event_id is not None
            return ws_frame(
                control(
                    "joined",
                    eventId=self.event_id,
                    viewer=self.viewer,
                    channel=reply.channel,
                    recovered=reply.recovered,
                    viewers=self.service.book.count(self.event_id),
                )
            )
        if isinstance(reply, c.Refused) and reply.channel is not None:
            if reply.channel == self.channel:
                self.event_id = self.viewer = None  # the join failed: another may follow
            reply = c.Refused(reply.code, reply.message)
        return super().encode(reply)

    def member(self, claims: Claims | None) -> dict[str, Any] | None:
        if self.viewer is None:
            return super().member(claims)
        return {"id": self.viewer}


def events_endpoint(service: Sports) -> Endpoint:
    """The endpoint of ``/ws/events``, for ``service``'s sporting events."""

    def open_events(upgrade: Upgrade) -> EventsCodec:
        return EventsCodec(upgrade.gateway.settings, service, upgrade.claims)

    async def info(request: web.Request) -> web.StreamResponse:
        body = EventsInfo(
            join={"id": "viewer-17", "eventId": "ipl-final"},
            reaction={"type": "reaction", "emoji": "🔥", "comment": "what a shot"},
            upgrade="websocket",
        )
        return struct_response(body)

    return Endpoint("/ws/events", open_events, info=info, lean=False)


def events_handler(service: Sports) -> InfoHandler:
    """The aiohttp handler of ``/ws/events`` (see :func:`events_endpoint`)."""
    return endpoint_handler(events_endpoint(service))
