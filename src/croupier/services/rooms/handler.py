"""The room handler: the small interface a game implements to be played in a room.

A handler is pure game rules. It never awaits, never reads a clock and never draws a random
number of its own (take a seed from ``options`` if the game needs chance), so the room can
replay the actions it logged and arrive at exactly the same state after a restart.

State is a flat mapping of keys to JSON values. :meth:`RoomHandler.apply` returns only the
keys it changed; the room stamps each with the time of the change and publishes them as
``room.state``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["ActionRejected", "Move", "RoomHandler", "Turn"]


class ActionRejected(Exception):
    """An action the rules do not allow; ``code`` and ``message`` go to the player."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Move:
    """An action and its data, as a player sends it (``{"action":"take","data":{…}}``)."""

    action: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Turn:
    """Who must act next, what they may do, and what is done for them at the deadline."""

    player: str
    actions: tuple[str, ...]
    default: Move


class RoomHandler(Protocol):
    """A game. ``name`` is what rooms and queues call it by (``"nim"``)."""

    @property
    def name(self) -> str: ...

    @property
    def min_players(self) -> int: ...

    @property
    def max_players(self) -> int: ...

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` with a clear message when ``options`` make no game."""
        ...

    def initial(
        self, players: Sequence[str], round_no: int, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The state at the start of round ``round_no`` (from 1)."""
        ...

    def turn(self, state: Mapping[str, Any]) -> Turn | None:
        """Whose turn it is; ``None`` once the round is over."""
        ...

    def apply(self, state: Mapping[str, Any], player: str, move: Move) -> dict[str, Any]:
        """The keys ``move`` by ``player`` (whose turn it is, with an allowed action) changes.

        Raises:
            ActionRejected: the move's data breaks the rules (taking more than is left …).
        """
        ...

    def round_scores(self, state: Mapping[str, Any]) -> dict[str, float] | None:
        """Each player's score for the round once it is over; ``None`` while it runs."""
        ...

    def finished(
        self, totals: Mapping[str, float], rounds_played: int, options: Mapping[str, Any]
    ) -> bool:
        """Whether the game is over after ``rounds_played`` rounds with these totals."""
        ...
