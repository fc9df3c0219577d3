"""The room steps and the sample game, driven directly (no server, no clock)."""

from __future__ import annotations

import orjson
import pytest

from croupier.services.rooms import ActionRejected, Move, Nim, Room, RoomStatus, engine

NIM = Nim()
T0 = 1_000_000.0


def playing(**options: object) -> Room:
    room = Room("r1", "nim", ("ann", "bob"), {"pile": 5, "rounds": 3, "turnSeconds": 10, **options})
    return engine.start(room, NIM, T0).room


def types(step: engine.Step) -> list[str]:
    return [t for t, _ in step.events]


def test_start_opens_round_one_and_asks_the_first_player() -> None:
    room = Room("r1", "nim", ("ann", "bob"), {"pile": 5})
    step = engine.start(room, NIM, T0)
    assert types(step) == ["room.state", "game.round.started", "player.action.required"]
    required = step.events[-1][1]
    assert required["playerId"] == "ann"
    assert required["actions"] == ["take"]
    assert step.room.deadline == T0 + 30  # the default turn time
    assert step.room.status is RoomStatus.PLAYING


def test_out_of_turn_and_disallowed_actions_are_refused() -> None:
    room = playing()
    with pytest.raises(ActionRejected) as e:
        engine.act(room, NIM, "bob", Move("take", {"count": 1}), T0)
    assert e.value.code == "not_your_turn"
    with pytest.raises(ActionRejected) as e:
        engine.act(room, NIM, "ann", Move("fold", {}), T0)
    assert e.value.code == "action_not_allowed"
    with pytest.raises(ActionRejected) as e:
        engine.act(room, NIM, "ann", Move("take", {"count": 4}), T0)
    assert e.value.code == "invalid_action"
    with pytest.raises(ActionRejected) as e:
        engine.act(room, NIM, "eve", Move("take", {"count": 1}), T0)
    assert e.value.code == "not_a_player"


def test_a_round_ends_when_the_last_stone_is_taken_and_the_next_begins() -> None:
    room = playing()
    room = engine.act(room, NIM, "ann", Move("take", {"count": 3}), T0 + 1).room
    step = engine.act(room, NIM, "bob", Move("take", {"count": 2}), T0 + 2)
    assert types(step) == [
        "room.state",
        "game.round.ended",
        "leaderboard.updated",
        "game.round.started",
        "room.state",  # the new round's board, for clients that apply only room.state
        "player.action.required",
    ]
    ended = step.events[1][1]
    assert ended["winners"] == ["bob"]
    assert ended["totals"] == {"ann": 0.0, "bob": 1.0}
    assert step.room.round == 2
    assert step.events[-1][1]["playerId"] == "bob"  # the first mover rotates
    assert step.room.stamps["pile"] == T0 + 2


def test_best_of_three_ends_once_the_leader_cannot_be_caught() -> None:
    room = playing(pile=1)
    room = engine.act(room, NIM, "ann", Move("take", {"count": 1}), T0).room
    step = engine.act(room, NIM, "bob", Move("take", {"count": 1}), T0)
    assert step.room.round == 3
    assert step.room.status is RoomStatus.PLAYING
    step = engine.act(step.room, NIM, "ann", Move("take", {"count": 1}), T0)
    assert step.room.status is RoomStatus.FINISHED
    finished = step.events[-1]
    assert finished[0] == "game.finished"
    assert finished[1]["winner"] == "ann"
    assert finished[1]["results"][0] == {"playerId": "ann", "score": 2, "position": 1}
    with pytest.raises(ActionRejected):
        engine.act(step.room, NIM, "bob", Move("take", {"count": 1}), T0)


def test_replaying_the_logged_steps_over_a_snapshot_rebuilds_the_room() -> None:
    moves = [("ann", 2), ("bob", 1), ("ann", 2), ("bob", 3), ("ann", 2)]
    live = playing()
    snapshot = None
    logged = []  # the room.state events' data as the log holds them (JSON)
    for i, (who, n) in enumerate(moves):
        step = engine.act(live, NIM, who, Move("take", {"count": n}), T0 + i)
        live = step.room
        logged += [orjson.loads(orjson.dumps(d)) for t, d in step.events if t == "room.state"]
        if i == 1:
            snapshot = live
    assert snapshot is not None
    again = snapshot
    for doc in logged:  # every step, the ones the snapshot holds too: those are skipped
        again = engine.replay(again, NIM, doc) or again
    assert again == live
    assert again.status is RoomStatus.FINISHED
    closed = engine.close(snapshot)
    assert engine.replay(snapshot, NIM, closed.events[0][1]) == closed.room


def test_open_rooms_take_joins_and_leaves() -> None:
    room = Room("r2", "nim", (), max_players=2)
    room = engine.join(engine.join(room, "ann"), "bob")
    assert engine.join(room, "bob") == room
    with pytest.raises(ActionRejected):
        engine.join(room, "cid")
    room = engine.leave(room, "bob")
    assert room.players == ("ann",)
    with pytest.raises(ActionRejected) as e:
        engine.start(room, NIM, T0)
    assert e.value.code == "too_few_players"


def test_the_room_lifecycle_table() -> None:
    room = playing()
    closed = engine.close(room).room
    assert closed.status is RoomStatus.CLOSED
    with pytest.raises(ActionRejected):
        engine.close(closed)
    assert engine.ROOM_TRANSITIONS[RoomStatus.FINISHED] == frozenset()
