"""What the player-scoped services (notifications, balances) share: the player in the path,
who may act on it, timestamps in the casino's format, and opaque list cursors.

Routes live under ``/api/v1/players/{brand}/{player}/…``. A backend calls them with an API
key; a player calls the read and mark-read ones with their own token (``brand`` and ``sub``
must match the path).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ..api.toolkit import require_key
from ..appkeys import GATEWAY
from ..core.ids import wire_id
from ..errors import BadRequest, Forbidden, Unauthorized, shown
from ..transports.common import token_from_request

__all__ = [
    "ID_PATTERN",
    "LIMIT_PARAM",
    "PLAYER_PARAMS",
    "Player",
    "authorize",
    "casino_time",
    "check_id",
    "cursor_param",
    "now_ms",
    "parse_cursor",
    "player_from_path",
]

_ID = re.compile(r"[A-Za-z0-9_.@=-]{1,64}")
ID_PATTERN = "^[A-Za-z0-9_.@=-]{1,64}$"

PLAYER_PARAMS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "brand",
        "path",
        {
            "description": "The casino brand id.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": ID_PATTERN},
            "example": "1001",
        },
    ),
    (
        "player",
        "path",
        {
            "description": "The player id within the brand.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": ID_PATTERN},
            "example": "12345",
        },
    ),
)


@dataclass(frozen=True, slots=True)
class Player:
    """A player of a brand; their events go to the channel ``player:{brand}:{player}``."""

    brand: str
    player: str

    @property
    def channel(self) -> str:
        return f"player:{self.brand}:{self.player}"

    def ids(self) -> dict[str, int | str]:
        """``brand_id`` and ``player_id`` as player-facing answers carry them: numbers when
        they are all digits, as on the casino player stream."""
        return {"brand_id": wire_id(self.brand), "player_id": wire_id(self.player)}


def check_id(name: str, value: str) -> str:
    """Return ``value`` if it is a brand or player id.

    Raises:
        BadRequest: not 1-64 characters of ``[A-Za-z0-9_.@=-]``.
    """
    if not _ID.fullmatch(value):
        raise BadRequest(f"{name} must be 1-64 characters of A-Z a-z 0-9 _ . @ = -")
    return value


def player_from_path(request: web.Request) -> Player:
    """The ``{brand}`` and ``{player}`` of the path (see :func:`check_id`)."""
    return Player(
        check_id("brand", request.match_info["brand"]),
        check_id("player", request.match_info["player"]),
    )


def authorize(request: web.Request, who: Player, scope: str, *, players: bool = True) -> bool:
    """Let a backend (API key with ``scope``) or, when ``players``, the player themself in.

    Returns whether the caller is a backend. A bearer value that is not a known API key is
    tried as a player token, so a browser may send its token either way.

    Raises:
        Unauthorized: neither a known API key nor a valid player token.
        Forbidden: an API key without ``scope``, or another player's token.
    """
    header = request.headers.get("Authorization", "")
    bearer = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if bearer:
        try:
            require_key(request, scope)
            return True
        except Unauthorized:
            if not players:
                raise
    if not players:
        require_key(request, scope)  # raises: no key was sent
    token = token_from_request(request)
    if not token:
        raise Unauthorized("send an API key ('Authorization: Bearer <key>') or the player's token")
    claims = request.app[GATEWAY].auth.verify_token(token)
    if claims.brand != who.brand or claims.sub != who.player:
        raise Forbidden("a player may only see their own notifications and balance")
    return False


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def casino_time(ms: int) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, the casino front end's timestamp format."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def cursor_param(pattern: str, example: str) -> dict[str, Any]:
    """The OpenAPI ``cursor`` query parameter: where the previous page ended."""
    return {
        "description": "Where the previous page ended (its `next_cursor`); absent for the first.",
        "schema": {"type": "string", "pattern": pattern},
        "example": example,
    }


def parse_cursor(cursor: str | None, pattern: re.Pattern[str]) -> re.Match[str] | None:
    """``cursor`` matched against ``pattern`` (``None`` when absent).

    Raises:
        BadRequest: it does not match.
    """
    if cursor is None:
        return None
    found = pattern.fullmatch(cursor)
    if found is None:
        raise BadRequest(f"invalid cursor {shown(cursor, 80)}", code="bad_cursor")
    return found


LIMIT_PARAM: dict[str, Any] = {
    "description": "At most this many items.",
    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
    "example": 20,
}
