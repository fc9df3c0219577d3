"""The living demo of ``croupier serve --demo``: a simulator that drives the server the way
real backends and players would.

Backends call the server's own HTTP API with the demo key; players connect over WebSockets
with tokens signed by the demo secret. So what the console shows is exactly what a real
deployment produces. The parts, each in its own module:

* :mod:`.tournament`: demo tournaments back to back (register, score, rounds, prizes);
* :mod:`.match`: a cricket match ball by ball, and fans reacting on ``/ws/events``;
* :mod:`.player`: notifications, coins and wallet updates for the player ``1001/p1``;
* :mod:`.queue`: bots queueing for Nim, matched into rooms, playing them out;
* a lobby jackpot ticker on ``lobby``.

Each part runs on its own: a failure is logged and the part starts again a little later,
never stopping the others. Everything continues where it stood after a restart on the same
database.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from ..gateway import Gateway
from .backend import Backend
from .match import FANS, LiveMatch, run_fans, run_match
from .player import run_player
from .queue import QUEUE_BOTS, run_queue_bot
from .tournament import run_tournaments

__all__ = [
    "Backend",
    "LiveMatch",
    "keep_running",
    "run_demo_traffic",
    "run_fans",
    "run_match",
    "run_player",
    "run_queue_bot",
    "run_tournaments",
]

log = logging.getLogger(__name__)

RETRY_SECONDS = 3.0


async def run_demo_traffic(
    gateway: Gateway,
    interval: float = 1.0,
    *,
    api: tuple[str, str] | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Run the simulator against the server at ``api`` (base URL, API key) until cancelled.

    ``announce`` is told, in a line for people, each tournament and match as it goes live
    (its id and channel), so the banner can say what to watch.
    """
    if api is None:
        raise ValueError("the demo drives the server over its API: pass api=(url, key)")
    backend = Backend(*api, gateway.settings.jwt_secret)
    rng = random.Random()
    live = LiveMatch()
    say = announce or (lambda line: log.info("%s", line))
    parts: dict[str, Callable[[], Awaitable[None]]] = {
        "tournaments": lambda: run_tournaments(backend, rng, interval, announce=say),
        "cricket match": lambda: run_match(backend, rng, live, interval, announce=say),
        "player p1": lambda: run_player(backend, rng, 2.5 * interval),
        "lobby": lambda: _jackpot(backend, rng, 2 * interval),
    }
    for fan in FANS:
        parts[f"fan {fan}"] = lambda fan=fan: run_fans(backend, rng, live, fan)  # type: ignore[misc]
    for bot in QUEUE_BOTS:
        parts[f"queue bot {bot}"] = lambda bot=bot: run_queue_bot(backend, rng, bot)  # type: ignore[misc]
    try:
        async with asyncio.TaskGroup() as group:
            for name, part in parts.items():
                group.create_task(keep_running(name, part))
    finally:
        await backend.close()


async def keep_running(
    name: str, part: Callable[[], Awaitable[None]], retry: float = RETRY_SECONDS
) -> None:
    """Run ``part`` again and again: a failure is logged and retried, never spread."""
    while True:
        try:
            await part()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("demo %s failed (%s: %s); again in %.0f s",
                        name, type(exc).__name__, exc, retry)  # fmt: skip
        await asyncio.sleep(retry)


async def _jackpot(backend: Backend, rng: random.Random, interval: float) -> None:
    amount = 125_000.0
    while True:
        await asyncio.sleep(interval)
        amount += rng.uniform(1, 40)
        body = {"channel": "lobby", "type": "jackpot.updated", "data": {"amount": round(amount, 2)}}
        await backend.call("POST", "/api/v1/publish", body)
