"""Seed clients on the compatibility WebSockets, sending exactly the seeds' messages and
reading exactly the fields they read (issue 13): seed 000's ``GameRoomWebSocket`` on
``/ws/room/{roomId}``, seed 002's viewer on ``/ws/events``; and ``since`` without an epoch
on ``/ws``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx
import pytest

from tests.support import ServerProcess, token

from .roomclient import Player
from .test_sports import live_match
from .wsclient import WsClient, publish

pytestmark = pytest.mark.e2e

# The cases of the seed's switch (message.type), each read as message.data.
SEED_ROOM_TYPES = {
    "room.state",
    "game.round.started",
    "game.round.ended",
    "player.action.required",
    "leaderboard.updated",
}


def _seed_action(player: str, action: str, data: dict[str, Any]) -> dict[str, Any]:
    """What ``GameRoomWebSocket.sendGameAction`` sends."""
    return {
        "type": "player.action",
        "action": action,
        "playerId": player,
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "data": data,
    }


async def _seed_room_socket(
    session: aiohttp.ClientSession, server: ServerProcess, room: str, player: str
) -> Player:
    """``new WebSocket(`…/ws/room/${roomId}?token=${jwtToken}`)``."""
    ws = await session.ws_connect(f"{server.url}/ws/room/{room}?token={token(player)}")
    p = Player(ws, player)
    await p.wait(lambda d: d.get("type") == "subscribed" and d.get("id") == "room")
    return p


async def test_game_room_socket_of_seed_000(
    server: ServerProcess, session: aiohttp.ClientSession, api: httpx.AsyncClient
) -> None:
    # Seated without a brand: refusals then travel on the room's own channel.
    created = await api.post(
        "/api/v1/rooms",
        json={
            "id": "seed-room",
            "game": "nim",
            "players": [{"playerId": "ann"}, {"playerId": "bob"}],
            "options": {"pile": 3, "maxTake": 3, "rounds": 2},
            "start": True,
        },
    )
    assert created.status_code == 200, created.text
    ann = await _seed_room_socket(session, server, "seed-room", "ann")
    bob = await _seed_room_socket(session, server, "seed-room", "bob")

    await ann.send({"type": "ping"})
    await ann.wait(lambda d: d.get("type") == "pong")

    # Bob out of turn: told so; ann never sees it, as an action or as an error.
    await bob.send(_seed_action("bob", "take", {"count": 1}))
    refused = await bob.wait_type("error", code="not_your_turn")
    assert refused["data"]["playerId"] == "bob"
    # A playerId that is not the token's is refused before it reaches the room.
    await bob.send(_seed_action("ann", "take", {"count": 1}))
    await bob.wait(lambda d: d.get("type") == "error" and d.get("code") == "not_your_player")

    # Ann takes the whole pile: round 1 is hers, and round 2 starts.
    await ann.send(_seed_action("ann", "take", {"count": 3}))
    for p in (ann, bob):
        moved = await p.wait_type("room.state", seq=1)
        assert moved["data"]["changes"]["pile"]["value"] == 0
        assert moved["data"]["action"]["playerId"] == "ann"
        await p.wait_type("game.round.ended", round=1)
        await p.wait_type("game.round.started", round=2)
        # The new round's board arrives as room.state, the one type a simple client applies.
        board = await p.wait_type("room.state", round=2)
        assert board["data"]["changes"]["pile"]["value"] == 3
        await p.wait_type("player.action.required", round=2)
    for p in (ann, bob):
        for message in p.seen:
            if message.get("type") in SEED_ROOM_TYPES:
                assert isinstance(message.get("data"), dict), message
    for p in (ann, bob):
        others = [
            m
            for m in p.seen
            if m.get("type") == "player.action" and m["data"]["from"]["id"] != p.name
        ]
        assert not others, f"{p.name} saw another player's raw action"
    assert not [m for m in ann.seen if m.get("type") == "error"]


async def _ball(api: httpx.AsyncClient, event_id: str, n: int) -> None:
    update = {
        f"ball {n}": f"{n}/0",
        "comment": f"ball {n}",
        "batsman": {"name": "rohit", "runs": str(n), "balls": str(n)},
        "bowler": {
            "name": "yuvi",
            "overs": f"0.{n}",
            "runs": str(n),
            "maiden": "0",
            "wickets": "0",
        },
    }
    response = await api.post(f"/api/v1/sports/events/{event_id}/updates", json=update)
    assert response.status_code == 200, response.text


async def _viewer(
    session: aiohttp.ClientSession, server: ServerProcess, join: dict[str, Any]
) -> WsClient:
    ws = await session.ws_connect(f"{server.url}/ws/events?token={token(str(join['id']))}")
    client = WsClient(ws)
    await client.expect("connected")
    await client.send(join)
    return client


async def _until(
    client: WsClient, kind: str, seen: list[dict[str, Any]], seconds: float = 10
) -> dict[str, Any]:
    """The next message of type ``kind``; what comes before it is kept in ``seen``."""
    while True:
        doc = await client.recv(seconds)
        seen.append(doc)
        if doc.get("type") == kind:
            return doc


async def test_sports_viewer_of_seed_002_reacts_and_resumes(
    server: ServerProcess, session: aiohttp.ClientSession, api: httpx.AsyncClient
) -> None:
    await live_match(api, "seed-final")
    seen: list[dict[str, Any]] = []
    viewer = await _viewer(session, server, {"id": "fan1", "eventId": "seed-final"})
    await _until(viewer, "joined", seen)
    await _until(viewer, "snapshot", seen)

    # The seed's reaction exactly as its example shows: no type, its id is the viewer's own.
    await viewer.send({"id": "fan1", "emoji": ":)", "comment": "lesssgoooo"})
    summary = await _until(viewer, "reactions.summary", seen)
    assert summary["data"]["total"] >= 1
    await viewer.send({"id": "someone-else", "emoji": "🔥", "comment": "impostor"})
    assert (await _until(viewer, "error", seen))["code"] == "not_your_viewer"

    await _ball(api, "seed-final", 1)
    first = await _until(viewer, "score.updated", seen)
    await viewer.ws.close()

    await _ball(api, "seed-final", 2)
    await _ball(api, "seed-final", 3)
    # Back where it was (an offset alone: the channel's current epoch).
    again: list[dict[str, Any]] = []
    back = await _viewer(
        session,
        server,
        {"id": "fan1", "eventId": "seed-final", "since": {"offset": first["offset"]}},
    )
    joined = await _until(back, "joined", again)
    assert joined["recovered"] is True
    missed = [await _until(back, "score.updated", again) for _ in range(2)]
    assert [m["data"]["seq"] for m in missed] == [2, 3]
    assert missed[0]["offset"] < missed[1]["offset"]
    assert not [m for m in again if m.get("type") in ("snapshot", "error")]


async def test_since_without_an_epoch_means_the_current_epoch_on_ws(
    server: ServerProcess, session: aiohttp.ClientSession, api: httpx.AsyncClient
) -> None:
    first = await publish(api, "tournament:seed-since", "tick", {"n": 1})
    await publish(api, "tournament:seed-since", "tick", {"n": 2})
    ws = await session.ws_connect(f"{server.ws_url}?token={token('p1')}")
    client = WsClient(ws)
    await client.expect("connected")
    await client.send(
        {
            "type": "subscribe",
            "channel": "tournament:seed-since",
            "since": {"offset": first["offset"]},
            "id": 1,
        }
    )
    seen: list[dict[str, Any]] = []
    subscribed = await _until(client, "subscribed", seen)
    assert subscribed["recovered"] is True
    replayed = await _until(client, "tick", seen)
    assert replayed["data"] == {"n": 2}
    await client.ws.close()
