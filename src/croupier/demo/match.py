"""The demo cricket match, fed ball by ball through the sports API, and the fans watching it
on ``/ws/events``.

A scores backend posts each ball as an update; when the innings ends (all out, or 20 overs)
the match is finished and the next one goes live. Fans join the live match as viewers with
their player tokens and react now and then, slower than the reaction limit, so the match
channel carries ``viewers.count`` and ``reactions.summary``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from .backend import Backend, HttpError

__all__ = ["FANS", "LiveMatch", "next_ball", "run_fans", "run_match"]

TEAMS = ("Demo XI", "Sample XI", "Fixture CC", "Mock Town")
BALLS = 120  # twenty overs
OUTCOMES = ("0", "0", "1", "1", "1", "2", "3", "4", "4", "6", "W")
FANS = ("fan_ana", "fan_bo", "fan_cai", "fan_dev", "fan_eli", "fan_fox")
EMOJI = ("🔥", "👏", "😮", "🏏", "🎉", "😬", ":D", "<3")
COMMENTS = ("what a shot", "come on!", "unbelievable", "great line", "howzat?", "easy single")
PING_SECONDS = 20.0


class LiveMatch:
    """Which demo match is live now (the fans follow it)."""

    def __init__(self) -> None:
        self.event_id: str | None = None
        self.changed = asyncio.Event()

    def set(self, event_id: str | None) -> None:
        self.event_id = event_id
        self.changed.set()
        self.changed = asyncio.Event()


async def run_match(
    backend: Backend,
    rng: random.Random,
    live: LiveMatch,
    interval: float = 1.0,
    *,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Feed demo matches one after another, a ball every ``interval`` seconds; ``announce``
    hears each one's id."""
    while True:
        event_id = await _live_match(backend) or await _new_match(backend, rng)
        live.set(event_id)
        if announce is not None:
            announce(f"  live match: {event_id} (channel match:{event_id}, or /ws/events)")
        path = f"/api/v1/sports/events/{event_id}"
        board = (await backend.call("GET", path + "/snapshot"))["snapshot"]
        while int(board.get("wickets", 0)) < 10 and int(board.get("ball", 0)) < BALLS:
            await asyncio.sleep(interval)
            posted = await backend.call("POST", path + "/updates", next_ball(board, rng))
            board = posted["snapshot"]
        await backend.call("POST", path + "/status", {"status": "finished"})
        live.set(None)
        await asyncio.sleep(3 * interval)


async def _live_match(backend: Backend) -> str | None:
    listed = await backend.call("GET", "/api/v1/sports/events?status=live&limit=20")
    for event in listed["events"]:
        if event["id"].startswith("demo-") and event["sport"] == "cricket":
            event_id: str = event["id"]
            return event_id
    return None


async def _new_match(backend: Backend, rng: random.Random) -> str:
    home, away = rng.sample(TEAMS, 2)
    event_id = "demo-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    body = {"id": event_id, "sport": "cricket", "title": f"{home} v {away}",
            "competitors": [home, away]}  # fmt: skip
    try:
        await backend.call("POST", "/api/v1/sports/events", body)
    except HttpError as exc:
        if exc.status != 409:  # made by an earlier try that timed out
            raise
    await backend.call("POST", f"/api/v1/sports/events/{event_id}/status", {"status": "live"})
    return event_id


def next_ball(board: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """The next ball of the innings whose scoreboard is ``board``, as a backend posts it."""
    ball = int(board.get("ball", 0)) + 1
    runs, wickets = int(board.get("runs", 0)), int(board.get("wickets", 0))
    outcome = rng.choice(OUTCOMES)
    if outcome == "W":
        wickets += 1
        comment = rng.choice(("OUT! Bowled him", "OUT! Caught at slip", "OUT! LBW"))
    else:
        runs += int(outcome)
        comment = {"0": "dot ball", "4": "FOUR!", "6": "SIX!"}.get(outcome, f"{outcome} run(s)")
    bowler = f"bowler {1 + (ball - 1) // 6 % 5}"
    return {
        "ball": ball,
        "score": f"{runs}/{wickets}",
        "comment": comment,
        "bowler": {"name": bowler, "overs": f"{ball // 6}.{ball % 6}", "runs": runs,
                   "maiden": 0, "wickets": wickets},
    }  # fmt: skip


async def run_fans(backend: Backend, rng: random.Random, live: LiveMatch, fan: str) -> None:
    """One fan: watch whichever demo match is live, reacting every few seconds."""
    while True:
        event_id = live.event_id
        changed = live.changed
        if event_id is None:
            await changed.wait()
            continue
        socket = await backend.socket("/ws/events", fan)
        try:
            await socket.send({"eventId": event_id}, numbered=False)
            react_at = time.monotonic() + rng.uniform(0.5, 2.5)
            ping_at = time.monotonic() + PING_SECONDS
            while not changed.is_set():
                await socket.receive(min(0.5, max(0.0, react_at - time.monotonic())))
                now = time.monotonic()
                if now >= react_at:
                    reaction = {"type": "reaction", "emoji": rng.choice(EMOJI)}
                    if rng.random() < 0.3:
                        reaction["comment"] = rng.choice(COMMENTS)
                    await socket.send(reaction)
                    react_at = now + rng.uniform(1.0, 4.0)  # the limit is 3/s
                if now >= ping_at:
                    await socket.send({"type": "ping"})
                    ping_at = now + PING_SECONDS
        finally:
            await socket.close()
