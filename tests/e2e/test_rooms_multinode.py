"""Rooms and matchmaking on two nodes sharing PostgreSQL and Redis: players on one node, the
room applied by the other; a killed owner's room taken over and played on; players queued on
different nodes matched together."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.services import fresh_postgres_database
from tests.support import ServerProcess, token

from .cluster import RedisServer, cluster, private_redis
from .roomclient import Player
from .wsclient import http

pytestmark = pytest.mark.e2e
BRAND = "1001"


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[ServerProcess]]:
    with (
        fresh_postgres_database("croupier_rooms") as database,
        private_redis(tmp_path) as redis,
    ):
        assert isinstance(redis, RedisServer)
        env = {"CROUPIER_DATABASE_URL": database, "CROUPIER_BROKER_URL": redis.url}
        with cluster(tmp_path, 2, env) as servers:
            yield servers


async def seat(session: aiohttp.ClientSession, node: ServerProcess, room: str, who: str) -> Player:
    ws = await session.ws_connect(f"{node.ws_url}/room/{room}?token={token(who, brand=BRAND)}")
    p = Player(ws, who)
    await p.wait(lambda d: d.get("type") == "subscribed" and d["id"] == "player")
    return p


async def take(p: Player, room: str, count: int) -> None:
    await p.publish(f"room:{room}", "player.action", {"action": "take", "data": {"count": count}})


async def test_a_room_is_played_across_nodes_and_survives_its_owner(
    nodes: list[ServerProcess], session: aiohttp.ClientSession
) -> None:
    owner, other = nodes
    async with http(owner) as api:
        r = await api.post(
            "/api/v1/rooms",
            json={
                "id": "mn-1",
                "players": [
                    {"playerId": "ann", "brand": BRAND},
                    {"playerId": "bob", "brand": BRAND},
                ],
                "options": {"pile": 20, "rounds": 1},
                "start": True,
            },
        )
        assert r.status_code == 200, r.text
    ann, bob = await seat(session, other, "mn-1", "ann"), await seat(session, other, "mn-1", "bob")
    await take(bob, "mn-1", 1)
    refused = await bob.wait_type("error", code="not_your_turn")
    assert refused["channel"] == f"player:{BRAND}:bob"
    await take(ann, "mn-1", 3)
    state = await bob.wait_type("room.state", seq=1)
    assert state["data"]["changes"]["pile"]["value"] == 17

    asked = await bob.wait_type("player.action.required", playerId="bob")
    owner.kill()  # the room's node dies; the other takes the room once the lease runs out
    # Actions sent while no node holds the room are lost; the new owner asks again.
    await bob.wait(
        lambda d: d.get("type") == "player.action.required" and d["offset"] > asked["offset"],
        seconds=40,
    )
    await take(bob, "mn-1", 2)
    moved = await ann.wait_type("room.state", seq=2)
    assert moved["data"]["changes"]["pile"]["value"] == 15
    assert moved["data"]["action"]["playerId"] == "bob"
    async with http(other) as api:
        room = (await api.get("/api/v1/rooms/mn-1")).json()
    assert room["seq"] == 2
    assert room["turn"]["playerId"] == "ann"


async def test_players_on_different_nodes_are_matched(
    nodes: list[ServerProcess], session: aiohttp.ClientSession
) -> None:
    players = []
    for node, name in zip(nodes, ("cat", "dog"), strict=True):
        ws = await session.ws_connect(f"{node.ws_url}?token={token(name, brand=BRAND)}")
        p = Player(ws, name)
        await p.send({"type": "subscribe", "channel": f"player:{BRAND}:{name}", "id": 1})
        await p.wait_type("subscribed")
        await p.publish(f"player:{BRAND}:{name}", "matchmaking.join", {})
        await p.wait_type("matchmaking.queued")
        players.append(p)
    matched = await asyncio.gather(*(p.wait_type("matchmaking.matched") for p in players))
    assert matched[0]["data"]["matchId"] == matched[1]["data"]["matchId"]
    assert sorted(matched[0]["data"]["players"]) == ["cat", "dog"]
    room_id = matched[0]["data"]["roomId"]
    # The room opened before the match was announced.
    async with http(nodes[0]) as api:
        room = (await api.get(f"/api/v1/rooms/{room_id}")).json()
    assert room["status"] == "playing"
