"""Leaderboards over real server processes: the HTTP API, a WebSocket subscriber receiving
``leaderboard.updated``, a restart, and two nodes on one PostgreSQL database and Redis."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.services import fresh_postgres_database
from tests.support import ServerProcess, timeout, token

from .cluster import cluster, private_redis
from .wsclient import http, ws_connect

pytestmark = pytest.mark.e2e

BOARD = "tournament:lb-e2e"


async def _submit(
    api: httpx.AsyncClient, player: str, score: float, **extra: object
) -> dict[str, Any]:
    response = await api.post(
        f"/api/v1/leaderboards/{BOARD}/scores", json={"player": player, "score": score, **extra}
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_http_api_and_a_websocket_subscriber(server: ServerProcess) -> None:
    async with http(server) as api, ws_connect(server, token("viewer")) as ws:
        await ws.subscribe(BOARD)
        response = await api.put(
            f"/api/v1/leaderboards/{BOARD}/watch",
            json={"channel": BOARD, "tournament_id": 7},
        )
        assert response.json() == {"board": BOARD, "watching": True, "channel": BOARD}
        await _submit(api, "p1", 100, display_name="Ann", achieved_at=1000.0)
        reply = await _submit(api, "p2", 100, display_name="Bob", achieved_at=999.0)
        assert reply["entry"]["rank"] == 1  # same score, got there first
        for i in range(50):  # a burst: coalesced
            await _submit(api, f"q{i}", i, mode="add")
        assert (await _submit(api, "p1", 5, mode="add"))["entry"]["rank"] == 1

        last = None
        deadline = asyncio.get_running_loop().time() + timeout(5)
        while asyncio.get_running_loop().time() < deadline:
            doc = await ws.expect("leaderboard.updated")
            last = doc["data"]
            if last["leaderboard"][0]["score"] == 105:
                break
        assert last is not None
        assert last["tournamentId"] == 7
        assert last["leaderboard"][:2] == [
            {"position": 1, "playerId": "p1", "displayName": "Ann", "score": 105},
            {"position": 2, "playerId": "p2", "displayName": "Bob", "score": 100},
        ]
        assert len(last["leaderboard"]) == 10
        assert last["lastUpdated"].endswith("Z")

        top = (await api.get(f"/api/v1/leaderboards/{BOARD}", params={"limit": 3})).json()
        assert top["size"] == 52
        assert [e["player"] for e in top["entries"]] == ["p1", "p2", "q49"]
        mine = (
            await api.get(f"/api/v1/leaderboards/{BOARD}/players/q40", params={"around": 1})
        ).json()
        assert mine["entry"]["rank"] == 12
        assert [e["rank"] for e in mine["around"]] == [11, 12, 13]

        missing = await api.get(f"/api/v1/leaderboards/{BOARD}/players/nobody")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        bad = await api.post("/api/v1/leaderboards/a%20b/scores", json={"player": "p", "score": 1})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "bad_board"
        wrong = await api.post(
            f"/api/v1/leaderboards/{BOARD}/scores", json={"player": "p", "score": 1, "mode": "x"}
        )
        assert wrong.status_code == 400

    server.restart()
    async with http(server) as api:
        again = (await api.get(f"/api/v1/leaderboards/{BOARD}", params={"limit": 3})).json()
        assert again == top


async def test_two_nodes_answer_the_same_ranks(tmp_path: Path) -> None:
    with (
        fresh_postgres_database("croupier_lb") as database_url,
        private_redis(tmp_path) as redis,
    ):
        env = {"CROUPIER_DATABASE_URL": database_url, "CROUPIER_BROKER_URL": redis.url}
        with cluster(tmp_path, 2, env) as nodes:
            apis = [http(node) for node in nodes]
            try:
                rnd = random.Random(5)
                # Each node loads the board before the burst, so both hold replicas.
                for api in apis:
                    await api.get(f"/api/v1/leaderboards/{BOARD}")
                gate = asyncio.Semaphore(32)

                async def one(i: int) -> None:
                    async with gate:
                        await _submit(apis[i % 2], f"p{rnd.randrange(40)}", i % 11, mode="add")

                await asyncio.gather(*(one(i) for i in range(600)))
                # Replicas catch up through the broker: both nodes soon answer the same.
                deadline = asyncio.get_running_loop().time() + timeout(5)
                while True:
                    boards = [
                        (
                            await api.get(f"/api/v1/leaderboards/{BOARD}", params={"limit": 40})
                        ).json()
                        for api in apis
                    ]
                    if boards[0] == boards[1]:
                        break
                    assert asyncio.get_running_loop().time() < deadline, boards
                    await asyncio.sleep(0.05)
                assert boards[0]["size"] == 40
                assert sum(e["score"] for e in boards[0]["entries"]) == sum(
                    i % 11 for i in range(600)
                )
                for player in ("p0", "p7", "p39"):
                    places = [
                        (await api.get(f"/api/v1/leaderboards/{BOARD}/players/{player}")).json()
                        for api in apis
                    ]
                    assert places[0]["entry"] == places[1]["entry"]
            finally:
                for api in apis:
                    await api.aclose()
