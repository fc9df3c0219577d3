"""The leaderboards' names, limits and shapes, without I/O."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ...core.ranking import Standing
from ...errors import BadRequest, shown

__all__ = [
    "BOARD_PATTERN",
    "CONTROL_CHANNEL",
    "KEY_DAYS",
    "MAX_BATCH",
    "MAX_KEY",
    "MAX_NAME",
    "MAX_SCORE",
    "PLAYER_PATTERN",
    "PUSHED_TOP",
    "PUSH_INTERVAL",
    "SYNC_BYTES",
    "SYNC_TYPE",
    "Watch",
    "check_board",
    "check_player",
    "iso",
    "number",
    "pushed_entry",
    "sync_channel",
]

BOARD_PATTERN = r"[A-Za-z0-9_.:-]{1,128}"
PLAYER_PATTERN = r"[A-Za-z0-9_.:@=-]{1,128}"
MAX_SCORE = 1e15  # scores (and what ``add`` makes of them) stay exact integers up to here
MAX_NAME = 128
MAX_KEY = 200
KEY_DAYS = 7  # a keyed submission repeated within this many days changes nothing
PUSH_INTERVAL = 1.0  # seconds between two leaderboard.updated pushes of one board
PUSHED_TOP = 10
MAX_BATCH = 500  # rows per upsert: 6 parameters each stays under SQLite's 32,766
SYNC_BYTES = 6000  # an internal message stays under PostgreSQL NOTIFY's 8,000-byte cap
SYNC_TYPE = "leaderboard.sync"
# Internal channels are not in any configured namespace, so clients cannot subscribe to
# them; they go straight to the broker, never through the log.
SYNC_PREFIX = "croupier-leaderboards:"
CONTROL_CHANNEL = "croupier-leaderboards:control"

_BOARD = re.compile(BOARD_PATTERN)
_PLAYER = re.compile(PLAYER_PATTERN)


def check_board(board: object) -> str:
    """``board`` if it is a well-formed board name.

    Raises:
        BadRequest: it is not (``bad_board``).
    """
    if not isinstance(board, str) or not _BOARD.fullmatch(board):
        raise BadRequest(
            f"invalid board name {shown((board), 80)}: use 1-128 characters from "
            "A-Z a-z 0-9 _ . : -",
            code="bad_board",
        )
    return board


def check_player(player: object) -> str:
    """``player`` if it is a well-formed player id.

    Raises:
        BadRequest: it is not (``bad_player``).
    """
    if not isinstance(player, str) or not _PLAYER.fullmatch(player):
        raise BadRequest(
            f"invalid player id {shown((player), 80)}: use 1-128 characters from "
            "A-Z a-z 0-9 _ . : @ = -",
            code="bad_player",
        )
    return player


def sync_channel(board: str) -> str:
    """The internal broker channel of ``board``'s sync messages."""
    # Board names may hold what channel names may not (a trailing ':', '::'): hash them.
    return SYNC_PREFIX + hashlib.blake2b(board.encode(), digest_size=12).hexdigest()


def iso(seconds: float) -> str:
    """``seconds`` since the epoch as ISO 8601 UTC with milliseconds (``…Z``)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def pushed_entry(s: Standing) -> dict[str, Any]:
    """One place of a ``leaderboard.updated``, in the casino UI's field names."""
    return {
        "position": s.rank,
        "playerId": s.player,
        "displayName": s.display_name,
        "score": number(s.score),
    }


def number(score: float) -> float | int:
    """``score`` as JSON should show it: whole numbers without a fraction."""
    return int(score) if score.is_integer() else score


@dataclass(frozen=True, slots=True)
class Watch:
    """Where a board's ``leaderboard.updated`` goes, and the tournament id it carries."""

    channel: str
    tournament_id: Any
    ephemeral: bool = True
