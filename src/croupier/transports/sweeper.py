"""The rules of time for every connection: one sweep, not a timer per connection."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from ..appkeys import GATEWAY
from ..gateway import Gateway
from .connection import Connection

__all__ = ["sweep", "sweeper"]

log = logging.getLogger(__name__)


def sweep(gateway: Gateway) -> None:
    """One pass of the time rules over every connection of ``gateway``."""
    mono = time.monotonic()
    wall = time.time()
    for conn in list(gateway.connections):
        if isinstance(conn, Connection):
            conn.tick(mono, wall)


async def sweeper(app: web.Application) -> AsyncIterator[None]:
    """A cleanup context running :func:`sweep` while the application runs."""
    gateway: Gateway = app[GATEWAY]
    limits = gateway.settings.limits
    # Often enough that a deadline is met within a quarter interval (at most a second).
    period = min(1.0, limits.ping_interval / 4, limits.sse_keepalive / 4)

    async def forever() -> None:
        while True:
            await asyncio.sleep(period)
            try:
                sweep(gateway)
            except Exception:  # pragma: no cover - a bug here must not stop the sweeps
                log.exception("connection sweep failed")

    task = asyncio.get_running_loop().create_task(forever())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
