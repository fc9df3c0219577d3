"""The demo's Nim bots, in process: they play a room to its end and start the next."""

from __future__ import annotations

import asyncio

from croupier.config import Settings
from croupier.errors import NotFound
from croupier.gateway import Gateway
from croupier.services.leaderboards import Leaderboards
from croupier.services.rooms import Rooms, RoomStatus
from croupier.services.rooms.bots import run_nim_bots
from croupier.storage import SQLiteDatabase
from tests.support import timeout


async def test_the_bots_play_a_room_to_its_end_and_start_another() -> None:
    async with (
        Gateway(Settings(database_url="memory://")) as gateway,
        SQLiteDatabase(":memory:") as database,
        Leaderboards.shared(gateway, database),
        Rooms.shared(gateway, database) as rooms,
    ):
        bots = asyncio.get_running_loop().create_task(run_nim_bots(gateway, interval=0.01))
        try:
            async with asyncio.timeout(timeout(20)):
                while True:
                    await asyncio.sleep(0.02)
                    try:
                        await rooms.get("demo-1")
                    except NotFound:
                        continue
                    break
        finally:
            bots.cancel()
            await asyncio.gather(bots, return_exceptions=True)
        first, _ = await rooms.get("demo-0")
        assert first.status is RoomStatus.FINISHED
        assert first.seq > 0
