"""A room's lifecycle and its steps, as pure functions over a frozen :class:`Room`. No I/O.

Rules:

* Status moves by :data:`ROOM_TRANSITIONS`: ``open`` (players join and leave) →
  ``playing`` → ``finished``; ``open`` or ``playing`` → ``closed`` (called off).
* Only a player of a ``playing`` room, on their turn, with an action the handler allows
  now, may act; anything else is refused with an :class:`ActionRejected` whose code says
  why (``not_playing``, ``not_a_player``, ``not_your_turn``, ``action_not_allowed``, or the
  handler's own).
* Each accepted action is one step: ``seq`` grows by one and the step's events (the state
  change, and when the round ends the round's result, the room leaderboard, the next round
  or the end of the game, and the next ``player.action.required``) are returned together,
  to be published together.
* A step depends only on the room, the action and the time given, so replaying logged
  actions over a snapshot rebuilds the room exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from ...errors import shown
from ...logs.base import now_ts
from .handler import ActionRejected, Move, RoomHandler, Turn

__all__ = [
    "ROOM_TRANSITIONS",
    "Room",
    "RoomStatus",
    "Step",
    "act",
    "check_move",
    "close",
    "join",
    "leave",
    "replay",
    "required",
    "standings",
    "start",
]

DEFAULT_TURN_SECONDS = 30.0


class RoomStatus(StrEnum):
    OPEN = "open"
    PLAYING = "playing"
    FINISHED = "finished"
    CLOSED = "closed"


# Rules: a room is set up while open, played once, and then stays as it ended.
ROOM_TRANSITIONS: dict[RoomStatus, frozenset[RoomStatus]] = {
    RoomStatus.OPEN: frozenset({RoomStatus.PLAYING, RoomStatus.CLOSED}),
    RoomStatus.PLAYING: frozenset({RoomStatus.FINISHED, RoomStatus.CLOSED}),
    RoomStatus.FINISHED: frozenset(),
    RoomStatus.CLOSED: frozenset(),
}


def _move_to(room: Room, target: RoomStatus) -> Room:
    if target not in ROOM_TRANSITIONS[room.status]:
        raise ActionRejected(
            "invalid_state",
            f"room {room.id} is {room.status.value}; it cannot become {target.value}",
        )
    return replace(room, status=target)


@dataclass(frozen=True, slots=True)
class Room:
    """A room: who plays what, where the game stands, and when each key last changed."""

    id: str
    game: str
    players: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    status: RoomStatus = RoomStatus.OPEN
    round: int = 0
    seq: int = 0
    values: Mapping[str, Any] = field(default_factory=dict)
    stamps: Mapping[str, float] = field(default_factory=dict)
    totals: Mapping[str, float] = field(default_factory=dict)
    deadline: float | None = None
    max_players: int = 8

    @property
    def channel(self) -> str:
        return f"room:{self.id}"

    @property
    def turn_seconds(self) -> float:
        return float(self.options.get("turnSeconds", DEFAULT_TURN_SECONDS))

    def state_view(self) -> dict[str, Any]:
        """The state as ``room.state`` shows it: each key with its value and time."""
        return {
            k: {"value": v, "ts": now_ts(self.stamps.get(k, 0.0))} for k, v in self.values.items()
        }


@dataclass(frozen=True, slots=True)
class Step:
    """A room after a step, and the events (type, data) that tell the room about it."""

    room: Room
    events: tuple[tuple[str, dict[str, Any]], ...]


def join(room: Room, player: str) -> Room:
    """``room`` with ``player`` seated (already seated: unchanged)."""
    if room.status is not RoomStatus.OPEN:
        raise ActionRejected("invalid_state", f"room {room.id} is {room.status.value}")
    if player in room.players:
        return room
    if len(room.players) >= room.max_players:
        raise ActionRejected("room_full", f"room {room.id} is full ({room.max_players})")
    return replace(room, players=(*room.players, player))


def leave(room: Room, player: str) -> Room:
    """``room`` without ``player``; leaving is for open rooms (in play, turns default)."""
    if room.status is not RoomStatus.OPEN:
        raise ActionRejected(
            "invalid_state", f"room {room.id} is {room.status.value}: players leave open rooms"
        )
    if player not in room.players:
        raise ActionRejected("not_a_player", f"{player} is not in room {room.id}")
    return replace(room, players=tuple(p for p in room.players if p != player))


def close(room: Room) -> Step:
    room = _move_to(room, RoomStatus.CLOSED)
    room = replace(room, deadline=None)
    return Step(room, (("room.state", _state_event(room, {}, None)),))


def start(room: Room, handler: RoomHandler, now: float) -> Step:
    """Start round 1.

    Raises:
        ActionRejected: the room is not open, or has too few players for the game.
    """
    if len(room.players) < handler.min_players:
        raise ActionRejected(
            "too_few_players",
            f"{handler.name} needs at least {handler.min_players} players; "
            f"room {room.id} has {len(room.players)}",
        )
    room = _move_to(room, RoomStatus.PLAYING)
    room = replace(room, totals={p: 0.0 for p in room.players})
    room, events = _new_round(room, handler, now)
    return Step(room, (("room.state", _state_event(room, room.values, None)), *events))


def _new_round(
    room: Room, handler: RoomHandler, now: float
) -> tuple[Room, list[tuple[str, dict[str, Any]]]]:
    number = room.round + 1
    values = handler.initial(room.players, number, room.options)
    room = replace(
        room, round=number, values=values, stamps={k: now for k in values}, deadline=None
    )
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "game.round.started",
            {
                "roomId": room.id,
                "round": number,
                "players": list(room.players),
                "state": room.state_view(),
            },
        )
    ]
    turn = handler.turn(room.values)
    if turn is not None:
        room = replace(room, deadline=now + room.turn_seconds)
        events.append(("player.action.required", required(room, turn)))
    return room, events


def required(room: Room, turn: Turn) -> dict[str, Any]:
    """The ``player.action.required`` data for ``turn`` and the room's deadline."""
    return {
        "roomId": room.id,
        "round": room.round,
        "playerId": turn.player,
        "actions": list(turn.actions),
        "deadline": now_ts(room.deadline),
        "default": {"action": turn.default.action, "data": dict(turn.default.data)},
    }


def check_move(room: Room, handler: RoomHandler, player: str, move: Move) -> Turn:
    """The turn ``move`` answers, if ``player`` may make it now.

    Raises:
        ActionRejected: not playing, not a player, not their turn, or not an allowed action.
    """
    if room.status is not RoomStatus.PLAYING:
        raise ActionRejected("not_playing", f"room {room.id} is {room.status.value}")
    if player not in room.players:
        raise ActionRejected("not_a_player", f"{player} does not play in room {room.id}")
    turn = handler.turn(room.values)
    if turn is None or turn.player != player:
        whose = "nobody's" if turn is None else f"{turn.player}'s"
        raise ActionRejected("not_your_turn", f"it is {whose} turn in room {room.id}")
    if move.action not in turn.actions:
        raise ActionRejected(
            "action_not_allowed",
            f"{shown(move.action, 64)} is not allowed now; allowed: {', '.join(turn.actions)}",
        )
    return turn


def act(
    room: Room, handler: RoomHandler, player: str, move: Move, now: float, *, default: bool = False
) -> Step:
    """Apply ``move`` by ``player`` at ``now`` (``default``: the deadline's move).

    Raises:
        ActionRejected: see :func:`check_move`, and the handler's own refusals.
    """
    check_move(room, handler, player, move)
    changes = handler.apply(room.values, player, move)
    values = {**room.values, **changes}
    stamps = {**room.stamps, **{k: now for k in changes}}
    room = replace(room, seq=room.seq + 1, values=values, stamps=stamps, deadline=None)
    action = {
        "playerId": player,
        "action": move.action,
        "data": dict(move.data),
        "timestamp": now_ts(now),
        "at": now,
        "default": default,
    }
    events: list[tuple[str, dict[str, Any]]] = []
    scores = handler.round_scores(room.values)
    if scores is None:
        turn = handler.turn(room.values)
        if turn is not None:
            room = replace(room, deadline=now + room.turn_seconds)
        events.append(("room.state", _state_event(room, changes, action)))
        if turn is not None:
            events.append(("player.action.required", required(room, turn)))
        return Step(room, tuple(events))
    totals = {p: room.totals.get(p, 0.0) + scores.get(p, 0.0) for p in room.players}
    room = replace(room, totals=totals)
    top = max(scores.values()) if scores else 0.0
    winners = [p for p in room.players if scores.get(p, 0.0) == top]
    over = handler.finished(totals, room.round, room.options)
    if over:
        room = _move_to(room, RoomStatus.FINISHED)
    events.append(("room.state", _state_event(room, changes, action)))
    events.append(
        (
            "game.round.ended",
            {
                "roomId": room.id,
                "round": room.round,
                "scores": scores,
                "winners": winners,
                "totals": totals,
            },
        )
    )
    events.append(("leaderboard.updated", {"roomId": room.id, "leaderboard": standings(room)}))
    if over:
        board = standings(room)
        events.append(
            (
                "game.finished",
                {
                    "roomId": room.id,
                    "game": room.game,
                    "rounds": room.round,
                    "winner": board[0]["playerId"] if board else None,
                    "results": board,
                },
            )
        )
        return Step(room, tuple(events))
    room, more = _new_round(room, handler, now)
    # The new round's board as room.state too, right after game.round.started: a client
    # that applies only room.state (the seed's GameRoomWebSocket) shows the right board.
    more.insert(1, ("room.state", _state_event(room, room.values, None)))
    events.extend(more)
    return Step(room, tuple(events))


def replay(room: Room, handler: RoomHandler, logged: Mapping[str, Any]) -> Room | None:
    """``room`` after the step a logged ``room.state`` event's data records, or ``None``
    when the event adds nothing to it (a start, or a step the room already includes).

    Raises:
        ActionRejected: the logged action does not apply (the log is not this room's).
    """
    action = logged.get("action")
    if action is None:
        if logged.get("status") == RoomStatus.CLOSED.value and room.status is not RoomStatus.CLOSED:
            return replace(room, status=RoomStatus.CLOSED, deadline=None)
        return None
    if logged.get("seq", 0) <= room.seq:
        return None
    move = Move(action["action"], action["data"])
    at = float(action["at"])
    return act(room, handler, action["playerId"], move, at, default=bool(action["default"])).room


def standings(room: Room) -> list[dict[str, Any]]:
    """The room leaderboard: total descending, seat order on ties, positions from 1."""
    seat = {p: i for i, p in enumerate(room.players)}
    ranked = sorted(room.players, key=lambda p: (-room.totals.get(p, 0.0), seat[p]))
    return [
        {"playerId": p, "score": _number(room.totals.get(p, 0.0)), "position": i + 1}
        for i, p in enumerate(ranked)
    ]


def _number(x: float) -> float | int:
    return int(x) if float(x).is_integer() else x


def _state_event(
    room: Room, changes: Mapping[str, Any], action: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "roomId": room.id,
        "status": room.status.value,
        "round": room.round,
        "seq": room.seq,
        "changes": {
            k: {"value": v, "ts": now_ts(room.stamps.get(k, 0.0))} for k, v in changes.items()
        },
        "action": action,
    }
