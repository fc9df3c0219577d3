"""The casino/game platform seed's tournament side, against a live server: a page that
subscribes to a running tournament late still gets the top 10 at once (what the seed's
``LeaderboardSync`` shows: ``tournamentId``, ``leaderboard[{playerId, score, position}]``,
``lastUpdated``); the HTTP leaderboard has the same names; a registered player who connects
late still gets ``tournament.connected``; and ``tournament_win`` has every field of the
player stream seed's example."""

from __future__ import annotations

import aiohttp
import httpx
import pytest

from tests.support import API_KEY, ServerProcess, token

from .test_tournaments import (
    BRAND,
    Seat,
    is_,
    ok,
    player_seat,
    running_tournament,
    score,
)

pytestmark = pytest.mark.e2e

# The player stream seed's tournament_win example, field by field.
SEED_WIN_FIELDS = {
    "tournament_id",
    "transaction_id",
    "tournament_name",
    "tournament_points",
    "tournament_start_date",
    "tournament_end_date",
    "tournament_position",
    "template_id",
    "prize_type",
    "player_id",
    "casino_id",
    "prize_value",
    "prize_name",
    "total_rounds",
    "total_bets",
    "total_wins",
    "timestamp",
}


async def test_a_late_subscriber_gets_the_top_10_at_once_with_the_push_s_field_names(
    server: ServerProcess, api: httpx.AsyncClient, session: aiohttp.ClientSession
) -> None:
    players = [f"p{i:02}" for i in range(12)]
    tid = await running_tournament(api, players)
    for i, pid in enumerate(players):
        await score(api, tid, f"{pid}-1", pid, points=float(100 + i))
    # Nothing is scored after this page subscribes: what it shows comes from the subscribe.
    late = await player_seat(session, server, tid, "watcher")
    try:
        pushed = await late.wait(is_("leaderboard.updated", f"tournament:{tid}"))
    finally:
        await late.close()
    data = pushed["data"]
    assert data["tournamentId"] == tid
    assert isinstance(data["lastUpdated"], str)
    board = data["leaderboard"]
    assert len(board) == 10
    assert [(e["position"], e["playerId"], e["score"]) for e in board[:2]] == [
        (1, "p11", 111),
        (2, "p10", 110),
    ]
    assert board[0]["displayName"] == "Player p11"

    http_board = await ok(await api.get(f"/api/v1/leaderboards/tournament:{tid}?limit=10"))
    assert [
        {k: e[k] for k in ("position", "playerId", "displayName", "score")}
        for e in http_board["entries"]
    ] == board


async def ann_second_to_bob(api: httpx.AsyncClient) -> tuple[str, dict[str, object]]:
    """A running tournament where ann stands 2nd, and her ``tournament.connected`` data."""
    tid = await running_tournament(api, ["ann", "bob"])
    await score(api, tid, "bob-1", "bob", points=50.0)
    await score(api, tid, "ann-1", "ann", points=20.0)
    return tid, {
        "tournamentId": tid,
        "playerId": "ann",
        "status": "active",
        "playerInfo": {"displayName": "Player ann", "position": 2, "entryCount": 1},
    }


async def test_a_registered_player_who_connects_later_gets_tournament_connected(
    server: ServerProcess, api: httpx.AsyncClient, session: aiohttp.ClientSession
) -> None:
    tid, expected = await ann_second_to_bob(api)
    ann = await player_seat(session, server, tid, "ann")  # long after registering
    try:
        hello = await ann.wait(is_("tournament.connected", f"player:{BRAND}:ann"))
    finally:
        await ann.close()
    assert hello["data"] == expected


async def test_a_registered_player_who_subscribes_to_the_tournament_later_gets_connected(
    server: ServerProcess, api: httpx.AsyncClient, session: aiohttp.ClientSession
) -> None:
    """The seed's tournament socket is the tournament's channel alone, not the player's."""
    tid, expected = await ann_second_to_bob(api)
    channel = f"tournament:{tid}"

    async def subscribe(pid: str, brand: str = BRAND) -> Seat:
        ws = await session.ws_connect(server.ws_url, params={"token": token(pid, brand=brand)})
        seat = Seat(ws)
        await seat.send({"type": "subscribe", "channel": channel, "id": 1})
        await seat.wait(is_("subscribed", channel))
        return seat

    ann = await subscribe("ann")
    watcher = await subscribe("carol")  # not registered
    stranger = await subscribe("ann", brand="other-brand")  # another casino's ann
    try:
        hello = await ann.wait(is_("tournament.connected", channel))
        # Each sees the board (the subscribe's snapshot); only ann is greeted after it.
        for seat in (watcher, stranger):
            await seat.wait(is_("leaderboard.updated", channel))
    finally:
        for seat in (ann, watcher, stranger):
            await seat.close()
    assert hello["data"] == expected
    assert [d["type"] for d in ann.seen if d.get("channel") == channel][:3] == [
        "subscribed",
        "leaderboard.updated",
        "tournament.connected",
    ]
    assert watcher.events("tournament.connected") == []
    assert stranger.events("tournament.connected") == []


async def test_tournament_win_carries_every_field_of_the_seed_s_example(
    server: ServerProcess, api: httpx.AsyncClient, session: aiohttp.ClientSession
) -> None:
    prizes = [{"fromRank": 1, "toRank": 1, "amount": 100.0}]
    with_template = await running_tournament(api, ["ann"], prizes=prizes, templateId="1")
    without = await running_tournament(api, ["bob"], prizes=prizes)
    assert (await ok(await api.get(f"/api/v1/tournaments/{with_template}")))["templateId"] == "1"
    seats = {
        "ann": await player_seat(session, server, with_template, "ann"),
        "bob": await player_seat(session, server, without, "bob"),
    }
    try:
        for tid, pid in ((with_template, "ann"), (without, "bob")):
            await score(api, tid, f"{pid}-1", pid, points=10.0)
            await ok(await api.post(f"/api/v1/tournaments/{tid}/complete"))
        notes = {
            pid: (await s.wait(is_("notification", f"player:{BRAND}:{pid}")))["data"]
            for pid, s in seats.items()
        }
    finally:
        for s in seats.values():
            await s.close()
    for pid, template in (("ann", "1"), ("bob", None)):
        note = notes[pid]
        assert note["event"] == "tournament_win"
        details = note["event_details"]
        assert set(details) == SEED_WIN_FIELDS
        assert details["template_id"] == template
        assert details["tournament_position"] == 1
        assert details["prize_value"] == "100.00"
        assert details["casino_id"] == 1001


async def test_a_rebuy_request_reaches_its_sender_and_backend_listeners_only(
    server: ServerProcess, api: httpx.AsyncClient, session: aiohttp.ClientSession
) -> None:
    tid = await running_tournament(api, ["ann", "bob"], entryFee=5.0, maxEntries=2)
    channel = f"tournament:{tid}"
    listener = Seat(
        await session.ws_connect(
            server.url.replace("http", "ws") + f"/ws/tournaments/{tid}",
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
    )
    await listener.send({"type": "subscribe", "events": ["player.updates"], "id": 1})
    await listener.wait(is_("subscribed"))
    ann = await player_seat(session, server, tid, "ann")
    ann_tab = await player_seat(session, server, tid, "ann")  # a second tab of hers
    bob = await player_seat(session, server, tid, "bob")
    try:
        # A player asks for a rebuy on the tournament's channel.
        await ann.send(
            {"type": "publish", "channel": channel, "event": "rebuy.request", "data": {}}
        )
        mine = await ann.wait(is_("rebuy.request", channel))
        assert mine["data"]["from"] == {"id": "ann"}
        await ann_tab.wait(is_("rebuy.request", channel))
        heard = await listener.wait(is_("rebuy.request", channel))
        assert heard["data"]["from"] == {"id": "ann"}
        # The service's answer is public; the request fanned out before it, so by now bob
        # would have had the request if it had reached him.
        await bob.wait(is_("rebuy.requested", channel, playerId="ann"))
        assert bob.events("rebuy.request") == []
    finally:
        for s in (ann, ann_tab, bob, listener):
            await s.close()
    # Never stored: no history read (nor a resume, which reads the same log) shows it.
    history = await ok(await api.get(f"/api/v1/channels/{channel}/history"))
    assert "rebuy.request" not in [e["type"] for e in history["events"]]
