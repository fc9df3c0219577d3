"""Bringing a room back: its snapshot, then the steps its channel logged after it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import orjson

from ...logs import Log
from . import engine
from .engine import Room
from .handler import RoomHandler

__all__ = ["PAGE", "Recovered", "replay_log"]

log = logging.getLogger(__name__)

PAGE = 1000  # events read from the log at a time


@dataclass(frozen=True, slots=True)
class Recovered:
    """The room after the replay, how many steps were replayed, and where the last one is."""

    room: Room
    replayed: int
    offset: int
    epoch: str | None


async def replay_log(
    events: Log, room: Room, handler: RoomHandler, offset: int, epoch: str | None
) -> Recovered:
    """``room`` (a snapshot that includes the log up to ``offset`` of ``epoch``) with every
    step the channel's log holds after it applied again.

    A log of another epoch (its history was lost) adds nothing: the snapshot stands. A log
    trimmed past the snapshot is replayed from what it still holds, and logged as such.
    """
    replayed = 0
    after = offset
    while True:
        history = await events.read(room.channel, after, PAGE)
        if epoch is not None and history.position.epoch != epoch:
            log.warning("room %s: its log was lost; restored from the snapshot", room.id)
            break
        if after + 1 < history.first:
            log.warning("room %s: the log no longer holds every step after the snapshot", room.id)
        for event in history.events:
            after = event.offset or after
            if event.type != "room.state":
                continue
            step = engine.replay(room, handler, orjson.loads(event.payload))
            if step is not None:
                room = step
                replayed += 1
                offset, epoch = event.offset or 0, event.epoch
        if len(history.events) < PAGE:
            break
    return Recovered(room, replayed, offset, epoch)
