"""The sample game: Nim, best of N rounds, for two or more players.

Rules:

* A round starts with a pile of ``pile`` stones (default 7); players take turns in seat
  order, the first mover rotating with each round.
* On their turn a player takes 1 to ``maxTake`` stones (default 3), never more than are
  left. Whoever takes the last stone wins the round (1 point; the others 0).
* The game is over after ``rounds`` rounds (default 3), or earlier once the leader cannot
  be caught in the rounds that remain.
* A player who lets the deadline pass takes one stone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .handler import ActionRejected, Move, Turn

__all__ = ["Nim"]

_LIMITS = {"pile": (1, 1000), "maxTake": (1, 100), "rounds": (1, 99)}
_DEFAULTS = {"pile": 7, "maxTake": 3, "rounds": 3}


def _option(options: Mapping[str, Any], name: str) -> int:
    value = options.get(name, _DEFAULTS[name])
    return int(value)


class Nim:
    """The Nim handler (``"nim"``)."""

    name = "nim"
    min_players = 2
    max_players = 8

    def check_options(self, options: Mapping[str, Any]) -> None:
        for key, value in options.items():
            if key not in _LIMITS:
                continue  # options of the room itself (turnSeconds …) pass through
            low, high = _LIMITS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"nim option {key} must be an integer from {low} to {high}")

    def initial(
        self, players: Sequence[str], round_no: int, options: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "pile": _option(options, "pile"),
            "maxTake": _option(options, "maxTake"),
            "order": list(players),
            "turn": players[(round_no - 1) % len(players)],
            "lastMove": None,
            "winner": None,
        }

    def turn(self, state: Mapping[str, Any]) -> Turn | None:
        if state["pile"] <= 0:
            return None
        return Turn(state["turn"], ("take",), Move("take", {"count": 1}))

    def apply(self, state: Mapping[str, Any], player: str, move: Move) -> dict[str, Any]:
        pile: int = state["pile"]
        most = min(int(state["maxTake"]), pile)
        count = move.data.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= most:
            raise ActionRejected(
                "invalid_action", f"take must have a count from 1 to {most} ({pile} left)"
            )
        order: list[str] = state["order"]
        left = pile - count
        changes: dict[str, Any] = {"pile": left, "lastMove": {"player": player, "count": count}}
        if left == 0:
            changes["winner"] = player
        else:
            changes["turn"] = order[(order.index(player) + 1) % len(order)]
        return changes

    def round_scores(self, state: Mapping[str, Any]) -> dict[str, float] | None:
        if state["pile"] > 0:
            return None
        return {p: 1.0 if p == state["winner"] else 0.0 for p in state["order"]}

    def finished(
        self, totals: Mapping[str, float], rounds_played: int, options: Mapping[str, Any]
    ) -> bool:
        rounds = _option(options, "rounds")
        if rounds_played >= rounds:
            return True
        ranked = sorted(totals.values(), reverse=True)
        lead = ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0)
        return lead > rounds - rounds_played
