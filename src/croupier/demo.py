"""Sample traffic for ``make demo``: a tournament, a cricket match, a lobby ticker, and two
bots playing Nim in ``room:demo-{n}``.

It publishes through the same :meth:`Gateway.publish_json` the services use, so what a
browser sees in the demo is exactly what a real backend would produce. The cricket match is
the sporting event ``demo``, fed ball by ball over the server's own HTTP API as a scores
backend would (``api``: the server's base URL and an API key).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import aiohttp

from .gateway import Gateway

__all__ = ["run_demo_traffic"]

log = logging.getLogger(__name__)

PLAYERS = ["tp_player_101", "tp_player_202", "tp_player_303", "tp_player_404", "tp_player_505"]


class _Match:
    """The demo cricket match, one ball a call, continuing where an earlier run stopped."""

    def __init__(self, base: str, key: str) -> None:
        self.url = base + "/api/v1/sports/events"
        self.http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"})
        self.board: dict[str, Any] = {}

    async def start(self) -> None:
        body = {"id": "demo", "sport": "cricket", "title": "Demo XI v Sample XI",
                "competitors": ["Demo XI", "Sample XI"]}  # fmt: skip
        async with self.http.post(self.url, json=body):
            pass  # 409 when an earlier run made it
        async with self.http.post(self.url + "/demo/status", json={"status": "live"}):
            pass
        async with self.http.get(self.url + "/demo/snapshot") as reply:
            self.board = (await reply.json())["snapshot"]

    async def bowl(self, rng: random.Random) -> None:
        ball = self.board.get("ball", 0) + 1
        runs, wickets = self.board.get("runs", 0), self.board.get("wickets", 0)
        if wickets >= 10:
            return  # all out: the innings is over
        outcome = rng.choice(["0", "1", "1", "2", "4", "6", "W"])
        wickets, runs = (wickets + 1, runs) if outcome == "W" else (wickets, runs + int(outcome))
        update = {
            "ball": ball,
            "score": f"{runs}/{wickets}",
            "comment": "OUT!" if outcome == "W" else f"{outcome} run(s)",
            "bowler": {"name": "demo bowler", "overs": f"{ball // 6}.{ball % 6}",
                       "runs": runs, "maiden": 0, "wickets": wickets},
        }  # fmt: skip
        async with self.http.post(self.url + "/demo/updates", json=update) as reply:
            if reply.status == 200:
                self.board = (await reply.json())["snapshot"]
            else:
                log.warning("demo ball refused: %s", await reply.text())


async def run_demo_traffic(
    gateway: Gateway, interval: float = 1.0, *, api: tuple[str, str] | None = None
) -> None:
    """Publish sample events every ``interval`` seconds until cancelled."""
    from .services.rooms.bots import run_nim_bots

    bots = asyncio.get_running_loop().create_task(run_nim_bots(gateway))  # room:demo-{n}
    rng = random.Random(7)
    scores = dict.fromkeys(PLAYERS, 0)
    match = None if api is None else _Match(*api)
    try:
        await _traffic(gateway, interval, rng, scores, match)
    finally:
        bots.cancel()
        await asyncio.gather(bots, return_exceptions=True)
        if match is not None:
            await match.http.close()


async def _traffic(
    gateway: Gateway,
    interval: float,
    rng: random.Random,
    scores: dict[str, int],
    match: _Match | None,
) -> None:
    if match is not None:
        try:
            await match.start()
        except (aiohttp.ClientError, KeyError) as exc:
            log.warning("no demo cricket match: %s", exc)
            match = None
    jackpot = 125_000.0
    while True:
        await asyncio.sleep(interval)
        try:
            player = rng.choice(PLAYERS)
            scores[player] += rng.randint(10, 120)
            ranking = sorted(scores, key=lambda p: -scores[p])
            await gateway.publish_json(
                "tournament:demo",
                "player.score.updated",
                {
                    "tournamentId": "demo",
                    "playerId": player,
                    "score": scores[player],
                    "position": ranking.index(player) + 1,
                    "round": 1,
                },
            )
            if match is not None:
                await match.bowl(rng)
            jackpot += rng.uniform(1, 40)
            await gateway.publish_json("lobby", "jackpot.updated", {"amount": round(jackpot, 2)})
        except Exception:
            log.exception("demo traffic failed; trying again")
