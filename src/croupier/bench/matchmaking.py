"""``croupier bench matchmaking``: the matching pass and the room action round trip.

* **Matching pass**: :func:`croupier.core.matching.match_pass` over ``tickets`` waiting
  tickets (ratings around 1500, three regions, waits spread over the queue's timeout), in
  this process; each repetition gets a fresh set.
* **Room round trip**: against a real server, ``rooms`` Nim rooms of two players, each on
  ``GET /ws/room/{id}``. The player whose turn it is sends ``player.action``; the round trip
  is the time until that player receives the ``room.state`` that applies it. The rooms play
  at once, each one action at a time.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from ..config import Settings
from ..core.matching import QueueRules, Ticket, match_pass
from ..gateway import Gateway
from ..services.matchmaking import Matchmaking
from ..services.matchmaking import store as mm_store
from ..storage import database_from_url
from .measures import percentile
from .procstat import cpu_split
from .server import API_KEY, BenchServer

__all__ = ["run_match_pass", "run_room_actions", "run_service_pass"]


def _tickets(n: int, rules: QueueRules, now: float, rng: random.Random) -> list[Ticket]:
    regions = ("eu", "us", "asia")
    return [
        Ticket(
            f"t{i}",
            f"p{i}",
            now - rng.uniform(0, rules.timeout * 0.9),
            rng.gauss(1500, 300),
            (("region", rng.choice(regions)),),
        )
        for i in range(n)
    ]


def run_match_pass(tickets: int, repeat: int, seed: int = 1) -> dict[str, Any]:
    """Time ``repeat`` passes over ``tickets`` waiting tickets each."""
    rules = QueueRules(group_size=2, window=50, widen_by=25, widen_every=5, max_window=400)
    rng = random.Random(seed)
    times: list[float] = []
    cpu: list[float] = []
    matched = 0
    now = time.time()
    for _ in range(repeat):
        batch = _tickets(tickets, rules, now, rng)
        started, cpu_started = time.perf_counter(), time.process_time()
        result = match_pass(batch, rules, now)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
        matched += sum(len(g) for g in result.matches)
    return {
        "bench": "matchmaking.pass",
        "tickets": tickets,
        "passes": repeat,
        "matched_per_pass": matched // max(repeat, 1),
        "pass_ms_p50": round(statistics.median(times), 2),
        "pass_ms_max": round(max(times), 2),
        "pass_cpu_ms_p50": round(statistics.median(cpu), 2),
        "measured": "core.matching.match_pass in this process, fresh tickets each pass",
    }


async def run_service_pass(tickets: int, repeat: int, seed: int = 2) -> dict[str, Any]:
    """Time the matchmaking service's pass (read the waiting tickets from SQLite, match,
    write every ticket's new status in one transaction) over ``tickets`` tickets each time.

    No rooms are opened and no player is told (the tickets have no brand): this is the
    database and the rules, in process.
    """
    rules = QueueRules(group_size=2, window=50, widen_by=25, widen_every=5, max_window=400)
    rng = random.Random(seed)
    times: list[float] = []
    matched = 0
    with tempfile.TemporaryDirectory(prefix="croupier-bench-mm-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'services.db'}"
        async with (
            Gateway(Settings(database_url="memory://")) as gateway,
            database_from_url(url) as database,
            Matchmaking(gateway, database, pass_interval=3600.0) as service,
        ):
            await service.configure("bench", rules, "nim", {})
            for _ in range(repeat):
                await database.execute("DELETE FROM matchmaking_tickets")
                batch = _tickets(tickets, rules, time.time(), rng)
                async with database.transaction() as tx:
                    for t in batch:
                        await mm_store.insert_ticket(tx, "bench", t)
                started = time.perf_counter()
                result = await service.run_pass("bench")
                times.append((time.perf_counter() - started) * 1000)
                assert result is not None
                matched += sum(len(g) for g in result.matches)
    return {
        "bench": "matchmaking.service_pass",
        "tickets": tickets,
        "passes": repeat,
        "matched_per_pass": matched // max(repeat, 1),
        "service_pass_ms_p50": round(statistics.median(times), 2),
        "service_pass_ms_max": round(max(times), 2),
        "measured": "Matchmaking.run_pass on SQLite in this process: read, match, update",
    }


async def _play(
    session: aiohttp.ClientSession,
    server: BenchServer,
    room_id: str,
    actions: int,
    latencies: list[float],
) -> int:
    sockets = {}
    for who in ("a", "b"):
        player = f"{room_id}-{who}"
        ws = await session.ws_connect(
            f"{server.url.replace('http', 'ws', 1)}/ws/room/{room_id}?token={server.token(player)}"
        )
        sockets[player] = ws
    turn = f"{room_id}-a"
    done = 0
    for seq in range(actions):
        ws = sockets[turn]
        sent = time.perf_counter()
        await ws.send_str(
            '{"type":"publish","channel":"room:'
            + room_id
            + '","event":"player.action","data":{"action":"take","data":{"count":1}}}'
        )
        while True:
            message = await ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"room {room_id}: the socket closed ({message.type})")
            doc = orjson.loads(message.data)
            kind = doc.get("type")
            if kind == "room.state" and doc["data"]["seq"] == seq + 1:
                break
            if kind == "error":
                raise RuntimeError(f"room {room_id}: {doc}")
        latencies.append((time.perf_counter() - sent) * 1000)
        done += 1
        turn = f"{room_id}-b" if turn.endswith("-a") else f"{room_id}-a"
    for ws in sockets.values():
        await ws.close()
    return done


async def run_room_actions(server: BenchServer, rooms: int, actions: int) -> dict[str, Any]:
    """Play ``actions`` actions in each of ``rooms`` rooms; the round trip of each."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        for i in range(rooms):
            rid = f"bench-{i}"
            body = {
                "id": rid,
                "game": "nim",
                "players": [
                    {"playerId": f"{rid}-a", "brand": "1001"},
                    {"playerId": f"{rid}-b", "brand": "1001"},
                ],
                "options": {"pile": 1000, "maxTake": 3, "rounds": 1, "turnSeconds": 600},
                "start": True,
            }
            async with session.post(f"{server.url}/api/v1/rooms", json=body, headers=headers) as r:
                if r.status != 200:
                    raise RuntimeError(f"room {rid} not created: {await r.text()}")
        cpu_before = cpu_split(server.pid)
        started = time.perf_counter()
        counts = await asyncio.gather(
            *(_play(session, server, f"bench-{i}", actions, latencies) for i in range(rooms))
        )
        elapsed = time.perf_counter() - started
        cpu_after = cpu_split(server.pid)
    total = sum(counts)
    latencies.sort()
    cpu = sum(cpu_after) - sum(cpu_before)
    return {
        "bench": "matchmaking.room",
        "rooms": rooms,
        "actions": total,
        "actions_per_s": round(total / elapsed, 1),
        "room_rtt_ms_p50": round(percentile(latencies, 0.50), 2),
        "room_rtt_ms_p99": round(percentile(latencies, 0.99), 2),
        "server_cpu_us_per_action": round(cpu / total * 1e6, 1) if total else 0.0,
        "measured": "player.action sent -> room.state received, over /ws/room",
    }
