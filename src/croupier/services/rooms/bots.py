"""Two Nim bots for the demo: they play one room after another on ``room:demo-{n}``.

They act the way a player does, by a ``player.action`` on the room's channel (published by
the server on their behalf, with the sender set), so the demo shows the room exactly as
players see it.
"""

from __future__ import annotations

import asyncio
import logging

import orjson

from ...errors import CroupierError, NotFound
from ...gateway import Gateway, PublishRequest
from .engine import RoomStatus
from .service import Rooms

__all__ = ["run_nim_bots"]

log = logging.getLogger(__name__)

BOTS = ("bot-ann", "bot-bob")


async def run_nim_bots(gateway: Gateway, interval: float = 1.5) -> None:
    """Play Nim between two bots, one move every ``interval`` seconds, until cancelled."""
    number = 0
    while True:
        await asyncio.sleep(interval)
        rooms = Rooms.of(gateway)
        if rooms is None:
            continue
        room_id = f"demo-{number}"
        try:
            try:
                room, _ = await rooms.get(room_id)
            except NotFound:
                options = {"pile": 9, "rounds": 3, "turnSeconds": 10, "leaderboard": "demo.nim"}
                await rooms.create(room_id, "nim", [(b, "demo") for b in BOTS], options, start=True)
                continue
            if room.status is not RoomStatus.PLAYING:
                number += 1
                continue
            turn = rooms.turn_of(room)
            if turn is None:
                continue
            pile = int(room.values["pile"])
            count = pile % 4 or 1  # leave a multiple of four when it can
            action = {"action": "take", "data": {"count": count}, "from": {"id": turn["playerId"]}}
            await gateway.publish(
                PublishRequest(room.channel, "player.action", orjson.dumps(action), ephemeral=True)
            )
        except CroupierError as exc:
            log.warning("nim bots: %s", exc.message)
        except Exception:
            log.exception("nim bots failed; trying again")
