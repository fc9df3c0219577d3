"""The internal listener: ``GET /ws/tournaments/{id}`` for backend services.

A backend connects with its API key (``Authorization: Bearer``, scope ``read``) and sends
``{"type":"subscribe","events":["tournament.status","player.updates","game.events"]}``; it
then receives the tournament's events of those groups, in the native protocol's event shape
(``{"type","channel","offset","epoch","ts","data"}``). ``since`` (``{"offset","epoch"}``)
resumes after a reconnect, as on ``/ws``. ``{"type":"ping"}`` is answered with ``pong``;
``unsubscribe`` with ``events`` drops groups.

It is a codec on the connection core: the hub hands it the frames every ``/ws`` subscriber
gets, and it lets through those of the chosen groups. Outbox, slow-consumer policy and close
codes are the native ones. A backend need not send anything: it answers the server's
protocol pings, which keep it from the idle timeout. It is not a player: it never counts in
presence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import orjson
from aiohttp import web

from ...api.toolkit import error_response, require_key, struct_response
from ...config import NamespaceRules, Settings
from ...core import commands as c
from ...core.channels import Claims
from ...core.wire import control, ws_frame
from ...errors import CroupierError, NotFound, shown
from ...events import Event
from ...transports.native import NativeCodec
from ...transports.websocket import Endpoint, InfoHandler, Upgrade, endpoint_handler
from .rules import GROUPS, group_of
from .schemas import TOURNAMENT_PATTERN

if TYPE_CHECKING:
    from .service import Tournaments

__all__ = ["ALL_GROUPS", "ListenerCodec", "ListenerInfo", "listener_endpoint", "listener_handler"]

ALL_GROUPS = frozenset({*GROUPS, "game.events"})


class ListenerInfo(msgspec.Struct, rename="camel", kw_only=True):
    """The answer to a GET without a WebSocket upgrade."""

    tournament_id: str
    channel: str
    groups: list[str]
    upgrade: str


@dataclass(frozen=True, slots=True)
class GroupsChanged:
    """A reply of this protocol alone: the groups a listener now takes."""

    kind: str  # "subscribed" or "unsubscribed"
    id: c.MessageId


class ListenerCodec(NativeCodec):
    """One backend's listener: which groups it wants of one tournament's channel."""

    name = "tournament-listener"
    quiet_client = True
    hears_private = True  # a player's rebuy.request is for the backend

    def __init__(self, settings: Settings, channel: str) -> None:
        super().__init__(settings)
        self.channel = channel
        self.groups: set[str] = set()
        self.subscribed = False
        self.on_event = self._filter

    def _filter(self, frame: bytes, event: Event) -> bytes | None:
        return frame if group_of(event.type) in self.groups else None

    def authorize(self, rules: NamespaceRules, channel: str, claims: Claims | None) -> None:
        """The API key (checked at the upgrade) may read any tournament."""

    def member(self, claims: Claims | None) -> dict[str, Any] | None:
        return None

    def decode(self, message: bytes | str) -> Sequence[Any]:
        try:
            doc = orjson.loads(message)
        except orjson.JSONDecodeError:
            return [c.Refuse("bad_json", "messages are JSON objects")]
        if not isinstance(doc, dict):
            return [c.Refuse("bad_message", "messages are JSON objects")]
        message_id = doc.get("id")
        if not isinstance(message_id, int | str) or isinstance(message_id, bool):
            message_id = None
        kind = doc.get("type")
        if kind == "ping":
            return [c.Ping(message_id)]
        if kind not in ("subscribe", "unsubscribe"):
            return [
                c.Refuse(
                    "bad_message", "expected a subscribe, unsubscribe or ping message", message_id
                )
            ]
        events = doc.get("events")
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            return [c.Refuse("bad_message", "events must be a list of group names", message_id)]
        unknown = sorted(set(events) - ALL_GROUPS)
        if unknown:
            return [
                c.Refuse(
                    "unknown_group",
                    f"unknown event groups {unknown}; known: {sorted(ALL_GROUPS)}",
                    message_id,
                )
            ]
        if kind == "unsubscribe":
            self.groups -= set(events)
            return [GroupsChanged("unsubscribed", message_id)]
        since = doc.get("since")
        if since is not None and (
            not isinstance(since, dict)
            or not isinstance(since.get("offset"), int)
            or not isinstance(since.get("epoch"), str)
        ):
            return [c.Refuse("bad_message", "since must be {offset, epoch}", message_id)]
        self.groups |= set(events)
        if self.subscribed:
            return [GroupsChanged("subscribed", message_id)]
        self.subscribed = True
        resume = None if since is None else c.Since(since["offset"], since["epoch"])
        return [c.Subscribe(self.channel, message_id, resume)]

    def encode(self, reply: Any) -> bytes:
        if isinstance(reply, c.Connected):
            return b""  # a listener is not greeted
        if isinstance(reply, GroupsChanged):
            fields: dict[str, Any] = {"id": reply.id, "events": sorted(self.groups)}
            if reply.kind == "subscribed":
                fields["channel"] = self.channel
            return ws_frame(control(reply.kind, **fields))
        if isinstance(reply, c.Subscribed):
            return ws_frame(
                control(
                    "subscribed",
                    id=reply.id,
                    channel=self.channel,
                    events=sorted(self.groups),
                    recovered=reply.recovered,
                    position=None if reply.position is None else reply.position.as_dict(),
                )
            )
        if isinstance(reply, c.Refused) and reply.channel == self.channel:
            self.subscribed = False
        return super().encode(reply)


async def _tournament(service: Tournaments, request: web.Request, tid: str) -> str:
    require_key(request, "read")
    if not re.fullmatch(TOURNAMENT_PATTERN, tid):
        raise NotFound(f"no tournament {shown(tid, 64)}")
    await service.get(tid)  # NotFound before any upgrade
    return f"tournament:{tid}"


def listener_endpoint(service: Tournaments) -> Endpoint:
    """The endpoint of ``/ws/tournaments/{tournamentId}``."""

    async def open_listener(upgrade: Upgrade) -> ListenerCodec:
        assert upgrade.request is not None  # not a lean endpoint: aiohttp has the request
        tid = upgrade.match_info["tournamentId"]
        channel = await _tournament(service, upgrade.request, tid)
        return ListenerCodec(upgrade.gateway.settings, channel)

    async def info(request: web.Request) -> web.StreamResponse:
        tid = request.match_info["tournamentId"]
        try:
            channel = await _tournament(service, request, tid)
        except CroupierError as exc:
            return error_response(exc)
        return struct_response(
            ListenerInfo(
                tournament_id=tid, channel=channel, groups=sorted(ALL_GROUPS), upgrade="websocket"
            )
        )

    return Endpoint(
        "/ws/tournaments/{tournamentId}", open_listener, info=info, player_token=False, lean=False
    )


def listener_handler(service: Tournaments) -> InfoHandler:
    """The aiohttp handler of the listener (see :func:`listener_endpoint`)."""
    return endpoint_handler(listener_endpoint(service))
