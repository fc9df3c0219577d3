"""Matchmaking and brackets: queues per game mode, rooms for the matched, single elimination.

See ``docs/rooms.md`` for the rules, the events and the API.
"""

from .brackets import Brackets
from .service import Matchmaking

__all__ = ["Brackets", "Matchmaking"]
