"""Bots that queue for a game of Nim the way players do, over the WebSocket.

Each bot subscribes to its own channel ``player:1001:{bot}``, publishes
``matchmaking.join``, and when ``matchmaking.matched`` names a room it connects to
``/ws/room/{roomId}`` and plays: on its ``player.action.required`` it takes stones, leaving
a multiple of four when it can. The room's result goes to the ``rooms.nim`` leaderboard.
Then it queues again.
"""

from __future__ import annotations

import random
from typing import Any

from .backend import BRAND, Backend, Socket

__all__ = ["QUEUE_BOTS", "nim_take", "run_queue_bot"]

QUEUE_BOTS = ("bot_ann", "bot_bob", "bot_cy", "bot_dee", "bot_eve")
MODE = "default"


def nim_take(pile: int, max_take: int = 3) -> int:
    """Stones to take: leave a multiple of ``max_take + 1`` if possible, else take one."""
    return min(pile, pile % (max_take + 1) or 1)


async def run_queue_bot(backend: Backend, rng: random.Random, bot: str) -> None:
    """Queue, play the room matchmaking opens, and queue again, until cancelled."""
    channel = f"player:{BRAND}:{bot}"
    lobby = await backend.socket("/ws", bot)
    try:
        await lobby.send({"type": "subscribe", "channel": channel})
        while True:
            await lobby.receive(rng.uniform(0.5, 3.0))  # a little thinking between games
            await lobby.send(
                {"type": "publish", "channel": channel, "event": "matchmaking.join",
                 "data": {"mode": MODE}}
            )  # fmt: skip
            room_id = await _matched(lobby, channel)
            if room_id is not None:
                await _play(backend, rng, bot, room_id)
    finally:
        await lobby.close()


async def _matched(lobby: Socket, channel: str) -> str | None:
    """The room of this bot's match; None when the ticket timed out or was refused."""
    while True:
        message = await lobby.receive(5.0)
        if message is None or message.get("channel") != channel:
            continue
        kind, data = message.get("type"), message.get("data") or {}
        if kind == "matchmaking.matched":
            room_id: str = data["roomId"]
            return room_id
        if kind in ("matchmaking.timeout", "matchmaking.cancelled"):
            return None


async def _play(backend: Backend, rng: random.Random, bot: str, room_id: str) -> None:
    room = await backend.socket(f"/ws/room/{room_id}", bot)
    try:
        pile, max_take = 0, 3
        mine: dict[str, Any] | None = None  # our turn, once the room has gone quiet
        while True:
            message = await room.receive(rng.uniform(0.6, 1.4))
            if message is None:
                if mine is not None:
                    count = nim_take(pile, max_take)
                    await room.send(
                        {"type": "publish", "channel": f"room:{room_id}",
                         "event": "player.action",
                         "data": {"action": "take", "data": {"count": count}}}
                    )  # fmt: skip
                    mine = None
                continue
            kind, data = message.get("type"), message.get("data") or {}
            if kind == "game.finished":
                return
            if kind == "game.round.started":
                state = data.get("state") or {}  # {key: {value, ts}}
                pile = int(state.get("pile", {}).get("value", pile))
                max_take = int(state.get("maxTake", {}).get("value", max_take))
            elif kind == "room.state":
                changes = data.get("changes") or {}
                if "pile" in changes:
                    pile = int(changes["pile"]["value"])
                if data.get("status") in ("finished", "closed"):
                    return
                mine = None
            elif kind == "player.action.required":
                mine = data if data.get("playerId") == bot else None
    finally:
        await room.close()
