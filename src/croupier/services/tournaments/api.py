"""The tournaments' HTTP routes and their OpenAPI operations."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ...api.openapi import Operation
from ...api.toolkit import int_query, query, read_body, require_key, struct_response
from ...errors import BadRequest, NotFound, shown
from . import schemas as s
from .listener import ListenerInfo, listener_handler
from .rules import Action, Status

if TYPE_CHECKING:
    from .service import Tournaments

__all__ = ["OPERATIONS", "routes"]

_ID = re.compile(s.ID_PATTERN)
_TOURNAMENT_ID = re.compile(s.TOURNAMENT_PATTERN)
_BASE = "/api/v1/tournaments"
_T = _BASE + "/{tournamentId}"


def _path(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not (_TOURNAMENT_ID if name == "tournamentId" else _ID).fullmatch(value):
        raise NotFound(f"no such {name}: {shown(value, 64)}")
    return value


def routes(service: Tournaments) -> list[web.RouteDef]:
    Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

    def action(verb: Action) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            require_key(request, "publish")
            tid = _path(request, "tournamentId")
            t = await service.transition(tid, verb)
            if verb in (Action.COMPLETE, Action.CANCEL):
                return struct_response(await service._results(t))
            return struct_response(service.view(t))

        return handle

    async def create(request: web.Request) -> web.Response:
        require_key(request, "publish")
        return struct_response(await service.create(await read_body(request, s.CreateBody)))

    async def list_(request: web.Request) -> web.Response:
        require_key(request, "read")
        status = query(request, "status")
        if status is not None and status not in {x.value for x in Status}:
            raise BadRequest(f"status must be one of {', '.join(x.value for x in Status)}")
        return struct_response(
            await service.find(status, int_query(request, "limit", 100, 1, 1000))
        )

    async def get(request: web.Request) -> web.Response:
        require_key(request, "read")
        return struct_response(await service.get(_path(request, "tournamentId")))

    async def advance(request: web.Request) -> web.Response:
        require_key(request, "publish")
        return struct_response(await service.advance(_path(request, "tournamentId")))

    async def register(request: web.Request) -> web.Response:
        require_key(request, "publish")
        tid = _path(request, "tournamentId")
        return struct_response(
            await service.register(tid, await read_body(request, s.RegisterBody))
        )

    async def players(request: web.Request) -> web.Response:
        require_key(request, "read")
        tid = _path(request, "tournamentId")
        return struct_response(
            await service.players(tid, int_query(request, "limit", 100, 1, 1000))
        )

    async def player(request: web.Request) -> web.Response:
        require_key(request, "read")
        tid = _path(request, "tournamentId")
        return struct_response(await service.player(tid, _path(request, "playerId")))

    async def eliminate(request: web.Request) -> web.Response:
        require_key(request, "publish")
        tid = _path(request, "tournamentId")
        return struct_response(await service.eliminate(tid, _path(request, "playerId")))

    async def score(request: web.Request) -> web.Response:
        require_key(request, "publish")
        tid = _path(request, "tournamentId")
        return struct_response(await service.score(tid, await read_body(request, s.ScoreBody)))

    async def request_rebuy(request: web.Request) -> web.Response:
        require_key(request, "publish")
        tid = _path(request, "tournamentId")
        return struct_response(await service.rebuys.request(tid, _path(request, "playerId")))

    async def rebuy(request: web.Request) -> web.Response:
        require_key(request, "read")
        tid = _path(request, "tournamentId")
        return struct_response(await service.rebuys.status(tid, _path(request, "requestId")))

    async def confirm(request: web.Request) -> web.Response:
        require_key(request, "publish")
        tid = _path(request, "tournamentId")
        return struct_response(await service.rebuys.confirm(tid, _path(request, "requestId")))

    async def decline(request: web.Request) -> web.Response:
        require_key(request, "publish")
        tid = _path(request, "tournamentId")
        rid = _path(request, "requestId")
        body = await read_body(request, s.DeclineBody)
        return struct_response(await service.rebuys.decline(tid, rid, body.error))

    async def results(request: web.Request) -> web.Response:
        require_key(request, "read")
        return struct_response(await service.results(_path(request, "tournamentId")))

    return [
        web.post(_BASE, create),
        web.get(_BASE, list_),
        web.get(_T, get),
        web.post(_T + "/open", action(Action.OPEN)),
        web.post(_T + "/start", action(Action.START)),
        web.post(_T + "/complete", action(Action.COMPLETE)),
        web.post(_T + "/cancel", action(Action.CANCEL)),
        web.post(_T + "/rounds", advance),
        web.post(_T + "/players", register),
        web.get(_T + "/players", players),
        web.get(_T + "/players/{playerId}", player),
        web.post(_T + "/players/{playerId}/eliminate", eliminate),
        web.post(_T + "/players/{playerId}/rebuys", request_rebuy),
        web.post(_T + "/scores", score),
        web.get(_T + "/rebuys/{requestId}", rebuy),
        web.post(_T + "/rebuys/{requestId}/confirm", confirm),
        web.post(_T + "/rebuys/{requestId}/decline", decline),
        web.get(_T + "/results", results),
        web.get("/ws/tournaments/{tournamentId}", listener_handler(service)),
    ]


# -- the OpenAPI operations ------------------------------------------------------------------

_TS = "2025-01-15T20:02:15Z"
_ID_SCHEMA = {"type": "string", "pattern": s.ID_PATTERN, "minLength": 1, "maxLength": 64}


def _param(name: str, example: str, text: str) -> tuple[str, str, dict[str, Any]]:
    schema = (
        {**_ID_SCHEMA, "pattern": s.TOURNAMENT_PATTERN} if name == "tournamentId" else _ID_SCHEMA
    )
    return (name, "path", {"description": text, "schema": schema, "example": example})


_TID = _param("tournamentId", "12345", "The tournament's id.")
_PID = _param("playerId", "tp_player_456", "The player's id.")
_RID = _param("requestId", "9f2c1a7be04d3c11", "The rebuy request's id.")
_WRITE = (400, 401, 403, 404, 409, 413, 503)
_ACT = (401, 403, 404, 409, 503)
_READ = (400, 401, 403, 404, 503)

_TOURNAMENT = {
    "id": "12345",
    "name": "Friday Slots Cup",
    "status": "registering",
    "registrationOpensAt": None,
    "startsAt": "2025-01-15T20:00:00Z",
    "endsAt": "2025-01-15T21:15:00Z",
    "startedAt": None,
    "endedAt": None,
    "currentRound": 0,
    "totalRounds": 5,
    "roundSeconds": None,
    "playerCount": 87,
    "maxPlayers": 500,
    "minPlayers": 10,
    "entryFee": 10.0,
    "maxEntries": 3,
    "rebuyPrice": 10.0,
    "guaranteedPool": 500.0,
    "prizePool": 870.0,
    "prizes": [
        {"fromRank": 1, "toRank": 1, "percent": 50.0, "amount": None},
        {"fromRank": 2, "toRank": 3, "amount": 100.0, "percent": None},
    ],
    "scoring": {"rule": "multiplier", "minBet": 0.5, "counting": "best"},
    "ties": "split",
    "templateId": "1",
}
_PLAYER = {
    "tournamentId": "12345",
    "playerId": "tp_player_456",
    "brand": "1001",
    "displayName": "PlayerName",
    "status": "active",
    "score": 1250.0,
    "position": 15,
    "entryCount": 2,
    "remainingRebuys": 1,
    "duplicate": False,
}
_REBUY = {
    "tournamentId": "12345",
    "requestId": "9f2c1a7be04d3c11",
    "playerId": "tp_player_456",
    "status": "pending",
    "rebuyAmount": 10.0,
    "entryCount": 2,
    "maxEntries": 3,
    "remainingRebuys": 1,
    "error": None,
    "duplicate": False,
}
_RESULTS = {
    "tournamentId": "12345",
    "status": "completed",
    "prizePool": 870.0,
    "results": [
        {
            "playerId": "tp_player_456",
            "displayName": "PlayerName",
            "position": 1,
            "points": 1450.0,
            "prizeAmount": 435.0,
        }
    ],
    "refunds": [],
}


def _op(
    method: str,
    path: str,
    operation_id: str,
    summary: str,
    *,
    scope: str,
    params: tuple[tuple[str, str, dict[str, Any]], ...] = (_TID,),
    **fields: Any,
) -> Operation:
    return Operation(
        method, path, operation_id, summary, "tournaments", scope=scope, params=params, **fields
    )


def _lifecycle(verb: str, summary: str, *, results: bool = False) -> Operation:
    return _op(
        "post",
        f"{_T}/{verb}",
        f"{verb}_tournament",
        summary,
        scope="publish",
        reply=s.ResultsReply if results else s.TournamentReply,
        reply_example=_RESULTS if results else _TOURNAMENT,
        errors=_ACT,
    )


OPERATIONS: tuple[Operation, ...] = (
    _op(
        "post",
        _BASE,
        "create_tournament",
        "Create a tournament (status scheduled)",
        scope="publish",
        params=(),
        body=s.CreateBody,
        body_example={
            "name": "Friday Slots Cup",
            "startsAt": "2030-01-15T20:00:00Z",
            "rounds": 5,
            "maxPlayers": 500,
            "minPlayers": 10,
            "entryFee": 10.0,
            "maxEntries": 3,
            "guaranteedPool": 500.0,
            "prizes": [
                {"fromRank": 1, "toRank": 1, "percent": 50.0},
                {"fromRank": 2, "toRank": 3, "amount": 100.0},
            ],
            "scoring": {"rule": "multiplier", "minBet": 0.5, "counting": "best"},
            "ties": "split",
            "templateId": "1",
        },
        reply=s.TournamentReply,
        reply_example={**_TOURNAMENT, "status": "scheduled"},
        errors=_WRITE,
    ),
    _op(
        "get",
        _BASE,
        "list_tournaments",
        "Tournaments, newest first",
        scope="read",
        params=(
            (
                "status",
                "query",
                {
                    "description": "Only tournaments in this status.",
                    "schema": {"type": "string", "enum": [x.value for x in Status]},
                    "example": "running",
                },
            ),
        ),
        query=("limit",),
        reply=s.TournamentsReply,
        reply_example={"tournaments": [_TOURNAMENT]},
        errors=(400, 401, 403, 503),
    ),
    _op(
        "get",
        _T,
        "get_tournament",
        "One tournament",
        scope="read",
        reply=s.TournamentReply,
        reply_example=_TOURNAMENT,
        errors=_ACT,
    ),
    _lifecycle("open", "Open registration (scheduled → registering)"),
    _lifecycle("start", "Start round 1 (registering → running)"),
    _lifecycle("complete", "Complete and settle prizes once (running → completed)", results=True),
    _lifecycle("cancel", "Cancel and refund every payment", results=True),
    _op(
        "post",
        _T + "/rounds",
        "advance_round",
        "Start the next round",
        scope="publish",
        reply=s.TournamentReply,
        reply_example={**_TOURNAMENT, "status": "running", "currentRound": 3},
        errors=_ACT,
    ),
    _op(
        "post",
        _T + "/players",
        "register_player",
        "Register a player (idempotent per player)",
        scope="publish",
        body=s.RegisterBody,
        body_example={"playerId": "tp_player_456", "brand": "1001", "displayName": "PlayerName"},
        reply=s.PlayerReply,
        reply_example={**_PLAYER, "score": 0.0, "entryCount": 1},
        errors=_WRITE,
    ),
    _op(
        "get",
        _T + "/players",
        "list_tournament_players",
        "Players by position",
        scope="read",
        query=("limit",),
        reply=s.PlayersReply,
        reply_example={"tournamentId": "12345", "players": [_PLAYER]},
        errors=_READ,
    ),
    _op(
        "get",
        _T + "/players/{playerId}",
        "get_tournament_player",
        "One player's standing",
        scope="read",
        params=(_TID, _PID),
        reply=s.PlayerReply,
        reply_example=_PLAYER,
        errors=_ACT,
    ),
    _op(
        "post",
        _T + "/players/{playerId}/eliminate",
        "eliminate_player",
        "Eliminate a player (a rebuy brings them back)",
        scope="publish",
        params=(_TID, _PID),
        reply=s.PlayerReply,
        reply_example={**_PLAYER, "status": "eliminated"},
        errors=_ACT,
    ),
    _op(
        "post",
        _T + "/players/{playerId}/rebuys",
        "request_rebuy",
        "A player asks for a rebuy (rebuy.requested)",
        scope="publish",
        params=(_TID, _PID),
        reply=s.RebuyReply,
        reply_example=_REBUY,
        errors=_ACT,
    ),
    _op(
        "post",
        _T + "/scores",
        "submit_score",
        "Submit a score (idempotent by submissionId)",
        scope="publish",
        body=s.ScoreBody,
        body_example={
            "submissionId": "bet-7781",
            "playerId": "tp_player_456",
            "bet": 2.0,
            "win": 9.5,
        },
        reply=s.ScoreReply,
        reply_example={
            "tournamentId": "12345",
            "submissionId": "bet-7781",
            "playerId": "tp_player_456",
            "points": 4.75,
            "qualified": True,
            "score": 1250.0,
            "position": 15,
            "round": 3,
            "duplicate": False,
        },
        errors=_WRITE,
    ),
    _op(
        "get",
        _T + "/rebuys/{requestId}",
        "get_rebuy",
        "A rebuy request",
        scope="read",
        params=(_TID, _RID),
        reply=s.RebuyReply,
        reply_example=_REBUY,
        errors=_ACT,
    ),
    _op(
        "post",
        _T + "/rebuys/{requestId}/confirm",
        "confirm_rebuy",
        "The casino confirms a rebuy (rebuy.success; repeats are no-ops)",
        scope="publish",
        params=(_TID, _RID),
        reply=s.RebuyReply,
        reply_example={**_REBUY, "status": "confirmed", "entryCount": 3, "remainingRebuys": 0},
        errors=_ACT,
    ),
    _op(
        "post",
        _T + "/rebuys/{requestId}/decline",
        "decline_rebuy",
        "The casino declines a rebuy (rebuy.failed)",
        scope="publish",
        params=(_TID, _RID),
        body=s.DeclineBody,
        body_example={"error": "insufficient funds"},
        reply=s.RebuyReply,
        reply_example={**_REBUY, "status": "declined", "error": "insufficient funds"},
        errors=_WRITE,
    ),
    _op(
        "get",
        _T + "/results",
        "tournament_results",
        "Final positions and prizes, or the refunds of a cancelled tournament",
        scope="read",
        reply=s.ResultsReply,
        reply_example=_RESULTS,
        errors=_ACT,
    ),
    _op(
        "get",
        "/ws/tournaments/{tournamentId}",
        "tournament_listener",
        "Internal listener: a WebSocket of the tournament's events, by group "
        '(send {"type":"subscribe","events":["tournament.status","player.updates",'
        '"game.events"]}); a plain GET describes it',
        scope="read",
        reply=ListenerInfo,
        reply_example={
            "tournamentId": "12345",
            "channel": "tournament:12345",
            "groups": ["game.events", "player.updates", "tournament.status"],
            "upgrade": "websocket",
        },
        errors=(401, 403, 404),
    ),
)
