"""What a node holds for each room it runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .engine import Room
from .handler import RoomHandler

__all__ = ["LiveRoom"]


@dataclass(slots=True)
class LiveRoom:
    """A room this node runs: the room as of its last step, and its inputs and timers.

    ``inbox`` holds ``("action", data)``, ``("deadline", seq)`` and ``("close", future)``,
    applied one at a time by ``task``. ``offset`` / ``epoch`` are the log position of the
    last step's ``room.state``.
    """

    room: Room
    handler: RoomHandler
    brands: dict[str, str | None]
    inbox: asyncio.Queue[tuple[str, Any]] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    offset: int = 0
    epoch: str | None = None
    saved_seq: int = 0
    save_timer: asyncio.TimerHandle | None = None
