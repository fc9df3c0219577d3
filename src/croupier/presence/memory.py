"""In-process Presence: the single-node default and the test double."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

__all__ = ["MemoryPresence"]


class MemoryPresence:
    def __init__(self) -> None:
        self._channels: dict[str, dict[str, Mapping[str, Any]]] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def join(self, channel: str, client: str, info: Mapping[str, Any]) -> int:
        members = self._channels.setdefault(channel, {})
        members[client] = info
        return len(members)

    async def leave(self, channel: str, client: str) -> int:
        members = self._channels.get(channel)
        if members is None:
            return 0
        members.pop(client, None)
        if not members:
            del self._channels[channel]
            return 0
        return len(members)

    async def count(self, channel: str) -> int:
        return len(self._channels.get(channel, ()))

    async def members(self, channel: str, limit: int) -> list[Mapping[str, Any]]:
        members = self._channels.get(channel, {})
        return [{"client": c, **info} for c, info in list(members.items())[:limit]]
