"""Matchmaking end to end: players queue over WebSocket, are matched, play the sample game
in their room to a result that lands on the leaderboard; the HTTP form; time-outs; brackets."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.support import API_KEY, ServerProcess, token

from .roomclient import Player
from .wsclient import http

pytestmark = pytest.mark.e2e
BRAND = "1001"
H = {"Authorization": f"Bearer {API_KEY}"}


async def connect(session: aiohttp.ClientSession, server: ServerProcess, name: str) -> Player:
    ws = await session.ws_connect(f"{server.ws_url}?token={token(name, brand=BRAND)}")
    p = Player(ws, name)
    await p.wait_type("connected")
    await p.send({"type": "subscribe", "channel": f"player:{BRAND}:{name}", "id": 1})
    await p.wait_type("subscribed")
    return p


async def play_out(room_players: dict[str, Player], room_id: str) -> dict[str, object]:
    """Every player takes one stone whenever asked, until the game is over."""
    watcher = next(iter(room_players.values()))
    answered: set[int] = set()
    while True:
        doc = await watcher.wait(
            lambda d: (
                d.get("type") == "game.finished"
                or (d.get("type") == "player.action.required" and d["offset"] not in answered)
            )
        )
        if doc["type"] == "game.finished":
            data: dict[str, object] = doc["data"]
            return data
        answered.add(doc["offset"])
        who = doc["data"]["playerId"]
        await room_players[who].publish(
            f"room:{room_id}",
            "player.action",
            {"action": "take", "playerId": who, "timestamp": "now", "data": {"count": 1}},
        )


async def test_players_queue_over_websocket_play_and_land_on_the_leaderboard(
    server: ServerProcess, session: aiohttp.ClientSession, api: httpx.AsyncClient
) -> None:
    r = await api.put(
        "/api/v1/matchmaking/queues/quick",
        json={
            "game": "nim",
            "groupSize": 2,
            "options": {"pile": 3, "rounds": 3, "leaderboard": "nim-weekly"},
        },
    )
    assert r.status_code == 200, r.text
    ann, bob = await connect(session, server, "ann"), await connect(session, server, "bob")
    await ann.publish(f"player:{BRAND}:ann", "matchmaking.join", {"mode": "quick"})
    queued = await ann.wait_type("matchmaking.queued")
    assert queued["data"]["position"] == 1
    await bob.publish(f"player:{BRAND}:bob", "matchmaking.join", {"mode": "quick"})
    matched = [await p.wait_type("matchmaking.matched") for p in (ann, bob)]
    room_id = matched[0]["data"]["roomId"]
    assert matched[0]["data"]["matchId"] == matched[1]["data"]["matchId"]
    assert sorted(matched[0]["data"]["players"]) == ["ann", "bob"]

    seats = {}
    for name in ("ann", "bob"):
        ws = await session.ws_connect(
            f"{server.ws_url}/room/{room_id}?token={token(name, brand=BRAND)}"
        )
        seats[name] = Player(ws, name)
        await seats[name].wait(lambda d: d.get("type") == "subscribed" and d["id"] == "room")
    # The game started before anyone connected: its turn is in the room's state, and each
    # seat replays the room's events from the start (the first turn's request among them).
    room = (await api.get(f"/api/v1/rooms/{room_id}")).json()
    assert room["status"] == "playing"
    replayed = await seats["bob"].wait_type("player.action.required")
    assert replayed["data"]["playerId"] == room["turn"]["playerId"]
    result = await play_out(seats, room_id)
    # Pile 3, one stone at a time: whoever moves first in a round takes the last stone.
    assert result["winner"] in ("ann", "bob")
    assert result["results"][0]["score"] == 2  # type: ignore[index]
    ended = seats["ann"].events("game.round.ended")
    assert [e["data"]["round"] for e in ended] == list(range(1, len(ended) + 1))
    assert seats["ann"].events("leaderboard.updated")

    async def on_board() -> dict[str, object]:
        while True:
            board = (await api.get("/api/v1/leaderboards/nim-weekly")).json()
            if board["size"] == 2:
                return board  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)

    board = await asyncio.wait_for(on_board(), 10)
    top = board["entries"][0]  # type: ignore[index]
    assert top["player"] == result["winner"]
    assert top["score"] == 2


async def test_self_queued_players_are_rated_from_the_queues_rating_board(
    server: ServerProcess, session: aiohttp.ClientSession, api: httpx.AsyncClient
) -> None:
    r = await api.put(
        "/api/v1/matchmaking/queues/ranked",
        json={"window": 50, "widenBy": 0, "maxWindow": 50, "ratingBoard": "elo"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["ratingBoard"] == "elo"
    for player, score in (("ann", 1000), ("bob", 2000), ("cid", 1010)):
        r = await api.post(
            "/api/v1/leaderboards/elo/scores", json={"player": player, "score": score}
        )
        assert r.status_code == 200, r.text
    players = {name: await connect(session, server, name) for name in ("ann", "bob", "cid")}
    for name, p in players.items():
        await p.publish(f"player:{BRAND}:{name}", "matchmaking.join", {"mode": "ranked"})
        await p.wait_type("matchmaking.queued")
    matched = await players["ann"].wait_type("matchmaking.matched")
    assert sorted(matched["data"]["players"]) == ["ann", "cid"]
    queued = players["bob"].events("matchmaking.queued")[-1]
    ticket = (await api.get(f"/api/v1/matchmaking/tickets/{queued['data']['ticketId']}")).json()
    assert ticket["status"] == "waiting"
    assert ticket["rating"] == 2000


async def test_the_http_form_answers_waiting_then_matched(api: httpx.AsyncClient) -> None:
    url = "/api/v1/matchmaking"
    first = await api.post(url, json={"username": "cat", "rating": 1500})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "Waiting"
    assert first.json()["position"] == 1
    again = (await api.post(url, json={"username": "cat", "rating": 1500})).json()
    assert again["ticketId"] == first.json()["ticketId"]
    second = (await api.post(url, json={"username": "dog", "rating": 1540})).json()
    assert second["status"] == "Matched"
    assert sorted(p["username"] for p in second["players"]) == ["cat", "dog"]
    cat = (await api.post(url, json={"username": "cat"})).json()
    assert cat["status"] == "Matched"
    assert cat["roomId"] == second["roomId"]
    room = (await api.get(f"/api/v1/rooms/{second['roomId']}")).json()
    assert room["status"] == "playing"
    bad = await api.post(url, json={"username": "a b"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"]


async def test_tickets_time_out_and_cancel(
    server: ServerProcess, session: aiohttp.ClientSession, api: httpx.AsyncClient
) -> None:
    r = await api.put(
        "/api/v1/matchmaking/queues/lonely",
        json={"game": "nim", "groupSize": 3, "timeout": 1.0},
    )
    assert r.status_code == 200, r.text
    eve = await connect(session, server, "eve")
    await eve.publish(f"player:{BRAND}:eve", "matchmaking.join", {"mode": "lonely"})
    queued = await eve.wait_type("matchmaking.queued")
    where = await eve.wait_type("matchmaking.position", ticketId=queued["data"]["ticketId"])
    assert where["data"]["position"] == 1
    assert "offset" not in where  # positions are live only
    timed_out = await eve.wait_type("matchmaking.timeout")
    assert timed_out["data"]["ticketId"] == queued["data"]["ticketId"]
    t = (await api.get(f"/api/v1/matchmaking/tickets/{queued['data']['ticketId']}")).json()
    assert t["status"] == "timed_out"

    await eve.publish(f"player:{BRAND}:eve", "matchmaking.join", {"mode": "default"})
    queued = await eve.wait_type("matchmaking.queued", mode="default")
    await eve.publish(f"player:{BRAND}:eve", "matchmaking.cancel", {"mode": "default"})
    cancelled = await eve.wait_type("matchmaking.cancelled")
    assert cancelled["data"]["ticketId"] == queued["data"]["ticketId"]
    again = await api.delete(f"/api/v1/matchmaking/tickets/{queued['data']['ticketId']}")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_state"
    await eve.publish(f"player:{BRAND}:eve", "matchmaking.join", {"mode": "nope"})
    error = await eve.wait_type("error")
    assert error["data"]["code"] == "not_found"
    # Another player's channel is not a way to queue them.
    await eve.publish(f"player:{BRAND}:bob", "matchmaking.join", {})
    refused = await eve.wait(lambda d: d.get("type") == "error" and "channel" not in d)
    assert refused["code"] == "forbidden"


async def test_brackets_over_http_publish_bracket_updated(
    server: ServerProcess, session: aiohttp.ClientSession, api: httpx.AsyncClient
) -> None:
    watcher = Player(
        await session.ws_connect(f"{server.ws_url}?token={token('w', brand=BRAND)}"), "w"
    )
    await watcher.send({"type": "subscribe", "channel": "tournament:cup-1", "id": 1})
    await watcher.wait_type("subscribed")
    players = [{"playerId": f"p{i}", "rating": 2000 - i} for i in range(1, 6)]
    r = await api.post(
        "/api/v1/brackets",
        json={"id": "cup-1", "tournamentId": "cup-1", "players": players},
    )
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["size"] == 8
    assert b["seeds"][0] == "p1"
    byes = [m for m in b["rounds"][0] if m["bye"]]
    assert sorted(m["winner"] for m in byes) == ["p1", "p2", "p3"]
    update = await watcher.wait_type("bracket.updated")
    assert update["data"]["version"] == 1
    played = next(m for m in b["rounds"][0] if not m["bye"])
    r = await api.post(
        "/api/v1/brackets/cup-1/results",
        json={"matchId": played["matchId"], "winner": played["players"][1]},
    )
    assert r.status_code == 200, r.text
    assert played["players"][1] in r.json()["rounds"][1][played["index"] // 2]["players"]
    await watcher.wait_type("bracket.updated", version=2)
    wrong = await api.post(
        "/api/v1/brackets/cup-1/results",
        json={"matchId": played["matchId"], "winner": played["players"][0]},
    )
    assert wrong.status_code == 409
    odd = await api.post("/api/v1/brackets", json={"players": players[:3], "randomSeed": 7})
    assert odd.status_code == 200
    assert odd.json()["size"] == 4
    got = (await api.get("/api/v1/brackets/cup-1")).json()
    assert got["version"] == 2


async def test_a_match_whose_room_was_never_opened_gets_it_at_the_next_start(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "croupier.db").start()
    server.stop()
    # What a node leaves behind when it dies between a match and opening the room.
    with sqlite3.connect(tmp_path / "croupier-services.db") as db:
        for player, at in (("ann", 1.0), ("bob", 2.0)):
            db.execute(
                "INSERT INTO matchmaking_tickets (id, mode, player, brand, rating, properties, "
                "queued_at, status, match_id, room_id, players, updated_at) VALUES "
                "(?, 'default', ?, '1001', NULL, '[]', ?, 'matched', 'm-lost', 'm-lost', "
                '\'["ann","bob"]\', ?)',
                (f"t-{player}", player, time.time() - 10 + at, time.time()),
            )
    server.start()
    try:
        async with http(server) as api:
            room = await api.get("/api/v1/rooms/m-lost")
        assert room.status_code == 200, room.text
        assert room.json()["status"] == "playing"
        assert [p["playerId"] for p in room.json()["players"]] == ["ann", "bob"]
    finally:
        server.stop()
