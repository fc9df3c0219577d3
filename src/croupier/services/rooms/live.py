"""What a node holds for each room it runs, and how player actions reach it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...events import Event
from .engine import Room
from .handler import RoomHandler

__all__ = ["WIRE", "LiveRoom", "RoomSink", "no_frame"]

log = logging.getLogger(__name__)

WIRE = "croupier-rooms"  # the hub's name for the rooms service as a subscriber


def no_frame(event: Event) -> bytes:
    """The service reads events, not frames: the hub encodes nothing for it."""
    return b""


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


class RoomSink:
    """The rooms service as a hub subscriber of its rooms' channels: it takes
    ``player.action`` events (from this node or, through the broker, any other)."""

    wire = WIRE

    def __init__(self, received: Callable[[Event], None]) -> None:
        self._received = received

    def push(self, frame: bytes, event: Event) -> None:
        if event.type == "player.action":
            try:
                self._received(event)
            except Exception:
                log.exception("a player.action could not be taken")
