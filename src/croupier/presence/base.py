"""The Presence seam: who is subscribed to a channel, across every node."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Protocol, Self

__all__ = ["Presence"]


class Presence(Protocol):
    """Use as ``async with presence:``. ``client`` ids are unique per connection."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def join(self, channel: str, client: str, info: Mapping[str, Any]) -> int:
        """Record ``client`` in ``channel``; return the channel's count after it."""
        ...

    async def leave(self, channel: str, client: str) -> int:
        """Forget ``client`` in ``channel``; return the channel's count after it."""
        ...

    async def count(self, channel: str) -> int: ...

    async def members(self, channel: str, limit: int) -> list[Mapping[str, Any]]:
        """Up to ``limit`` members' info, each with its ``client`` id."""
        ...
