"""The rooms' HTTP routes, their OpenAPI operations, and ``GET /ws/room/{roomId}``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from aiohttp import web
from msgspec import Meta

from ...api.openapi import Operation
from ...api.toolkit import read_body, require_key, struct_response
from ...errors import NotFound, shown
from ...transports.websocket import endpoint_handler
from ..leaderboards import BOARD_PATTERN
from .engine import Room, standings
from .socket import RoomSocketInfo, room_endpoint

if TYPE_CHECKING:
    from .service import Rooms

__all__ = [
    "OPERATIONS",
    "CreateRoomBody",
    "RoomOptions",
    "RoomReply",
    "RoomSocketInfo",
    "SeatBody",
    "room_view",
    "routes",
]

ROOM_PATTERN = "^[A-Za-z0-9_.-]{1,64}$"
PLAYER_PATTERN = "^[A-Za-z0-9_.@=-]{1,64}$"
BRAND_PATTERN = "^[A-Za-z0-9_.@=-]{1,64}$"
_ROOM = re.compile(ROOM_PATTERN)
_PLAYER = re.compile(PLAYER_PATTERN)
RoomId = Annotated[str, Meta(pattern=ROOM_PATTERN)]
PlayerId = Annotated[str, Meta(pattern=PLAYER_PATTERN)]
Brand = Annotated[str, Meta(pattern=BRAND_PATTERN)]
_BASE = "/api/v1/rooms"
_R = _BASE + "/{roomId}"


class SeatBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    player_id: PlayerId
    brand: Brand | None = None


class RoomOptions(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """The room's options (``turnSeconds``, ``leaderboard``) and the game's (Nim's)."""

    turn_seconds: Annotated[float, Meta(ge=0.2, le=3600)] | None = None
    leaderboard: Annotated[str, Meta(pattern=f"^{BOARD_PATTERN}$")] | None = None
    pile: Annotated[float, Meta(ge=1, le=1000, multiple_of=1)] | None = None
    max_take: Annotated[float, Meta(ge=1, le=100, multiple_of=1)] | None = None
    rounds: Annotated[float, Meta(ge=1, le=99, multiple_of=1)] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The options given, by their JSON names (whole numbers as integers)."""
        doc: dict[str, Any] = msgspec.to_builtins(self)
        whole = {"pile", "maxTake", "rounds"}
        return {k: int(v) if k in whole else v for k, v in doc.items() if v is not None}


# The games this server plays (the schema lists them, so a client cannot name another).
Game = Literal["nim"]


class CreateRoomBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    game: Game = "nim"
    id: RoomId | None = None
    players: Annotated[list[SeatBody], Meta(max_length=8)] = []
    # JSON Schema counts 2.0 as an integer, so the server does too: whole-number floats.
    max_players: Annotated[float, Meta(ge=2, le=8, multiple_of=1)] | None = None
    options: RoomOptions = msgspec.field(default_factory=RoomOptions)
    start: bool = False


class RoomReply(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    game: str
    status: str
    channel: str
    round: int
    seq: int
    players: list[dict[str, Any]]
    options: dict[str, Any]
    state: dict[str, Any]
    leaderboard: list[dict[str, Any]]
    turn: dict[str, Any] | None


def room_view(service: Rooms, room: Room, brands: dict[str, str | None]) -> RoomReply:
    return RoomReply(
        id=room.id,
        game=room.game,
        status=room.status.value,
        channel=room.channel,
        round=room.round,
        seq=room.seq,
        players=[{"playerId": p, "brand": brands.get(p)} for p in room.players],
        options=dict(room.options),
        state=room.state_view(),
        leaderboard=standings(room) if room.totals else [],
        turn=service.turn_of(room),
    )


def _room_id(request: web.Request) -> str:
    value = request.match_info["roomId"]
    if not _ROOM.fullmatch(value):
        raise NotFound(f"no room {shown(value, 64)}")
    return value


def routes(service: Rooms) -> list[web.RouteDef]:
    async def view(rid: str) -> web.Response:
        room, brands = await service.get(rid)
        return struct_response(room_view(service, room, brands))

    async def create(request: web.Request) -> web.Response:
        require_key(request, "publish")
        body = await read_body(request, CreateRoomBody)
        room = await service.create(
            body.id,
            body.game,
            [(p.player_id, p.brand) for p in body.players],
            body.options.as_dict(),
            max_players=None if body.max_players is None else int(body.max_players),
            start=body.start,
        )
        return await view(room.id)

    async def get(request: web.Request) -> web.Response:
        require_key(request, "read")
        return await view(_room_id(request))

    async def join(request: web.Request) -> web.Response:
        require_key(request, "publish")
        rid = _room_id(request)
        body = await read_body(request, SeatBody)
        await service.join(rid, body.player_id, body.brand)
        return await view(rid)

    async def leave(request: web.Request) -> web.Response:
        require_key(request, "publish")
        rid = _room_id(request)
        player = request.match_info["playerId"]
        if not _PLAYER.fullmatch(player):
            raise NotFound(f"no player {shown(player, 64)}")
        await service.leave(rid, player)
        return await view(rid)

    async def start(request: web.Request) -> web.Response:
        require_key(request, "publish")
        rid = _room_id(request)
        await service.start(rid)
        return await view(rid)

    async def close(request: web.Request) -> web.Response:
        require_key(request, "publish")
        rid = _room_id(request)
        await service.close(rid)
        return await view(rid)

    return [
        web.post(_BASE, create),
        web.get(_R, get),
        web.post(_R + "/players", join),
        web.delete(_R + "/players/{playerId}", leave),
        web.post(_R + "/start", start),
        web.post(_R + "/close", close),
        web.get("/ws/room/{roomId}", endpoint_handler(room_endpoint(service))),
    ]


# -- the OpenAPI operations ------------------------------------------------------------------

_RID = (
    "roomId",
    "path",
    {
        "description": "The room's id.",
        "schema": {"type": "string", "pattern": ROOM_PATTERN},
        "example": "r-77",
    },
)
_PID = (
    "playerId",
    "path",
    {
        "description": "The player's id.",
        "schema": {"type": "string", "pattern": PLAYER_PATTERN},
        "example": "p1",
    },
)
_ROOM_EXAMPLE = {
    "id": "r-77",
    "game": "nim",
    "status": "playing",
    "channel": "room:r-77",
    "round": 1,
    "seq": 2,
    "players": [{"playerId": "p1", "brand": "1001"}, {"playerId": "p2", "brand": "1001"}],
    "options": {"pile": 7, "rounds": 3, "turnSeconds": 30},
    "state": {"pile": {"value": 4, "ts": "2026-11-22T09:30:00.000Z"}},
    "leaderboard": [
        {"playerId": "p1", "score": 0, "position": 1},
        {"playerId": "p2", "score": 0, "position": 2},
    ],
    "turn": {
        "roomId": "r-77",
        "round": 1,
        "playerId": "p1",
        "actions": ["take"],
        "deadline": "2026-11-22T09:30:30.000Z",
        "default": {"action": "take", "data": {"count": 1}},
    },
}
_WRITE = (400, 401, 403, 404, 409, 413, 503)
_ACT = (401, 403, 404, 409, 503)


def _op(method: str, path: str, oid: str, summary: str, **fields: Any) -> Operation:
    fields.setdefault("params", (_RID,))
    fields.setdefault("reply", RoomReply)
    fields.setdefault("reply_example", _ROOM_EXAMPLE)
    return Operation(method, path, oid, summary, "rooms", **fields)


OPERATIONS: tuple[Operation, ...] = (
    _op(
        "post",
        _BASE,
        "create_room",
        "Create a game room (open; start at once with start: true)",
        scope="publish",
        params=(),
        body=CreateRoomBody,
        body_example={
            "game": "nim",
            "players": [{"playerId": "p1", "brand": "1001"}, {"playerId": "p2", "brand": "1001"}],
            "options": {"pile": 7, "rounds": 3, "turnSeconds": 30},
            "start": True,
        },
        errors=_WRITE,
    ),
    _op(
        "get",
        _R,
        "get_room",
        "A room: status, state, leaderboard, whose turn",
        scope="read",
        errors=(401, 403, 404, 503),
    ),
    _op(
        "post",
        _R + "/players",
        "join_room",
        "Seat a player in an open room",
        scope="publish",
        body=SeatBody,
        body_example={"playerId": "p3", "brand": "1001"},
        errors=_WRITE,
    ),
    _op(
        "delete",
        _R + "/players/{playerId}",
        "leave_room",
        "A player leaves an open room",
        scope="publish",
        params=(_RID, _PID),
        errors=_ACT,
    ),
    _op(
        "post",
        _R + "/start",
        "start_room",
        "Start the game (open → playing)",
        scope="publish",
        errors=_ACT,
    ),
    _op("post", _R + "/close", "close_room", "Call the room off", scope="publish", errors=_ACT),
    Operation(
        "get",
        "/ws/room/{roomId}",
        "room_socket",
        "A player's WebSocket straight into room:{roomId} (token of a player of the room), "
        "replaying the room's events after `since` first; a plain GET describes it",
        "rooms",
        params=(
            _RID,
            (
                "since",
                "query",
                {
                    "description": "Replay the room's events after this offset (0: all).",
                    "schema": {"type": "integer", "minimum": 0, "maximum": 2**62, "default": 0},
                    "example": 0,
                },
            ),
            (
                "token",
                "query",
                {
                    "description": "The player's JWT.",
                    "schema": {"type": "string"},
                    "required": True,
                    "example": "eyJhbGciOiJIUzI1NiJ9…",
                },
            ),
        ),
        reply=RoomSocketInfo,
        reply_example={"roomId": "r-77", "channel": "room:r-77", "upgrade": "websocket"},
        errors=(400, 401, 403, 404),
    ),
)
