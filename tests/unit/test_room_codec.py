"""The ``/ws/room`` codec reads the seed's own messages (issue 13), without a server."""

from __future__ import annotations

import orjson

from croupier.config import Settings
from croupier.core import commands as c
from croupier.services.rooms.engine import Room
from croupier.services.rooms.socket import RoomCodec


def _codec() -> RoomCodec:
    room = Room(id="r-1", game="nim", players=("p1", "p2"))
    return RoomCodec(Settings(), room, "p1", None, 0)


def test_the_seed_s_player_action_is_a_publish_on_the_room() -> None:
    message = {
        "type": "player.action",
        "action": "take",
        "playerId": "p1",
        "timestamp": 1700000000000,
        "data": {"count": 2},
    }
    (command,) = _codec().decode(orjson.dumps(message))
    assert isinstance(command, c.Publish)
    assert (command.channel, command.type) == ("room:r-1", "player.action")
    assert orjson.loads(command.data) == {k: v for k, v in message.items() if k != "type"}


def test_a_player_action_for_someone_else_is_refused() -> None:
    message = {"type": "player.action", "action": "take", "playerId": "p2", "data": {}}
    (command,) = _codec().decode(orjson.dumps(message))
    assert isinstance(command, c.Refuse)
    assert command.code == "not_your_player"


def test_the_seed_s_ping_is_the_native_ping() -> None:
    assert _codec().decode(b'{"type":"ping"}') == (c.Ping(),)
