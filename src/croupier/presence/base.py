"""The Presence seam: who is subscribed to a channel, across every node."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, NamedTuple, Protocol, Self

__all__ = ["Change", "Presence", "player_of"]


class Change(NamedTuple):
    """What a join or a leave did to a channel.

    ``total``: the channel's connections after it. ``player``: whether the player (the
    member info's ``id``) crossed the edge — on a join, this is their first connection in
    the channel; on a leave, their last one is gone. Always false for members without an id.
    """

    total: int
    player: bool


class Presence(Protocol):
    """Use as ``async with presence:``. ``client`` ids are unique per connection."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def join(self, channel: str, client: str, info: Mapping[str, Any]) -> Change:
        """Record ``client`` in ``channel`` (again: harmless); its player is ``info["id"]``.

        Costs the same whatever the channel's size (one round trip when shared).
        """
        ...

    def join_now(self, channel: str, client: str, info: Mapping[str, Any]) -> Change | None:
        """:meth:`join` done at once when it needs no I/O (presence kept in this process);
        ``None``, having done nothing, when it does (a subscribe then awaits :meth:`join`)."""
        ...

    async def leave(self, channel: str, client: str) -> Change:
        """Forget ``client`` in ``channel`` (an unknown one: harmless)."""
        ...

    def leave_now(self, channel: str, client: str) -> Change | None:
        """:meth:`leave` done at once when it needs no I/O (presence kept in this process);
        ``None``, having done nothing, when it does (a closing connection then awaits
        :meth:`leave`)."""
        ...

    async def count(self, channel: str) -> int: ...

    async def connections(self, channel: str, player: str) -> int:
        """How many connections of ``player`` are in ``channel`` (on any node)."""
        ...

    async def members(self, channel: str, limit: int) -> list[Mapping[str, Any]]:
        """Up to ``limit`` members' info, each with its ``client`` id."""
        ...


def player_of(info: Mapping[str, Any]) -> str | None:
    """The player a member's info names (its ``id``), if any."""
    player = info.get("id")
    return None if player is None else str(player)
