"""Game rooms end to end: turns checked, deadlines defaulted, and a room that survives a
SIGKILL of the server mid-game and plays on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.support import API_KEY, ServerProcess, token

from .roomclient import Player
from .wsclient import http

pytestmark = pytest.mark.e2e
BRAND = "1001"
H = {"Authorization": f"Bearer {API_KEY}"}


async def create(api: httpx.AsyncClient, room_id: str, **options: Any) -> dict[str, Any]:
    r = await api.post(
        "/api/v1/rooms",
        json={
            "id": room_id,
            "game": "nim",
            "players": [{"playerId": "ann", "brand": BRAND}, {"playerId": "bob", "brand": BRAND}],
            "options": options,
            "start": True,
        },
    )
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


async def seat(
    session: aiohttp.ClientSession, server: ServerProcess, room: str, who: str
) -> Player:
    ws = await session.ws_connect(f"{server.ws_url}/room/{room}?token={token(who, brand=BRAND)}")
    p = Player(ws, who)
    await p.wait(lambda d: d.get("type") == "subscribed" and d["id"] == "room")
    await p.wait(lambda d: d.get("type") == "subscribed" and d["id"] == "player")
    return p


async def take(p: Player, room: str, count: int) -> None:
    await p.publish(f"room:{room}", "player.action", {"action": "take", "data": {"count": count}})


async def test_out_of_turn_and_bad_actions_get_an_error_and_change_nothing(
    server: ServerProcess, session: aiohttp.ClientSession, api: httpx.AsyncClient
) -> None:
    await create(api, "r1", pile=7)
    ann, bob = await seat(session, server, "r1", "ann"), await seat(session, server, "r1", "bob")
    await take(bob, "r1", 1)  # ann moves first
    error = await bob.wait_type("error", code="not_your_turn")
    assert error["channel"] == f"player:{BRAND}:bob"
    await take(ann, "r1", 4)
    assert (await ann.wait_type("error"))["data"]["code"] == "invalid_action"
    await ann.publish("room:r1", "player.action", {"action": "fold", "data": {}})
    assert (await ann.wait_type("error", code="action_not_allowed"))["data"]["roomId"] == "r1"
    await ann.publish(
        "room:r1", "player.action", {"action": "take", "playerId": "bob", "data": {"count": 1}}
    )
    await ann.wait_type("error", code="not_your_player")
    await take(ann, "r1", 2)
    state = await bob.wait_type("room.state", seq=1)
    assert state["data"]["changes"]["pile"]["value"] == 5
    assert state["data"]["action"]["playerId"] == "ann"
    assert not bob.events("error")[1:], "bob got only his own error"
    assert not [e for e in ann.events("error") if e["data"]["playerId"] != "ann"]


async def test_a_missed_deadline_plays_the_default_action(
    server: ServerProcess, session: aiohttp.ClientSession, api: httpx.AsyncClient
) -> None:
    await create(api, "r2", pile=7, turnSeconds=0.5)
    ann = await seat(session, server, "r2", "ann")
    state = await ann.wait_type("room.state", seq=1)
    assert state["data"]["action"]["default"] is True
    assert state["data"]["action"]["playerId"] == "ann"
    assert state["data"]["changes"]["pile"]["value"] == 6  # the default takes one
    required = await ann.wait_type("player.action.required", playerId="bob")
    assert required["data"]["actions"] == ["take"]
    assert required["data"]["default"] == {"action": "take", "data": {"count": 1}}


async def test_only_the_rooms_players_connect_to_it(api: httpx.AsyncClient) -> None:
    await create(api, "r3")
    url = "/ws/room/r3"
    assert (await api.get(url, params={"token": token("eve", brand=BRAND)})).status_code == 403
    assert (await api.get(url, params={"token": "nonsense"})).status_code == 401
    nope = await api.get("/ws/room/nope", params={"token": token("ann")})
    assert nope.status_code == 404
    info = await api.get(url, params={"token": token("ann", brand=BRAND)})
    assert info.status_code == 200
    assert info.json()["channel"] == "room:r3"


async def test_a_room_survives_a_sigkill_and_the_game_goes_on(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    server = ServerProcess(tmp_path / "croupier.db").start()
    api = http(server)
    try:
        await create(api, "r4", pile=9, rounds=1)
        ann, bob = (
            await seat(session, server, "r4", "ann"),
            await seat(session, server, "r4", "bob"),
        )
        await take(ann, "r4", 3)
        await bob.wait_type("room.state", seq=1)
        await take(bob, "r4", 2)
        await ann.wait_type("room.state", seq=2)
        # Both moves came after the last snapshot (made at the start): only the log has them.
        server.kill()
        await ann.close()
        await bob.close()
        server.start()
        room = (await api.get("/api/v1/rooms/r4")).json()
        assert room["status"] == "playing"
        assert room["seq"] == 2
        assert room["state"]["pile"]["value"] == 4
        assert room["turn"]["playerId"] == "ann"
        assert "room r4 restored at step 2 (2 replayed)" in server.output()
        ann, bob = (
            await seat(session, server, "r4", "ann"),
            await seat(session, server, "r4", "bob"),
        )
        await take(bob, "r4", 1)
        await bob.wait_type("error", code="not_your_turn")
        await take(ann, "r4", 3)
        await bob.wait_type("room.state", seq=3)
        await take(bob, "r4", 1)
        finished = await ann.wait_type("game.finished")
        assert finished["data"]["winner"] == "bob"
        await take(ann, "r4", 1)
        late = await ann.wait_type("error", code="not_playing")
        assert late["data"]["roomId"] == "r4"
        final = (await api.get("/api/v1/rooms/r4")).json()
        assert final["status"] == "finished"
        assert final["state"]["pile"]["value"] == 0
    finally:
        await api.aclose()
        server.stop()
