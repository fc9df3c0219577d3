"""Tournaments end to end, over a real server: 100 players on WebSocket from registration to
prizes, the rebuy round trip, concurrent confirmations, a crash mid-tournament, refunds."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from tests.support import API_KEY, ServerProcess, running_server, timeout, token

from .wsclient import http

pytestmark = pytest.mark.e2e

Doc = dict[str, Any]
BRAND = "1001"


class Seat:
    """One WebSocket connection that records every message it receives."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[Doc] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                self.seen.append(json.loads(message.data))
                self._changed.set()

    async def send(self, doc: Doc) -> None:
        await self.ws.send_str(json.dumps(doc))

    async def wait(self, found: Callable[[Doc], bool], seconds: float = 10.0) -> Doc:
        """The first message (already seen or still to come) for which ``found`` holds."""
        async with asyncio.timeout(timeout(seconds)):
            at = 0
            while True:
                for doc in self.seen[at:]:
                    if found(doc):
                        return doc
                at = len(self.seen)
                self._changed.clear()
                await self._changed.wait()

    def events(self, type: str, channel: str | None = None) -> list[Doc]:
        return [
            d
            for d in self.seen
            if d["type"] == type and (channel is None or d["channel"] == channel)
        ]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


def is_(type: str, channel: str | None = None, **data: Any) -> Callable[[Doc], bool]:
    def check(doc: Doc) -> bool:
        return (
            doc.get("type") == type
            and (channel is None or doc.get("channel") == channel)
            and all(doc.get("data", {}).get(k) == v for k, v in data.items())
        )

    return check


@contextlib.asynccontextmanager
async def seat(session: aiohttp.ClientSession, url: str, **kw: Any) -> AsyncIterator[Seat]:
    ws = await session.ws_connect(url, autoping=True, **kw)
    s = Seat(ws)
    try:
        yield s
    finally:
        await s.close()


async def player_seat(
    session: aiohttp.ClientSession,
    server: ServerProcess,
    tid: str,
    pid: str,
    since: Doc | None = None,
) -> Seat:
    ws = await session.ws_connect(server.ws_url, params={"token": token(pid, brand=BRAND)})
    s = Seat(ws)
    await s.wait(is_("connected"))
    for n, channel in enumerate((f"tournament:{tid}", f"player:{BRAND}:{pid}")):
        message: Doc = {"type": "subscribe", "channel": channel, "id": n}
        if since is not None and channel in since:
            message["since"] = since[channel]
        await s.send(message)
        await s.wait(lambda d, c=channel: d.get("type") == "subscribed" and d["channel"] == c)
    return s


async def ok(response: httpx.Response | asyncio.Future[httpx.Response]) -> Doc:
    r = await response if not isinstance(response, httpx.Response) else response
    assert r.status_code == 200, r.text
    doc: Doc = r.json()
    return doc


async def create(api: httpx.AsyncClient, **settings: Any) -> Doc:
    return await ok(await api.post("/api/v1/tournaments", json={"name": "Cup", **settings}))


async def register(api: httpx.AsyncClient, tid: str, pid: str) -> Doc:
    body = {"playerId": pid, "brand": BRAND, "displayName": f"Player {pid}"}
    return await ok(await api.post(f"/api/v1/tournaments/{tid}/players", json=body))


async def score(api: httpx.AsyncClient, tid: str, sid: str, pid: str, **values: float) -> Doc:
    body = {"submissionId": sid, "playerId": pid, **values}
    return await ok(await api.post(f"/api/v1/tournaments/{tid}/scores", json=body))


@pytest.fixture
def server(tmp_path: Path) -> Any:
    with running_server(tmp_path) as srv:
        yield srv


PLAYERS = [f"p{i:03}" for i in range(100)]
PRIZES = [
    {"fromRank": 1, "toRank": 1, "percent": 40.0},
    {"fromRank": 2, "toRank": 3, "percent": 15.0},
    {"fromRank": 4, "toRank": 10, "amount": 10.0},
]


def multiplier(i: int) -> float:
    """Player i's win ÷ bet in each round: p000 first, …; p004 and p005 tie."""
    return float(200 - 2 * (i if i != 5 else 4))


async def test_a_full_tournament_with_100_players(server: ServerProcess) -> None:
    async with (
        http(server) as api,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):
        t = await create(
            api,
            rounds=3,
            maxPlayers=100,
            minPlayers=2,
            entryFee=10.0,
            maxEntries=2,
            guaranteedPool=500.0,
            prizes=PRIZES,
            scoring={"rule": "multiplier", "minBet": 1.0, "counting": "sum"},
            ties="split",
        )
        tid = t["id"]
        assert t["status"] == "scheduled"
        channel = f"tournament:{tid}"
        listener = await session.ws_connect(
            server.url.replace("http", "ws") + f"/ws/tournaments/{tid}",
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        internal = Seat(listener)
        await internal.send(
            {"type": "subscribe", "events": ["tournament.status", "player.updates"], "id": 1}
        )
        await internal.wait(is_("subscribed"))
        seats = dict(
            zip(
                PLAYERS,
                await asyncio.gather(*(player_seat(session, server, tid, p) for p in PLAYERS)),
                strict=True,
            )
        )
        try:
            # Registration is closed until the tournament opens.
            refused = await api.post(
                f"/api/v1/tournaments/{tid}/players", json={"playerId": "x", "brand": BRAND}
            )
            assert refused.status_code == 409, refused.text
            assert (await ok(await api.post(f"/api/v1/tournaments/{tid}/open")))["status"] == (
                "registering"
            )
            for n, pid in enumerate(PLAYERS, start=1):
                reply = await register(api, tid, pid)
                assert reply["position"] == n
                assert reply["entryCount"] == 1
            again = await register(api, tid, PLAYERS[0])
            assert again["duplicate"] is True
            started = await ok(await api.post(f"/api/v1/tournaments/{tid}/start"))
            assert started["status"] == "running"
            assert started["prizePool"] == 1000.0

            # Three rounds; p099 is eliminated in round 2 and rebuys over WebSocket.
            for rnd in (1, 2, 3):
                if rnd > 1:
                    advanced = await ok(await api.post(f"/api/v1/tournaments/{tid}/rounds"))
                    assert advanced["currentRound"] == rnd
                for i, pid in enumerate(PLAYERS):
                    if pid == "p099" and rnd == 2:
                        continue
                    got = await score(
                        api, tid, f"{pid}-r{rnd}", pid, bet=2.0, win=2.0 * multiplier(i)
                    )
                    assert got["qualified"]
                    assert got["round"] == rnd
                if rnd == 1:
                    dup = await score(api, tid, "p000-r1", "p000", bet=2.0, win=999.0)
                    assert dup["duplicate"] is True
                    assert dup["score"] == 200.0
                    low = await score(api, tid, "p001-low", "p001", bet=0.5, win=500.0)
                    assert low["qualified"] is False
                    assert low["points"] is None
                if rnd == 2:
                    gone = await ok(
                        await api.post(f"/api/v1/tournaments/{tid}/players/p099/eliminate")
                    )
                    assert gone["status"] == "eliminated"
                    blocked = await api.post(
                        f"/api/v1/tournaments/{tid}/scores",
                        json={"submissionId": "late", "playerId": "p099", "bet": 2.0, "win": 4.0},
                    )
                    assert blocked.status_code == 409
                    p099 = seats["p099"]
                    await p099.send(
                        {
                            "type": "publish",
                            "channel": channel,
                            "event": "rebuy.request",
                            "data": {},
                            "id": 9,
                        }
                    )
                    asked = await p099.wait(is_("rebuy.requested", f"player:{BRAND}:p099"))
                    assert asked["data"] | {"requestId": None} == {
                        "tournamentId": tid,
                        "playerId": "p099",
                        "rebuyAmount": 10.0,
                        "currentEntries": 1,
                        "maxEntries": 2,
                        "requestId": None,
                    }
                    rid = asked["data"]["requestId"]
                    confirmed = await ok(
                        await api.post(f"/api/v1/tournaments/{tid}/rebuys/{rid}/confirm")
                    )
                    assert confirmed["status"] == "confirmed"
                    assert confirmed["entryCount"] == 2
                    success = await p099.wait(is_("rebuy.success", f"player:{BRAND}:p099"))
                    assert success["data"] == {
                        "tournamentId": tid,
                        "playerId": "p099",
                        "requestId": rid,
                        "newEntryCount": 2,
                        "remainingRebuys": 0,
                    }
                    # p098 asks over HTTP and the casino declines.
                    ask = await ok(await api.post(f"/api/v1/tournaments/{tid}/players/p098/rebuys"))
                    await ok(
                        await api.post(
                            f"/api/v1/tournaments/{tid}/rebuys/{ask['requestId']}/decline",
                            json={"error": "insufficient funds"},
                        )
                    )
                    failed = await seats["p098"].wait(is_("rebuy.failed", f"player:{BRAND}:p098"))
                    assert failed["data"] == {
                        "tournamentId": tid,
                        "playerId": "p098",
                        "requestId": ask["requestId"],
                        "error": "insufficient funds",
                    }

            results = await ok(await api.post(f"/api/v1/tournaments/{tid}/complete"))
            again_done = await api.post(f"/api/v1/tournaments/{tid}/complete")
            assert again_done.status_code == 409
            assert again_done.json()["error"]["code"] == "invalid_transition"

            # Pool: 100 entries and one rebuy at 10.00 = 1010.00; 40% / 15% / 15% / 10.00 x 7.
            assert results["prizePool"] == 1010.0
            by_player = {r["playerId"]: r for r in results["results"]}
            assert by_player["p000"] == {
                "playerId": "p000",
                "displayName": "Player p000",
                "position": 1,
                "points": 600.0,
                "prizeAmount": 404.0,
            }
            assert by_player["p001"]["prizeAmount"] == 151.5
            assert by_player["p004"]["position"] == by_player["p005"]["position"] == 5
            assert by_player["p004"]["prizeAmount"] == by_player["p005"]["prizeAmount"] == 10.0
            assert by_player["p010"]["prizeAmount"] == 0.0
            assert sum(r["prizeAmount"] for r in results["results"]) == pytest.approx(
                404.0 + 151.5 * 2 + 70.0
            )

            winners = {"p000", *(f"p{i:03}" for i in range(1, 10))}
            await asyncio.gather(
                *(
                    s.wait(
                        is_(
                            "notification" if p in winners else "tournament.completed",
                            f"player:{BRAND}:{p}",
                        ),
                        20,
                    )
                    for p, s in seats.items()
                )
            )
            for i, (pid, s) in enumerate(seats.items()):
                _check_player_events(s, tid, pid, i, by_player[pid], pid in winners)
            # A win is kept in the notification centre too, as the one that was pushed.
            for pid in ("p000", "p010"):
                kept = await ok(api.get(f"/api/v1/players/{BRAND}/{pid}/notifications"))
                pushed = [e["data"] for e in seats[pid].events("notification")]
                assert kept["notifications"] == pushed
                assert kept["unread"] == len(pushed) == (1 if pid in winners else 0)

            # The internal listener got its groups, and nothing of the others.
            await internal.wait(is_("tournament.completed"))
            kinds = {d["type"] for d in internal.seen if "offset" in d}
            assert {
                "tournament.status.changed",
                "tournament.started",
                "tournament.completed",
                "player.registered",
                "tournament.connected",
                "player.score.updated",
                "player.eliminated",
                "rebuy.requested",
                "rebuy.success",
                "rebuy.failed",
            } <= kinds
            assert "round.started" not in kinds
            statuses = [
                (d["data"]["previousStatus"], d["data"]["status"])
                for d in internal.events("tournament.status.changed")
            ]
            assert statuses == [
                ("scheduled", "registering"),
                ("registering", "running"),
                ("running", "completed"),
            ]
            registered = internal.events("player.registered")
            assert [d["data"]["playerId"] for d in registered] == PLAYERS
            assert registered[-1]["data"]["playerCount"] == 100
        finally:
            await internal.close()
            await asyncio.gather(*(s.close() for s in seats.values()))


def _check_player_events(s: Seat, tid: str, pid: str, i: int, result: Doc, winner: bool) -> None:
    mine = f"player:{BRAND}:{pid}"
    channel = f"tournament:{tid}"
    (connected,) = s.events("tournament.connected", mine)
    assert connected["data"] == {
        "tournamentId": tid,
        "playerId": pid,
        "status": "active",
        "playerInfo": {"displayName": f"Player {pid}", "position": i + 1, "entryCount": 1},
    }
    (started,) = s.events("tournament.started", channel)
    assert set(started["data"]) == {
        "tournamentId",
        "startTime",
        "playerCount",
        "currentRound",
        "totalRounds",
    }
    assert started["data"]["playerCount"] == 100
    assert started["data"]["currentRound"] == 1
    assert started["data"]["totalRounds"] == 3
    updates = s.events("player.score.updated", mine)
    rounds = [1, 3] if pid == "p099" else [1, 2, 3]
    assert [u["data"]["round"] for u in updates] == rounds
    for n, u in enumerate(updates, start=1):
        assert set(u["data"]) == {"tournamentId", "playerId", "score", "position", "round"}
        assert u["data"]["score"] == multiplier(i) * n
        assert u["data"]["playerId"] == pid
        assert u["data"]["position"] >= 1
    # Everyone sees everyone's score updates on the tournament channel.
    assert len(s.events("player.score.updated", channel)) == 100 * 3 - 1
    if pid == "p099":
        (gone,) = s.events("player.eliminated", mine)
        assert set(gone["data"]) == {
            "tournamentId",
            "playerId",
            "eliminatedAt",
            "finalPosition",
            "finalPoints",
            "eliminationRound",
        }
        assert gone["data"]["eliminationRound"] == 2
        assert gone["data"]["finalPosition"] == 100
        assert gone["data"]["finalPoints"] == 2
    (done,) = s.events("tournament.completed", mine)
    assert done["data"]["finalResults"] == {
        "position": result["position"],
        "points": result["points"],
        "prizeAmount": result["prizeAmount"],
    }
    assert done["data"]["winners"][0] == {
        "position": 1,
        "playerId": "p000",
        "displayName": "Player p000",
        "prizeAmount": 404.0,
    }
    (everyone,) = s.events("tournament.completed", channel)
    assert set(everyone["data"]) >= {"tournamentId", "completedAt", "finalResults", "winners"}
    assert len(everyone["data"]["finalResults"]) == 100
    notes = s.events("notification", mine)
    if not winner:
        assert notes == []
        return
    (note,) = notes
    data = note["data"]
    assert data["event"] == "tournament_win"
    assert data["is_read"] is False
    details = data["event_details"]
    assert details["tournament_id"] == tid
    assert details["tournament_name"] == "Cup"
    assert details["tournament_position"] == result["position"]
    assert details["tournament_points"] == result["points"]
    assert details["prize_value"] == f"{result['prizeAmount']:.2f}"
    assert details["player_id"] == pid
    assert details["casino_id"] == 1001
    assert details["total_rounds"] == 3
    assert {"tournament_start_date", "tournament_end_date", "transaction_id", "timestamp"} <= set(
        details
    )
    if pid == "p000":
        lb = [d for d in s.seen if d["type"] == "leaderboard.updated"]
        assert lb, "no leaderboard.updated pushed"
        assert set(lb[-1]["data"]) == {"tournamentId", "leaderboard", "lastUpdated"}
        assert len(lb[-1]["data"]["leaderboard"]) == 10


async def running_tournament(api: httpx.AsyncClient, players: list[str], **settings: Any) -> str:
    t = await create(api, minPlayers=1, **settings)
    tid: str = t["id"]
    await ok(await api.post(f"/api/v1/tournaments/{tid}/open"))
    for pid in players:
        await register(api, tid, pid)
    await ok(await api.post(f"/api/v1/tournaments/{tid}/start"))
    return tid


async def test_concurrent_confirmations_add_one_entry(server: ServerProcess) -> None:
    async with http(server) as api:
        tid = await running_tournament(api, ["ann"], entryFee=5.0, maxEntries=2)
        ask = await ok(await api.post(f"/api/v1/tournaments/{tid}/players/ann/rebuys"))
        rid = ask["requestId"]
        again = await ok(await api.post(f"/api/v1/tournaments/{tid}/players/ann/rebuys"))
        assert again["requestId"] == rid
        assert again["duplicate"] is True
        replies = await asyncio.gather(
            *(api.post(f"/api/v1/tournaments/{tid}/rebuys/{rid}/confirm") for _ in range(8))
        )
        docs = [await ok(r) for r in replies]
        assert sorted(d["duplicate"] for d in docs) == [False] + [True] * 7
        assert {d["entryCount"] for d in docs} == {2}
        player = await ok(await api.get(f"/api/v1/tournaments/{tid}/players/ann"))
        assert player["entryCount"] == 2
        assert player["remainingRebuys"] == 0
        # No entries left: a new request fails at once, with rebuy.failed.
        refused = await api.post(f"/api/v1/tournaments/{tid}/players/ann/rebuys")
        assert refused.status_code == 409
        assert refused.json()["error"]["code"] == "max_entries"
        declined = await api.post(
            f"/api/v1/tournaments/{tid}/rebuys/{rid}/decline", json={"error": "late"}
        )
        assert declined.status_code == 409
        history = await ok(
            await api.get(f"/api/v1/channels/tournament:{tid}/history", params={"limit": 1000})
        )
        types = [e["type"] for e in history["events"]]
        assert types.count("rebuy.success") == 1
        assert types.count("rebuy.failed") == 1
        t = await ok(await api.get(f"/api/v1/tournaments/{tid}"))
        assert t["prizePool"] == 10.0


async def test_restart_mid_tournament_carries_on(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "croupier.db").start()
    try:
        async with http(server) as api:
            tid = await running_tournament(
                api, ["ann", "bob"], rounds=2, entryFee=1.0, prizes=PRIZES[:1]
            )
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
                ann = await player_seat(session, server, tid, "ann")
                await score(api, tid, "s1", "ann", points=10.0)
                await score(api, tid, "s2", "bob", points=30.0)
                await ann.wait(is_("player.score.updated", playerId="bob"))
                last = [d for d in ann.seen if d.get("channel") == f"tournament:{tid}"][-1]
                await ann.close()
        server.kill()
        server.start()
        async with (
            http(server) as api,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
        ):
            since = {f"tournament:{tid}": {"offset": last["offset"], "epoch": last["epoch"]}}
            ann = await player_seat(session, server, tid, "ann", since=since)
            t = await ok(await api.get(f"/api/v1/tournaments/{tid}"))
            assert t["status"] == "running"
            assert t["playerCount"] == 2
            dup = await score(api, tid, "s1", "ann", points=10.0)
            assert dup["duplicate"] is True
            assert dup["score"] == 10.0
            await ok(await api.post(f"/api/v1/tournaments/{tid}/rounds"))
            up = await score(api, tid, "s3", "ann", points=25.0)
            assert up["score"] == 35.0
            assert up["position"] == 1
            assert up["round"] == 2
            await ann.wait(is_("round.started", f"tournament:{tid}", round=2))
            results = await ok(await api.post(f"/api/v1/tournaments/{tid}/complete"))
            assert [
                (r["playerId"], r["position"], r["prizeAmount"]) for r in results["results"]
            ] == [
                ("ann", 1, 0.8),
                ("bob", 2, 0.0),
            ]
            note = await ann.wait(is_("notification", f"player:{BRAND}:ann"))
            assert note["data"]["event_details"]["prize_value"] == "0.80"
            await ann.close()
    finally:
        server.stop()


async def test_a_cancelled_tournament_lists_refunds(server: ServerProcess) -> None:
    async with http(server) as api:
        tid = await running_tournament(api, ["ann", "bob"], entryFee=12.5, maxEntries=3)
        ask = await ok(await api.post(f"/api/v1/tournaments/{tid}/players/bob/rebuys"))
        await ok(await api.post(f"/api/v1/tournaments/{tid}/rebuys/{ask['requestId']}/confirm"))
        cancelled = await ok(await api.post(f"/api/v1/tournaments/{tid}/cancel"))
        assert cancelled["status"] == "cancelled"
        assert cancelled["refunds"] == [
            {"playerId": "ann", "brand": BRAND, "amount": 12.5},
            {"playerId": "bob", "brand": BRAND, "amount": 25.0},
        ]
        assert (await ok(await api.get(f"/api/v1/tournaments/{tid}/results")))["refunds"] == (
            cancelled["refunds"]
        )
        for path in ("cancel", "start", "complete", "open"):
            r = await api.post(f"/api/v1/tournaments/{tid}/{path}")
            assert r.status_code == 409, path
        history = await ok(await api.get(f"/api/v1/channels/tournament:{tid}/history"))
        (event,) = [e for e in history["events"] if e["type"] == "tournament.cancelled"]
        assert event["data"]["refunds"] == [
            {"playerId": "ann", "amount": 12.5},
            {"playerId": "bob", "amount": 25.0},
        ]
