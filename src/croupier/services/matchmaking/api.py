"""Matchmaking and brackets over HTTP, with their OpenAPI operations."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from aiohttp import web
from msgspec import Meta

from ...api.openapi import Operation
from ...api.toolkit import read_body, require_key, struct_response
from ...core.ids import wire_id
from ...core.matching import QueueRules, TicketStatus
from ...errors import BadRequest, NotFound, shown
from ..leaderboards import BOARD_PATTERN
from ..rooms.api import Game, RoomOptions
from .store import StoredTicket

if TYPE_CHECKING:
    from .service import Matchmaking

__all__ = [
    "OPERATIONS",
    "BracketBody",
    "BracketReply",
    "JoinReply",
    "MatchmakingBody",
    "PlayerRef",
    "QueueBody",
    "QueueReply",
    "ResultBody",
    "TicketReply",
    "routes",
]

ID_PATTERN = "^[A-Za-z0-9_.@=-]{1,64}$"
MODE_PATTERN = "^[A-Za-z0-9_.-]{1,64}$"
TOURNAMENT_PATTERN = "^[A-Za-z0-9_.-]{1,64}$"
Id = Annotated[str, Meta(pattern=ID_PATTERN)]
Mode = Annotated[str, Meta(pattern=MODE_PATTERN)]
Rating = Annotated[float, Meta(ge=-1e9, le=1e9)]
Props = Annotated[
    dict[Annotated[str, Meta(min_length=1, max_length=64)], Annotated[str, Meta(max_length=64)]],
    Meta(max_length=8),
]
_ID = re.compile(ID_PATTERN)
_MODE = re.compile(MODE_PATTERN)
_MM = "/api/v1/matchmaking"
_BR = "/api/v1/brackets"


class _Body(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    pass


class _Reply(msgspec.Struct, rename="camel", kw_only=True):
    pass


class MatchmakingBody(_Body):
    """Queue a player (or ask how their ticket stands: the same call again)."""

    username: Id
    mode: Mode = "default"
    brand: Id | None = None
    rating: Rating | None = None
    properties: Props = {}


class PlayerRef(_Reply):
    """A matched player: ``id`` is their player id (a number when it is all digits),
    ``username`` the same id as given when queueing."""

    id: int | str
    username: str


class JoinReply(_Reply, kw_only=True):
    """``{"status":"Waiting","message":…}`` or ``{"status":"Matched","players":[{id,
    username},…]}``, with Croupier's ticket fields beside them."""

    status: Literal["Waiting", "Matched"]
    message: str | None = None
    ticket_id: str
    mode: str
    position: int | None = None
    estimated_wait: float | None = None
    match_id: str | None = None
    room_id: str | None = None
    players: list[PlayerRef] | None = None


class TicketReply(_Reply):
    ticket_id: str
    mode: str
    player_id: str
    status: str
    rating: float | None
    properties: dict[str, str]
    waited: float
    position: int | None
    estimated_wait: float | None
    match_id: str | None
    room_id: str | None
    players: list[str]


class QueueBody(_Body):
    """A queue's rules; a ``maxWindow`` below ``window`` means the window never widens."""

    game: Game = "nim"
    group_size: Annotated[float, Meta(ge=2, le=8, multiple_of=1)] = 2
    window: Annotated[float, Meta(ge=0, le=1e9)] = 100.0
    widen_by: Annotated[float, Meta(ge=0, le=1e9)] = 50.0
    widen_every: Annotated[float, Meta(gt=0, le=86400)] = 5.0
    max_window: Annotated[float, Meta(ge=0, le=1e9)] = 1000.0
    timeout: Annotated[float, Meta(gt=0, le=86400)] = 120.0
    options: RoomOptions = msgspec.field(default_factory=RoomOptions)
    rating_board: Annotated[str, Meta(pattern=f"^{BOARD_PATTERN}$")] | None = None


class QueueReply(_Reply):
    mode: str
    game: str
    group_size: int
    window: float
    widen_by: float
    widen_every: float
    max_window: float
    timeout: float
    options: dict[str, Any]
    rating_board: str | None
    waiting: int


class PlayerSeed(_Body):
    player_id: Id
    rating: Rating | None = None


class BracketBody(_Body):
    players: Annotated[list[PlayerSeed], Meta(min_length=2, max_length=256)]
    id: Annotated[str, Meta(pattern=TOURNAMENT_PATTERN)] | None = None
    tournament_id: Annotated[str, Meta(pattern=TOURNAMENT_PATTERN)] | None = None
    random_seed: Annotated[float, Meta(ge=0, le=2**31 - 1, multiple_of=1)] | None = None


class ResultBody(_Body):
    match_id: Annotated[str, Meta(pattern="^r[0-9]{1,3}m[0-9]{1,4}$")]
    winner: Id


class BracketReply(_Reply):
    bracket_id: str
    channel: str
    version: int
    size: int
    seeds: list[str]
    rounds: list[list[dict[str, Any]]]
    champion: str | None


def _path(request: web.Request, name: str, pattern: re.Pattern[str]) -> str:
    value = request.match_info[name]
    if not pattern.fullmatch(value):
        raise NotFound(
            f"no such {name}: {shown(value, 64)} (ids are 1-64 of A-Z a-z 0-9 _ . @ = -)"
        )
    return value


def routes(service: Matchmaking) -> list[web.RouteDef]:
    async def ticket_view(t: StoredTicket) -> TicketReply:
        position = await service.position(t)
        waited = time.time() - t.ticket.queued_at
        return TicketReply(
            ticket_id=t.ticket.id,
            mode=t.mode,
            player_id=t.ticket.player,
            status=t.status.value,
            rating=t.ticket.rating,
            properties=dict(t.ticket.properties),
            waited=round(waited, 1),
            position=position,
            estimated_wait=service.estimate(t.mode, position, waited),
            match_id=t.match_id,
            room_id=t.room_id,
            players=t.players,
        )

    async def simple(request: web.Request) -> web.Response:
        require_key(request, "publish")
        body = await read_body(request, MatchmakingBody)
        t, position = await service.simple(
            body.username,
            body.mode,
            brand=body.brand,
            rating=body.rating,
            properties=body.properties,
        )
        if t.status is TicketStatus.MATCHED:
            reply = JoinReply(
                status="Matched",
                ticket_id=t.ticket.id,
                mode=t.mode,
                match_id=t.match_id,
                room_id=t.room_id,
                players=[PlayerRef(wire_id(p), p) for p in t.players],
            )
        else:
            reply = JoinReply(
                status="Waiting",
                message=f"waiting for a match in {t.mode}"
                + ("" if position is None else f", position {position} in the queue"),
                ticket_id=t.ticket.id,
                mode=t.mode,
                position=position,
                estimated_wait=service.estimate(t.mode, position, time.time() - t.ticket.queued_at),
            )
        return struct_response(reply)

    async def get_ticket(request: web.Request) -> web.Response:
        require_key(request, "read")
        return struct_response(
            await ticket_view(await service.ticket(_path(request, "ticketId", _ID)))
        )

    async def cancel_ticket(request: web.Request) -> web.Response:
        require_key(request, "publish")
        return struct_response(
            await ticket_view(await service.cancel(_path(request, "ticketId", _ID)))
        )

    async def queue_view(mode: str) -> QueueReply:
        q = await service.queue(mode)
        r = q.rules
        return QueueReply(
            mode=q.mode,
            game=q.game,
            group_size=r.group_size,
            window=r.window,
            widen_by=r.widen_by,
            widen_every=r.widen_every,
            max_window=r.max_window,
            timeout=r.timeout,
            options=q.options,
            rating_board=q.rating_board,
            waiting=await service.waiting_count(mode),
        )

    async def put_queue(request: web.Request) -> web.Response:
        require_key(request, "admin")
        mode = _path(request, "mode", _MODE)
        body = await read_body(request, QueueBody)
        try:
            rules = QueueRules(
                int(body.group_size),
                body.window,
                body.widen_by,
                body.widen_every,
                max(body.max_window, body.window),
                body.timeout,
            )
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        await service.configure(
            mode, rules, body.game, body.options.as_dict(), rating_board=body.rating_board
        )
        return struct_response(await queue_view(mode))

    async def get_queue(request: web.Request) -> web.Response:
        require_key(request, "read")
        return struct_response(await queue_view(_path(request, "mode", _MODE)))

    async def create_bracket(request: web.Request) -> web.Response:
        require_key(request, "publish")
        body = await read_body(request, BracketBody)
        doc = await service.brackets.create(
            body.id,
            body.tournament_id,
            [(p.player_id, p.rating) for p in body.players],
            None if body.random_seed is None else int(body.random_seed),
        )
        return struct_response(msgspec.convert(doc, BracketReply))

    async def get_bracket(request: web.Request) -> web.Response:
        require_key(request, "read")
        doc = await service.brackets.get(_path(request, "bracketId", _ID))
        return struct_response(msgspec.convert(doc, BracketReply))

    async def report(request: web.Request) -> web.Response:
        require_key(request, "publish")
        bid = _path(request, "bracketId", _ID)
        body = await read_body(request, ResultBody)
        doc = await service.brackets.report(bid, body.match_id, body.winner)
        return struct_response(msgspec.convert(doc, BracketReply))

    return [
        web.post(_MM, simple),
        web.get(_MM + "/tickets/{ticketId}", get_ticket),
        web.delete(_MM + "/tickets/{ticketId}", cancel_ticket),
        web.put(_MM + "/queues/{mode}", put_queue),
        web.get(_MM + "/queues/{mode}", get_queue),
        web.post(_BR, create_bracket),
        web.get(_BR + "/{bracketId}", get_bracket),
        web.post(_BR + "/{bracketId}/results", report),
    ]


# -- the OpenAPI operations ------------------------------------------------------------------


def _param(name: str, pattern: str, example: str, text: str) -> tuple[str, str, dict[str, Any]]:
    return (
        name,
        "path",
        {"description": text, "schema": {"type": "string", "pattern": pattern}, "example": example},
    )


_TID = _param("ticketId", ID_PATTERN, "t-9f2c1a7be04d3c11", "The ticket's id.")
_MODE_P = _param("mode", MODE_PATTERN, "ranked-eu", "The queue's game mode.")
_BID = _param("bracketId", ID_PATTERN, "b-cup-7", "The bracket's id.")
_TICKET = {
    "ticketId": "t-9f2c1a7be04d3c11",
    "mode": "default",
    "playerId": "p1",
    "status": "waiting",
    "rating": 1500.0,
    "properties": {"region": "eu"},
    "waited": 4.2,
    "position": 3,
    "estimatedWait": 6.5,
    "matchId": None,
    "roomId": None,
    "players": [],
}
_QUEUE = {
    "mode": "ranked-eu",
    "game": "nim",
    "groupSize": 2,
    "window": 100.0,
    "widenBy": 50.0,
    "widenEvery": 5.0,
    "maxWindow": 1000.0,
    "timeout": 120.0,
    "options": {"rounds": 3},
    "ratingBoard": "nim-elo",
    "waiting": 12,
}
_BRACKET = {
    "bracketId": "b-cup-7",
    "channel": "tournament:cup-7",
    "version": 1,
    "size": 4,
    "seeds": ["ann", "bob", "cid"],
    "rounds": [
        [
            {
                "matchId": "r1m0",
                "round": 1,
                "index": 0,
                "players": ["ann", None],
                "winner": "ann",
                "bye": True,
            },
            {
                "matchId": "r1m1",
                "round": 1,
                "index": 1,
                "players": ["bob", "cid"],
                "winner": None,
                "bye": False,
            },
        ],
        [
            {
                "matchId": "r2m0",
                "round": 2,
                "index": 0,
                "players": ["ann", None],
                "winner": None,
                "bye": False,
            },
        ],
    ],
    "champion": None,
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        _MM,
        "matchmaking_join",
        "Queue a player, or ask again: Waiting (position, estimated wait) or Matched",
        "matchmaking",
        scope="publish",
        body=MatchmakingBody,
        body_example={"username": "p1", "rating": 1500, "properties": {"region": "eu"}},
        reply=JoinReply,
        reply_example={
            "status": "Matched",
            "message": None,
            "ticketId": "t-9f2c1a7be04d3c11",
            "mode": "default",
            "position": None,
            "estimatedWait": None,
            "matchId": "m-3f1a",
            "roomId": "m-3f1a",
            "players": [{"id": "p1", "username": "p1"}, {"id": 12345, "username": "12345"}],
        },
        errors=(400, 401, 403, 404, 413, 503),
    ),
    Operation(
        "get",
        _MM + "/tickets/{ticketId}",
        "get_ticket",
        "A ticket and its queue position",
        "matchmaking",
        scope="read",
        params=(_TID,),
        reply=TicketReply,
        reply_example=_TICKET,
        errors=(401, 403, 404, 503),
    ),
    Operation(
        "delete",
        _MM + "/tickets/{ticketId}",
        "cancel_ticket",
        "Cancel a waiting ticket",
        "matchmaking",
        scope="publish",
        params=(_TID,),
        reply=TicketReply,
        reply_example={**_TICKET, "status": "cancelled", "position": None, "estimatedWait": None},
        errors=(401, 403, 404, 409, 503),
    ),
    Operation(
        "put",
        _MM + "/queues/{mode}",
        "put_queue",
        "Create or change a queue: group size, rating window and its widening, timeout, game",
        "matchmaking",
        scope="admin",
        params=(_MODE_P,),
        body=QueueBody,
        body_example={
            "game": "nim",
            "groupSize": 2,
            "window": 100,
            "widenBy": 50,
            "widenEvery": 5,
            "maxWindow": 1000,
            "timeout": 120,
            "options": {"rounds": 3},
            "ratingBoard": "nim-elo",
        },
        reply=QueueReply,
        reply_example=_QUEUE,
        errors=(400, 401, 403, 404, 413, 503),
    ),
    Operation(
        "get",
        _MM + "/queues/{mode}",
        "get_queue",
        "A queue's rules and how many wait",
        "matchmaking",
        scope="read",
        params=(_MODE_P,),
        reply=QueueReply,
        reply_example=_QUEUE,
        errors=(401, 403, 404, 503),
    ),
    Operation(
        "post",
        _BR,
        "create_bracket",
        "Seed a single-elimination bracket (by rating, or by randomSeed); byes to top seeds",
        "brackets",
        scope="publish",
        body=BracketBody,
        body_example={
            "id": "b-cup-7",
            "tournamentId": "cup-7",
            "players": [
                {"playerId": "ann", "rating": 1900},
                {"playerId": "bob", "rating": 1700},
                {"playerId": "cid", "rating": 1500},
            ],
        },
        reply=BracketReply,
        reply_example=_BRACKET,
        errors=(400, 401, 403, 409, 413, 503),
    ),
    Operation(
        "get",
        _BR + "/{bracketId}",
        "get_bracket",
        "A bracket",
        "brackets",
        scope="read",
        params=(_BID,),
        reply=BracketReply,
        reply_example=_BRACKET,
        errors=(401, 403, 404, 503),
    ),
    Operation(
        "post",
        _BR + "/{bracketId}/results",
        "report_bracket_result",
        "Report a match's winner (they advance; bracket.updated)",
        "brackets",
        scope="publish",
        params=(_BID,),
        body=ResultBody,
        body_example={"matchId": "r1m1", "winner": "bob"},
        reply=BracketReply,
        reply_example=_BRACKET,
        errors=(400, 401, 403, 404, 409, 413, 503),
    ),
)
