"""The demo tournament, one after another, through the tournaments service's HTTP API.

Bots register, the tournament starts, they score every second or so, a round passes every
``ROUND_SECONDS``, and after the last round it completes: prizes are settled and the winners
get their ``tournament_win`` notifications. A few seconds later the next one opens. After a
restart the simulator picks up the newest unfinished demo tournament where it stands.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

from .backend import BRAND, Backend, HttpError

__all__ = ["BOTS", "run_tournaments"]

# The console's notification centre shows p1, so p1 plays too (and wins now and then).
BOTS = {
    "p1": "Player One",
    "tp_player_101": "Ada",
    "tp_player_202": "Bram",
    "tp_player_303": "Chen",
    "tp_player_404": "Dita",
    "tp_player_505": "Emeka",
    "tp_player_606": "Farah",
}
ROUNDS = 3
ROUND_SECONDS = 15.0
PAUSE_SECONDS = 6.0  # between one tournament's end and the next one's start
UNFINISHED = ("scheduled", "registering", "running")


async def run_tournaments(
    backend: Backend,
    rng: random.Random,
    interval: float = 1.0,
    *,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Run demo tournaments back to back until cancelled; ``announce`` hears each one's id."""
    while True:
        tournament = await _unfinished(backend) or await _create(backend)
        if announce is not None:
            tid = tournament["id"]
            announce(f"  live tournament: {tid} (channel tournament:{tid})")
        await _drive(backend, rng, tournament, interval)
        await asyncio.sleep(PAUSE_SECONDS)


async def _unfinished(backend: Backend) -> dict[str, Any] | None:
    listed = await backend.call("GET", "/api/v1/tournaments?limit=20")
    for tournament in listed["tournaments"]:  # newest first
        if tournament["id"].startswith("demo-") and tournament["status"] in UNFINISHED:
            found: dict[str, Any] = tournament
            return found
    return None


async def _create(backend: Backend) -> dict[str, Any]:
    stamp = time.strftime("%H:%M:%S", time.gmtime())
    body = {
        "id": "demo-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime()),
        "name": f"Demo Cup {stamp}",
        "rounds": ROUNDS,
        "minPlayers": 2,
        "entryFee": 5.0,
        "guaranteedPool": 100.0,
        "prizes": [
            {"fromRank": 1, "toRank": 1, "percent": 50},
            {"fromRank": 2, "toRank": 3, "percent": 25},
        ],
        "scoring": {"rule": "points", "counting": "sum"},
    }
    created: dict[str, Any] = await backend.call("POST", "/api/v1/tournaments", body)
    return created


async def _drive(
    backend: Backend, rng: random.Random, tournament: dict[str, Any], interval: float
) -> None:
    path = f"/api/v1/tournaments/{tournament['id']}"
    status = tournament["status"]
    if status == "scheduled":
        await backend.call("POST", path + "/open")
        status = "registering"
    if status == "registering":
        for player, name in BOTS.items():
            body = {"playerId": player, "brand": BRAND, "displayName": name}
            await backend.call("POST", path + "/players", body)
        await backend.call("POST", path + "/start")
    round_ends = time.monotonic() + ROUND_SECONDS
    while True:
        await asyncio.sleep(interval * rng.uniform(0.6, 1.4))
        for player in rng.sample(sorted(BOTS), k=rng.randint(1, 3)):
            points = rng.randint(5, 60) * (2 if player == "p1" else 1)
            score = {"submissionId": uuid.uuid4().hex, "playerId": player, "points": points}
            await backend.call("POST", path + "/scores", score)
        if time.monotonic() < round_ends:
            continue
        try:
            await backend.call("POST", path + "/rounds")
        except HttpError as exc:
            if exc.code != "last_round":
                raise
            await backend.call("POST", path + "/complete")
            return
        round_ends = time.monotonic() + ROUND_SECONDS
