"""In-process Presence: the single-node default and the test double."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from .base import Change, player_of

__all__ = ["MemoryPresence"]


class MemoryPresence:
    def __init__(self) -> None:
        self._channels: dict[str, dict[str, Mapping[str, Any]]] = {}
        # channel -> player -> their connections in it: who arrives or goes first/last, in O(1)
        self._players: dict[str, dict[str, int]] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def join(self, channel: str, client: str, info: Mapping[str, Any]) -> Change:
        return self.join_now(channel, client, info)

    def join_now(self, channel: str, client: str, info: Mapping[str, Any]) -> Change:
        members = self._channels.setdefault(channel, {})
        old = members.get(client)
        members[client] = info
        if old is not None:
            # The same connection again: its player may have changed (never in practice).
            if player_of(old) == player_of(info):
                return Change(len(members), False)
            self._drop(channel, player_of(old))
        player = player_of(info)
        first = False
        if player is not None:
            players = self._players.setdefault(channel, {})
            had = players.get(player, 0)
            players[player] = had + 1
            first = had == 0
        return Change(len(members), first)

    async def leave(self, channel: str, client: str) -> Change:
        return self.leave_now(channel, client)

    def leave_now(self, channel: str, client: str) -> Change:
        members = self._channels.get(channel)
        if members is None:
            return Change(0, False)
        info = members.pop(client, None)
        last = info is not None and self._drop(channel, player_of(info))
        if not members:
            del self._channels[channel]
        return Change(len(members), last)

    def _drop(self, channel: str, player: str | None) -> bool:
        """One connection of ``player`` fewer; whether it was their last."""
        players = self._players.get(channel)
        if player is None or players is None or player not in players:
            return False
        left = players[player] - 1
        if left > 0:
            players[player] = left
            return False
        del players[player]
        if not players:
            del self._players[channel]
        return True

    async def count(self, channel: str) -> int:
        return len(self._channels.get(channel, ()))

    async def connections(self, channel: str, player: str) -> int:
        return self._players.get(channel, {}).get(player, 0)

    async def members(self, channel: str, limit: int) -> list[Mapping[str, Any]]:
        members = self._channels.get(channel, {})
        return [{"client": c, **info} for c, info in list(members.items())[:limit]]
