"""Where a player stands during play: the seam between tournaments and a ranking.

The tournament's own tables hold every score, so :class:`TablePositions` answers from them
with one counting query; the leaderboards service, when mounted, answers from its live
ranking of the board ``tournament:{id}`` instead (and pushes ``leaderboard.updated``). Both
order the same way: score descending, earlier achievement first, then player id.
"""

from __future__ import annotations

from typing import Protocol

from ...services.leaderboards import Leaderboards
from ...storage import Database
from . import store
from .store import Player

__all__ = ["LeaderboardPositions", "Positions", "TablePositions", "board_of"]


def board_of(tournament_id: str) -> str:
    return f"tournament:{tournament_id}"


class Positions(Protocol):
    async def update(self, player: Player) -> int:
        """Record ``player``'s score (and when they reached it); return their position."""
        ...

    async def position(self, player: Player) -> int:
        """``player``'s position now (1 = first)."""
        ...


class TablePositions:
    """Positions counted in the tournament's own table of players."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def update(self, player: Player) -> int:
        return await store.position(self.database, player)

    async def position(self, player: Player) -> int:
        return await store.position(self.database, player)


class LeaderboardPositions:
    """Positions from the leaderboards service's board ``tournament:{id}``.

    Submissions use the ``max`` mode: a player's tournament score never goes down (points
    are not negative, and entries add up or the best counts), so two updates that reach the
    board out of order still leave the newer score there.
    """

    def __init__(self, leaderboards: Leaderboards) -> None:
        self.leaderboards = leaderboards

    async def update(self, player: Player) -> int:
        standing = await self.leaderboards.submit(
            board_of(player.tournament_id),
            player.player_id,
            player.score,
            mode="max",
            at=player.reached_at,
            display_name=player.display_name,
        )
        return standing.rank

    async def position(self, player: Player) -> int:
        rank = await self.leaderboards.rank(board_of(player.tournament_id), player.player_id)
        return rank if rank is not None else await self.update(player)
