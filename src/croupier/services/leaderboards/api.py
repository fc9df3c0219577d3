"""The leaderboards' HTTP API: submit a score (``publish`` scope), read a board or a player's
place on it (``read`` scope)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from aiohttp import web

from ...api.openapi import Operation
from ...api.schemas import ChannelName
from ...api.toolkit import int_query, json_response, read_body, require_key
from ...core.ranking import Standing
from ...errors import NotFound, shown
from .rules import BOARD_PATTERN, MAX_NAME, MAX_SCORE, PLAYER_PATTERN, pushed_entry

if TYPE_CHECKING:
    from .service import Leaderboards

__all__ = [
    "OPERATIONS",
    "LeaderboardEntry",
    "LeaderboardPlayerReply",
    "LeaderboardReply",
    "LeaderboardScoreBody",
    "LeaderboardScoreReply",
    "LeaderboardWatchBody",
    "LeaderboardWatchReply",
    "routes",
]

MAX_LIMIT = 1000
MAX_AROUND = 100

PlayerId = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=128,
        pattern=f"^{PLAYER_PATTERN}$",
        description="The player's id.",
        examples=["p1"],
    ),
]


class LeaderboardScoreBody(msgspec.Struct, forbid_unknown_fields=True):
    """A score for one player. ``mode``: ``set`` replaces the score, ``add`` adds to it,
    ``max`` keeps the better of the two. ``achieved_at`` (seconds since the epoch) orders
    equal scores, earlier first; default: when the server receives it."""

    player: PlayerId
    score: Annotated[float, msgspec.Meta(ge=-MAX_SCORE, le=MAX_SCORE)]
    mode: Literal["set", "add", "max"] = "set"
    display_name: (
        Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME, examples=["Ann"])] | None
    ) = None
    achieved_at: Annotated[float, msgspec.Meta(ge=0, le=1e11)] | None = None


class LeaderboardWatchBody(msgspec.Struct, forbid_unknown_fields=True):
    """Push ``leaderboard.updated`` ``{tournamentId, leaderboard: [top 10], lastUpdated}`` on
    ``channel`` at most once a second while the board changes (replaces an earlier watch).
    ``ephemeral: false`` keeps each push in the channel's history."""

    channel: ChannelName
    tournament_id: Annotated[
        str | int, msgspec.Meta(description="Sent as `tournamentId`.", examples=[42])
    ]
    ephemeral: bool = True


class LeaderboardWatchReply(msgspec.Struct):
    """Whether the board is pushed now, and where."""

    board: str
    watching: bool
    channel: str | None = None


class LeaderboardEntry(msgspec.Struct):
    """One player's place: rank 1 is first; equal scores are ranked by who got there first.
    ``position``, ``playerId`` and ``displayName`` are the same values under the names the
    ``leaderboard.updated`` push uses."""

    position: int
    player_id: str = msgspec.field(name="playerId")
    display_name_: str | None = msgspec.field(name="displayName")
    score: float
    rank: int
    player: str
    achieved_at: float
    display_name: str | None


class LeaderboardScoreReply(msgspec.Struct):
    """The player's place once the score is stored."""

    board: str
    size: int
    entry: LeaderboardEntry


class LeaderboardReply(msgspec.Struct):
    """The first ``limit`` places of a board (none for a board without scores)."""

    board: str
    size: int
    entries: list[LeaderboardEntry]


class LeaderboardPlayerReply(msgspec.Struct):
    """A player's place and the ``around`` places either side of it."""

    board: str
    size: int
    entry: LeaderboardEntry
    around: list[LeaderboardEntry]


def _entry(s: Standing) -> dict[str, Any]:
    return {
        **pushed_entry(s),
        "rank": s.rank,
        "player": s.player,
        "achieved_at": s.achieved_at,
        "display_name": s.display_name,
    }


_BOARD_PARAM = (
    "board",
    "path",
    {
        "description": "The board's name, e.g. `tournament:42`.",
        "schema": {"type": "string", "pattern": f"^{BOARD_PATTERN}$"},
        "example": "tournament:42",
    },
)
_ENTRY_EXAMPLE = {
    "position": 1,
    "playerId": "p1",
    "displayName": "Ann",
    "rank": 1,
    "player": "p1",
    "score": 1200,
    "achieved_at": 1735732800.0,
    "display_name": "Ann",
}

OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "put",
        "/api/v1/leaderboards/{board}/watch",
        "leaderboard_watch",
        "Push a board's top 10 on a channel, at most once a second",
        "leaderboards",
        scope="publish",
        body=LeaderboardWatchBody,
        body_example={"channel": "tournament:42", "tournament_id": 42},
        reply=LeaderboardWatchReply,
        reply_example={"board": "tournament:42", "watching": True, "channel": "tournament:42"},
        errors=(400, 401, 403, 413, 503),
        params=(_BOARD_PARAM,),
    ),
    Operation(
        "delete",
        "/api/v1/leaderboards/{board}/watch",
        "leaderboard_unwatch",
        "Stop pushing a board",
        "leaderboards",
        scope="publish",
        reply=LeaderboardWatchReply,
        reply_example={"board": "tournament:42", "watching": False, "channel": None},
        errors=(400, 401, 403, 503),
        params=(_BOARD_PARAM,),
    ),
    Operation(
        "post",
        "/api/v1/leaderboards/{board}/scores",
        "leaderboard_submit",
        "Record a player's score on a board",
        "leaderboards",
        scope="publish",
        body=LeaderboardScoreBody,
        body_example={"player": "p1", "score": 1200, "mode": "set", "display_name": "Ann"},
        reply=LeaderboardScoreReply,
        reply_example={"board": "tournament:42", "size": 1, "entry": _ENTRY_EXAMPLE},
        errors=(400, 401, 403, 413, 503),
        params=(_BOARD_PARAM,),
    ),
    Operation(
        "get",
        "/api/v1/leaderboards/{board}",
        "leaderboard_top",
        "The top of a board",
        "leaderboards",
        scope="read",
        reply=LeaderboardReply,
        reply_example={"board": "tournament:42", "size": 1, "entries": [_ENTRY_EXAMPLE]},
        errors=(400, 401, 403, 503),
        params=(
            _BOARD_PARAM,
            (
                "limit",
                "query",
                {
                    "description": "At most this many places.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                    "example": 10,
                },
            ),
        ),
    ),
    Operation(
        "get",
        "/api/v1/leaderboards/{board}/players/{player}",
        "leaderboard_player",
        "A player's place on a board, with the places around it",
        "leaderboards",
        scope="read",
        reply=LeaderboardPlayerReply,
        reply_example={
            "board": "tournament:42",
            "size": 1,
            "entry": _ENTRY_EXAMPLE,
            "around": [_ENTRY_EXAMPLE],
        },
        errors=(400, 401, 403, 404, 503),
        params=(
            _BOARD_PARAM,
            (
                "player",
                "path",
                {
                    "description": "The player's id.",
                    "schema": {"type": "string", "pattern": f"^{PLAYER_PATTERN}$"},
                    "example": "p1",
                },
            ),
            (
                "around",
                "query",
                {
                    "description": "How many places above and below the player to include.",
                    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_AROUND},
                    "example": 2,
                },
            ),
        ),
    ),
)


def routes(service: Leaderboards) -> list[web.RouteDef]:
    """The routes of :data:`OPERATIONS`, answered by ``service``."""

    async def submit(request: web.Request) -> web.Response:
        require_key(request, "publish")
        board = request.match_info["board"]
        body = await read_body(request, LeaderboardScoreBody)
        standing = await service.submit(
            board,
            body.player,
            body.score,
            mode=body.mode,
            at=body.achieved_at,
            display_name=body.display_name,
        )
        size = await service.size(board)
        return json_response({"board": board, "size": size, "entry": _entry(standing)})

    async def top(request: web.Request) -> web.Response:
        require_key(request, "read")
        board = request.match_info["board"]
        limit = int_query(request, "limit", 10, 1, MAX_LIMIT)
        entries = await service.top(board, limit)
        size = await service.size(board)
        return json_response(
            {"board": board, "size": size, "entries": [_entry(s) for s in entries]}
        )

    async def player(request: web.Request) -> web.Response:
        require_key(request, "read")
        board = request.match_info["board"]
        player_id = request.match_info["player"]
        n = int_query(request, "around", 0, 0, MAX_AROUND)
        places = await service.around(board, player_id, n)
        mine = next((s for s in places if s.player == player_id), None)
        if mine is None:
            raise NotFound(f"player {shown(player_id, 128)} has no score on {shown(board, 128)}")
        size = await service.size(board)
        return json_response(
            {
                "board": board,
                "size": size,
                "entry": _entry(mine),
                "around": [_entry(s) for s in places],
            }
        )

    async def watch(request: web.Request) -> web.Response:
        require_key(request, "publish")
        board = request.match_info["board"]
        body = await read_body(request, LeaderboardWatchBody)
        await service.watch(board, body.channel, body.tournament_id, ephemeral=body.ephemeral)
        return json_response({"board": board, "watching": True, "channel": body.channel})

    async def unwatch(request: web.Request) -> web.Response:
        require_key(request, "publish")
        board = request.match_info["board"]
        await service.unwatch(board)
        return json_response({"board": board, "watching": False, "channel": None})

    return [
        web.put("/api/v1/leaderboards/{board}/watch", watch),
        web.delete("/api/v1/leaderboards/{board}/watch", unwatch),
        web.post("/api/v1/leaderboards/{board}/scores", submit),
        web.get("/api/v1/leaderboards/{board}", top),
        web.get("/api/v1/leaderboards/{board}/players/{player}", player),
    ]
