"""Sample traffic for ``make demo``: a tournament, a cricket match, a lobby ticker, and two
bots playing Nim in ``room:demo-{n}``.

It publishes through the same :meth:`Gateway.publish_json` the services use, so what a
browser sees in the demo is exactly what a real backend would produce.
"""

from __future__ import annotations

import asyncio
import logging
import random

from .gateway import Gateway

__all__ = ["run_demo_traffic"]

log = logging.getLogger(__name__)

PLAYERS = ["tp_player_101", "tp_player_202", "tp_player_303", "tp_player_404", "tp_player_505"]


async def run_demo_traffic(gateway: Gateway, interval: float = 1.0) -> None:
    """Publish sample events every ``interval`` seconds until cancelled."""
    from .services.rooms.bots import run_nim_bots

    bots = asyncio.get_running_loop().create_task(run_nim_bots(gateway))  # room:demo-{n}
    try:
        await _traffic(gateway, interval)
    finally:
        bots.cancel()
        await asyncio.gather(bots, return_exceptions=True)


async def _traffic(gateway: Gateway, interval: float) -> None:
    rng = random.Random(7)
    scores = dict.fromkeys(PLAYERS, 0)
    runs = wickets = balls = 0
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
            balls += 1
            outcome = rng.choice(["0", "1", "1", "2", "4", "6", "W"])
            if outcome == "W":
                wickets += 1
            else:
                runs += int(outcome)
            await gateway.publish_json(
                "match:demo",
                "score.update",
                {
                    "sport": "cricket",
                    "over": f"{balls // 6}.{balls % 6}",
                    "ball": outcome,
                    "score": f"{runs}/{wickets}",
                },
            )
            jackpot += rng.uniform(1, 40)
            await gateway.publish_json("lobby", "jackpot.updated", {"amount": round(jackpot, 2)})
        except Exception:
            log.exception("demo traffic failed; trying again")
