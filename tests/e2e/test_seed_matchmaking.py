"""The WebSocket tutorial seed's matchmaking, against a live server: its HTTP body
``{"username"}`` and the answers it reads (``status``, ``message``, ``players[].id`` and
``.username``); and no player queued into a second match while one is in play, on any path."""

from __future__ import annotations

import aiohttp
import httpx
import pytest

from tests.support import ServerProcess

from .test_matchmaking import BRAND, connect

pytestmark = pytest.mark.e2e
URL = "/api/v1/matchmaking"


async def test_the_seed_s_two_curl_joins_answer_waiting_then_matched(
    api: httpx.AsyncClient,
) -> None:
    first = await api.post(URL, json={"username": "Player1"})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "Waiting"
    assert isinstance(first.json()["message"], str)
    assert first.json()["message"]
    second = await api.post(URL, json={"username": "12345"})
    assert second.status_code == 200, second.text
    body = second.json()
    assert body["status"] == "Matched"
    players = sorted(body["players"], key=lambda p: p["username"])
    # Ids that are digits are numbers, as on the player stream.
    assert players == [{"id": 12345, "username": "12345"}, {"id": "Player1", "username": "Player1"}]


async def test_a_matched_player_joining_again_over_websocket_is_not_matched_twice(
    server: ServerProcess, session: aiohttp.ClientSession, api: httpx.AsyncClient
) -> None:
    r = await api.put("/api/v1/matchmaking/queues/quick", json={"game": "nim", "groupSize": 2})
    assert r.status_code == 200, r.text
    ann, bob, cid = [await connect(session, server, n) for n in ("ann", "bob", "cid")]
    await ann.publish(f"player:{BRAND}:ann", "matchmaking.join", {"mode": "quick"})
    await ann.wait_type("matchmaking.queued")
    await bob.publish(f"player:{BRAND}:bob", "matchmaking.join", {"mode": "quick"})
    first = await ann.wait_type("matchmaking.matched")
    match_id = first["data"]["matchId"]

    # Ann's match is in play: joining again, in this mode or another, answers it.
    for mode in ("quick", "default"):
        await ann.publish(f"player:{BRAND}:ann", "matchmaking.join", {"mode": mode})
    await cid.publish(f"player:{BRAND}:cid", "matchmaking.join", {"mode": "quick"})
    queued = await cid.wait_type("matchmaking.queued")
    await ann.wait(lambda d: len(ann.events("matchmaking.matched")) == 3)
    assert {e["data"]["matchId"] for e in ann.events("matchmaking.matched")} == {match_id}
    assert not ann.events("matchmaking.queued")[1:]  # the first join only

    # Over HTTP too: the same match for ann, and cid still waits (nobody to play with).
    again = (await api.post(URL, json={"username": "ann", "mode": "quick"})).json()
    assert (again["status"], again["matchId"]) == ("Matched", match_id)
    other_mode = (await api.post(URL, json={"username": "ann"})).json()
    assert (other_mode["status"], other_mode["matchId"]) == ("Matched", match_id)
    ticket = (await api.get(f"{URL}/tickets/{queued['data']['ticketId']}")).json()
    assert ticket["status"] == "waiting"
    assert not cid.events("matchmaking.matched")

    # Once ann's room is closed, she may queue again, and meets cid.
    closed = await api.post(f"/api/v1/rooms/{match_id}/close")
    assert closed.status_code == 200, closed.text
    ann_again = await connect(session, server, "ann")  # (joins are rate-limited per socket)
    await ann_again.publish(f"player:{BRAND}:ann", "matchmaking.join", {"mode": "quick"})
    second = await cid.wait_type("matchmaking.matched")
    assert second["data"]["matchId"] != match_id
    assert sorted(second["data"]["players"]) == ["ann", "cid"]


async def test_a_waiting_player_joining_again_keeps_one_ticket(api: httpx.AsyncClient) -> None:
    answers = [(await api.post(URL, json={"username": "eve"})).json() for _ in range(3)]
    assert {a["ticketId"] for a in answers} == {answers[0]["ticketId"]}
    assert all(a["status"] == "Waiting" for a in answers)
