"""``GET /ws/room/{roomId}?token=…[&since=N]``: a player's WebSocket straight into a room.

The connection is subscribed to ``room:{roomId}`` from ``since`` (by default the room's
start), so a player who connects late or comes back rebuilds the state from the events
themselves, and to the player's own channel ``player:{brand}:{player}`` when the token's
brand is the one the player sits with. It speaks the native protocol (see the README).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec
import orjson
from aiohttp import web

from ...api.toolkit import error_response, struct_response
from ...appkeys import GATEWAY
from ...config import Settings
from ...core import commands as c
from ...errors import BadRequest, CroupierError, Forbidden, NotFound, Unauthorized, shown
from ...events import Event
from ...transports.native import NativeCodec
from ...transports.websocket import Endpoint, Upgrade, admit

if TYPE_CHECKING:
    from .engine import Room
    from .service import Rooms

__all__ = ["RoomCodec", "RoomSocketInfo", "room_endpoint"]

_ROOM = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_INTEGER = re.compile(r"[0-9]{1,19}")


class RoomSocketInfo(msgspec.Struct, rename="camel", kw_only=True):
    """The answer to a GET of ``/ws/room/{roomId}`` without a WebSocket upgrade."""

    room_id: str
    channel: str
    upgrade: str


class RoomCodec(NativeCodec):
    """The native protocol, opening with the room's subscriptions."""

    name = "room"

    def __init__(
        self, settings: Settings, room: Room, player: str, own: str | None, since: int
    ) -> None:
        super().__init__(settings)
        self.room = room
        self.player = player
        self.on_event = self._only_own
        self.own = own
        self.since = since

    def _only_own(self, frame: bytes, event: Event) -> bytes | None:
        """Another player's raw ``player.action`` (a move is shown by ``room.state``, and a
        refused one must not look like one) and another player's ``error`` are not shown."""
        kind = event.type
        if (kind == "player.action" or kind == "error") and event.channel == self.room.channel:
            doc = orjson.loads(event.payload)
            if not isinstance(doc, dict):
                return None
            if kind == "error":
                who = doc.get("playerId")
            else:
                sender = doc.get("from")
                who = sender.get("id") if isinstance(sender, dict) else None
            if who != self.player:
                return None
        return frame

    def decode(self, message: bytes | str) -> Sequence[c.Command]:
        """The native protocol, plus the seed's own ``player.action`` at the top level:
        ``{"type":"player.action","action","playerId","timestamp","data"}`` becomes a
        publish of ``player.action`` on the room (``playerId`` must be the token's)."""
        try:
            doc = orjson.loads(message)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict) or doc.get("type") != "player.action":
            return super().decode(message)
        claimed = doc.get("playerId")
        if claimed is not None and claimed != self.player:
            return [c.Refuse("not_your_player", "playerId must be your own player id")]
        data = {k: doc[k] for k in ("action", "data", "playerId", "timestamp") if k in doc}
        return [c.Publish(self.room.channel, "player.action", orjson.dumps(data))]

    def opening(self) -> Sequence[c.Command]:
        commands: list[c.Command] = [c.Subscribe(self.room.channel, "room", c.Since(self.since))]
        if self.own is not None:
            commands.append(c.Subscribe(self.own, "player"))
        return commands


def _since(raw: str | None) -> int:
    if raw is None:
        return 0
    if not _INTEGER.fullmatch(raw):
        raise BadRequest(f"since must be an offset (a whole number), not {shown(raw, 32)}")
    return int(raw)


async def _room_of(service: Rooms, upgrade: Upgrade) -> tuple[Room, str | None]:
    rid = upgrade.match_info["roomId"]
    if not _ROOM.fullmatch(rid):
        raise NotFound(f"no room {shown(rid, 64)}")
    claims = upgrade.claims
    if claims is None:
        raise Unauthorized("a player token is required (?token=…)")
    room, brands = await service.get(rid)
    if claims.sub not in room.players:
        raise Forbidden(f"{claims.sub} does not play in room {rid}")
    own = None
    if claims.brand and brands.get(claims.sub) == claims.brand:
        own = f"player:{claims.brand}:{claims.sub}"
    return room, own


def room_endpoint(service: Rooms) -> Endpoint:
    """The endpoint of ``/ws/room/{roomId}``, for ``service``'s rooms."""

    async def open_room(upgrade: Upgrade) -> RoomCodec:
        since = _since(upgrade.query.get("since"))
        room, own = await _room_of(service, upgrade)
        assert upgrade.claims is not None  # _room_of refuses an upgrade without a player
        return RoomCodec(upgrade.gateway.settings, room, upgrade.claims.sub, own, since)

    async def info(request: web.Request) -> web.StreamResponse:
        gateway = request.app[GATEWAY]
        try:
            upgrade = Upgrade(
                gateway, admit(gateway, request), request.match_info, request.query, {}
            )
            room, _ = await _room_of(service, upgrade)
        except CroupierError as exc:
            return error_response(exc)
        return struct_response(
            RoomSocketInfo(room_id=room.id, channel=room.channel, upgrade="websocket")
        )

    return Endpoint("/ws/room/{roomId}", open_room, info=info, lean=False)
