"""Game rooms: players, rounds, turns with deadlines, state that survives a restart.

See ``docs/rooms.md`` for the handler interface, the events and the API.
"""

from .engine import Room, RoomStatus
from .handler import ActionRejected, Move, RoomHandler, Turn
from .nim import Nim
from .service import Rooms

__all__ = ["ActionRejected", "Move", "Nim", "Room", "RoomHandler", "RoomStatus", "Rooms", "Turn"]
