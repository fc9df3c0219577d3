"""Live sports feeds over a real server: hundreds of viewers on a cricket match, reactions,
summaries, viewer counts with quick reconnects, and the heartbeat on ``/ws/events``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from tests.services import fresh_postgres_database
from tests.support import ServerProcess, running_server, timeout, token

from .cluster import cluster, private_redis
from .wsclient import WsClient, http, write_config

pytestmark = pytest.mark.e2e

MATCH = "ipl-final"


def ball(n: int) -> dict[str, Any]:
    runs = n + n // 3
    return {
        f"ball {n}": f"{runs}/{n // 10}",
        "comment": f"ball {n}",
        "batsman": {"name": "rohit", "runs": str(n), "balls": str(n)},
        "bowler": {
            "name": "bumrah",
            "overs": f"{n // 6}.{n % 6}",
            "runs": runs,
            "maiden": 0,
            "wickets": n // 10,
        },
    }


async def live_match(api: httpx.AsyncClient, event_id: str = MATCH) -> None:
    created = await api.post(
        "/api/v1/sports/events",
        json={
            "id": event_id,
            "sport": "cricket",
            "title": "IPL Final",
            "competitors": ["Mumbai Indians", "Chennai Super Kings"],
            "startsAt": "2026-11-22T14:00:00Z",
        },
    )
    assert created.status_code == 200, created.text
    assert created.json()["status"] == "scheduled"
    live = await api.post(f"/api/v1/sports/events/{event_id}/status", json={"status": "live"})
    assert live.status_code == 200, live.text


async def _ball(api: httpx.AsyncClient, n: int, event_id: str = MATCH) -> dict[str, Any]:
    response = await api.post(f"/api/v1/sports/events/{event_id}/updates", json=ball(n))
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    assert doc["seq"] == n
    return doc


@contextlib.asynccontextmanager
async def sockets() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        yield session


async def viewer(
    session: aiohttp.ClientSession,
    server: ServerProcess,
    viewer_id: str,
    event_id: str = MATCH,
    *,
    player_token: str | None = None,
) -> tuple[WsClient, dict[str, Any], dict[str, Any]]:
    """A viewer on /ws/events that has joined: the client, its ``joined`` and ``snapshot``."""
    params = {"token": player_token} if player_token else None
    ws = await session.ws_connect(
        f"{server.url}/ws/events", params=params, timeout=aiohttp.ClientWSTimeout(ws_close=5)
    )
    client = WsClient(ws)
    await client.expect("connected")
    await client.send({"id": viewer_id, "eventId": event_id})
    joined = await client.recv(10)
    assert joined["type"] == "joined", joined
    snapshot = await client.recv(10)
    assert snapshot["type"] == "snapshot", snapshot
    assert snapshot["channel"] == f"match:{event_id}"
    return client, joined, snapshot["data"]


async def _viewers(api: httpx.AsyncClient, event_id: str = MATCH) -> dict[str, Any]:
    response = await api.get(f"/api/v1/sports/events/{event_id}/viewers")
    assert response.status_code == 200, response.text
    doc: dict[str, Any] = response.json()
    return doc


async def _until_viewers(api: httpx.AsyncClient, want: int, seconds: float = 10) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout(seconds)
    doc = await _viewers(api)
    while doc["viewers"] != want and loop.time() < deadline:
        await asyncio.sleep(0.1)
        doc = await _viewers(api)
    assert doc["viewers"] == want, doc
    return doc


async def _score_seqs(client: WsClient, last: int, seconds: float = 20) -> list[int]:
    """The ``seq`` of every ``score.updated`` until ``last``, in arrival order."""
    seqs: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout(seconds)
    while not seqs or seqs[-1] < last:
        doc = await client.recv(20)
        assert loop.time() < deadline, seqs
        if doc["type"] == "score.updated":
            seqs.append(doc["data"]["seq"])
    return seqs


async def test_hundreds_of_viewers_get_every_ball_in_order_and_the_snapshot_on_join(
    server: ServerProcess,
) -> None:
    async with http(server) as api, sockets() as session:
        await live_match(api)
        for n in range(1, 6):
            await _ball(api, n)

        early = await asyncio.gather(*(viewer(session, server, f"v{i}") for i in range(150)))
        for _, joined, snapshot in early:
            assert joined["eventId"] == MATCH
            assert snapshot["seq"] == 5
            assert snapshot["snapshot"]["score"] == ball(5)["ball 5"]
            assert snapshot["snapshot"]["batsman"] == {"name": "rohit", "runs": 5, "balls": 5}

        # More viewers join while balls are being bowled: each gets the scoreboard it joined
        # at, then every later ball exactly once, in order.
        async def bowl() -> None:
            for n in range(6, 31):
                await _ball(api, n)

        late, _ = await asyncio.gather(
            asyncio.gather(*(viewer(session, server, f"w{i}") for i in range(150))),
            bowl(),
        )
        for client, _, snapshot in [*early, *late]:
            seqs = await _score_seqs(client, 30)
            assert seqs == list(range(snapshot["seq"] + 1, 31)), (snapshot["seq"], seqs)

        snap = (await api.get(f"/api/v1/sports/events/{MATCH}/snapshot")).json()
        assert snap["seq"] == 30
        assert snap["snapshot"]["ball"] == 30
        assert snap["position"]["offset"] >= 31  # after the status event and 30 balls

        history = (await api.get(f"/api/v1/channels/match:{MATCH}/history")).json()
        stored = [e["data"]["seq"] for e in history["events"] if e["type"] == "score.updated"]
        assert stored == list(range(1, 31))

        counted = await _until_viewers(api, 300)
        assert counted["peak"] == 300
        for client, _, _ in [*early, *late]:
            await client.ws.close()


async def test_malformed_updates_are_refused_and_change_nothing(server: ServerProcess) -> None:
    async with http(server) as api:
        await live_match(api)
        await _ball(api, 1)
        base = f"/api/v1/sports/events/{MATCH}"
        bad = await api.post(base + "/updates", json={"ball 2": "13-1"})
        assert bad.status_code == 409  # not a cricket ball: it does not fit the event
        assert bad.json()["error"]["code"] == "bad_update"
        assert "score" in bad.json()["error"]["message"]
        not_json = await api.post(base + "/updates", content=b"{")
        assert not_json.status_code == 400
        wrong_type = await api.post(base + "/updates", json={"ball 2": 13})
        assert wrong_type.status_code == 409
        assert "score" in wrong_type.json()["error"]["message"]
        missing = await api.post("/api/v1/sports/events/nope/updates", json=ball(1))
        assert missing.status_code == 404
        assert (await api.get(base + "/snapshot")).json()["seq"] == 1
        done = await api.post(base + "/status", json={"status": "finished"})
        assert done.json()["status"] == "finished"
        late = await api.post(base + "/updates", json=ball(2))
        assert late.status_code == 409
        again = await api.post(base + "/status", json={"status": "live"})
        assert again.status_code == 409


async def _summaries_until(client: WsClient, total: int, seconds: float) -> list[dict[str, Any]]:
    summaries: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout(seconds)
    while sum(s["total"] for s in summaries) < total:
        doc = await client.recv(seconds)
        assert loop.time() < deadline, summaries
        if doc["type"] == "reactions.summary":
            summaries.append(doc["data"])
    return summaries


async def test_reactions_are_rate_limited_and_summaries_add_up(server: ServerProcess) -> None:
    emojis = ["🔥", "👏🏽", "😱", "🇮🇳", ":)"]
    async with http(server) as api, sockets() as session:
        await live_match(api)
        watcher, _, _ = await viewer(session, server, "watcher")
        reactors = await asyncio.gather(
            *(viewer(session, server, f"r{i}", player_token=token(f"fan{i}")) for i in range(40))
        )

        # Each connection sends a burst of 10: the first ones are taken, the rest refused.
        async def burst(i: int, client: WsClient) -> tuple[int, int, dict[str, int]]:
            for k in range(10):
                await client.send(
                    {
                        "type": "reaction",
                        "emoji": emojis[(i + k) % 5],
                        "comment": f"c{i}-{k}",
                        "id": k,
                    }
                )
            taken = refused = 0
            counts: dict[str, int] = {}
            while taken + refused < 10:
                doc = await client.recv(10)
                if doc["type"] == "published":
                    taken += 1
                    emoji = emojis[(i + doc["id"]) % 5]
                    counts[emoji] = counts.get(emoji, 0) + 1
                elif doc["type"] == "error":
                    assert doc["code"] == "rate_limited", doc
                    assert "reaction" in doc["message"]
                    refused += 1
            return taken, refused, counts

        results = await asyncio.gather(*(burst(i, c) for i, (c, _, _) in enumerate(reactors)))
        sent = sum(r[0] for r in results)
        assert all(r[1] > 0 for r in results), "a burst of 10 is over the rate"
        assert all(r[0] >= 3 for r in results)
        want: dict[str, int] = {}
        for _, _, counts in results:
            for emoji, n in counts.items():
                want[emoji] = want.get(emoji, 0) + n

        summaries = await _summaries_until(watcher, sent, 10)
        assert sum(s["total"] for s in summaries) == sent
        got: dict[str, int] = {}
        for s in summaries:
            assert s["eventId"] == MATCH
            assert len(s["samples"]) <= 5
            assert s["window"]["start"] < s["window"]["end"]
            for emoji, n in s["counts"].items():
                got[emoji] = got.get(emoji, 0) + n
            for sample in s["samples"]:
                assert sample["id"].startswith("fan")
                assert sample["comment"].startswith("c")
        assert got == want
        # No reaction went out one by one.
        assert [d for d in await _collect(watcher, 1.5) if d["type"] == "reaction"] == []

        client = reactors[0][0]
        await asyncio.sleep(timeout(1.5))  # let the bucket refill
        for bad in ({"emoji": "abc"}, {"emoji": "🔥", "comment": "x" * 141}, {"comment": "hi"}):
            await client.send({"type": "reaction", **bad})
            error = await _next(client, "error")
            assert error["code"] == "bad_reaction", error
        for c, _, _ in [*reactors, (watcher, None, None)]:
            await c.ws.close()


async def test_reactions_on_the_native_socket_need_a_token(server: ServerProcess) -> None:
    async with http(server) as api, sockets() as session:
        await live_match(api)
        ws = await session.ws_connect(server.ws_url)
        client = WsClient(ws)
        await client.expect("connected")
        await client.send({"type": "subscribe", "channel": f"match:{MATCH}", "id": 1})
        await client.expect("subscribed")
        await client.expect("snapshot")
        await client.send(
            {
                "type": "publish",
                "channel": f"match:{MATCH}",
                "event": "reaction",
                "data": {"emoji": "🔥"},
                "id": 2,
            }
        )
        error = await _next(client, "error")
        assert error["code"] == "unauthorized"
        await ws.close()

        fan = await session.ws_connect(server.ws_url, params={"token": token("fan")})
        native = WsClient(fan)
        await native.expect("connected")
        await native.send({"type": "subscribe", "channel": f"match:{MATCH}", "id": 1})
        await native.expect("subscribed")
        await native.expect("snapshot")
        await native.send(
            {
                "type": "publish",
                "channel": f"match:{MATCH}",
                "event": "reaction",
                "data": {"emoji": "🎉", "comment": "gg"},
                "id": 2,
            }
        )
        assert (await _next(native, "published"))["id"] == 2
        (summary,) = await _summaries_until(native, 1, 5)
        assert summary["counts"] == {"🎉": 1}
        assert summary["samples"] == [{"id": "fan", "emoji": "🎉", "comment": "gg"}]
        await fan.close()


async def test_viewer_count_rises_and_falls_with_quick_reconnects(server: ServerProcess) -> None:
    async with http(server) as api, sockets() as session:
        await live_match(api)
        watcher, _, _ = await viewer(session, server, "watcher")
        viewers = await asyncio.gather(*(viewer(session, server, f"v{i}") for i in range(30)))
        await _until_viewers(api, 31)
        # The counts broadcast while they were joining are read before the reconnects.
        while (await _next(watcher, "viewers.count"))["data"]["viewers"] != 31:
            pass

        # Ten drop and are back at once: never counted as gone.
        for client, _, _ in viewers[:10]:
            await client.ws.close()
        back = await asyncio.gather(*(viewer(session, server, f"v{i}") for i in range(10)))
        # The same viewer on a native /ws subscription (a second tab) counts once too.
        tab = await session.ws_connect(server.ws_url, params={"token": token("v11")})
        tab_client = WsClient(tab)
        await tab_client.expect("connected")
        await tab_client.send({"type": "subscribe", "channel": f"match:{MATCH}", "id": 1})
        await tab_client.expect("subscribed")
        await tab_client.expect("snapshot")
        counts = await _counts_for(watcher, 4.5)
        assert set(counts) <= {31}, counts  # no dip, no double count
        assert (await _viewers(api))["viewers"] == 31

        # Ten leave for good: uncounted once the grace period is over.
        for client, _, _ in viewers[20:]:
            await client.ws.close()
        counts = await _counts_for(watcher, 6)
        assert counts[-1] == 21, counts
        doc = await _viewers(api)
        assert doc == {"eventId": MATCH, "viewers": 21, "peak": 31}
        for client, _, _ in [*viewers[10:20], *back]:
            await client.ws.close()
        await tab.close()
        await watcher.ws.close()
        await _until_viewers(api, 0)


async def _next(client: WsClient, kind: str) -> dict[str, Any]:
    """The next message of type ``kind``, skipping the live events of the match."""
    while True:
        doc = await client.recv()
        if doc["type"] == kind:
            return doc
        assert "channel" in doc, doc  # only events of the channel may come in between


async def _collect(client: WsClient, seconds: float) -> list[dict[str, Any]]:
    """Every text message the client gets over ``seconds`` (scaled)."""
    docs: list[dict[str, Any]] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout(seconds)):
            while True:
                message = await client.ws.receive()
                assert message.type is aiohttp.WSMsgType.TEXT, message
                docs.append(orjson.loads(message.data))
    return docs


async def _counts_for(client: WsClient, seconds: float) -> list[int]:
    """Every ``viewers.count`` the client gets over ``seconds``."""
    counts = []
    for doc in await _collect(client, seconds):
        if doc["type"] == "viewers.count":
            assert doc["data"]["eventId"] == MATCH
            counts.append(doc["data"]["viewers"])
    return counts


async def test_a_silent_viewer_is_disconnected_and_uncounted(tmp_path: Path) -> None:
    config = write_config(tmp_path / "croupier.toml", "[limits]\nping_interval = 0.5\n")
    with running_server(tmp_path, config=config) as server:
        async with http(server) as api, sockets() as session:
            await live_match(api)
            pinging, _, _ = await viewer(session, server, "alive")
            silent, _, _ = await viewer(session, server, "silent")
            await _until_viewers(api, 2)

            async def keep_pinging() -> None:
                while True:
                    await pinging.send({"type": "ping"})
                    await asyncio.sleep(0.2)

            pinger = asyncio.ensure_future(keep_pinging())
            try:
                frames = await silent.wait_closed(10)
                assert {"type": "disconnect", "code": "idle_timeout", "reconnect": True} in [
                    {k: f.get(k) for k in ("type", "code", "reconnect")} for f in frames
                ]
                await _until_viewers(api, 1, seconds=10)  # after the 3 s grace
                assert not pinging.ws.closed
            finally:
                pinger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pinger
            await pinging.ws.close()


async def test_joining_an_unknown_event_or_before_joining(server: ServerProcess) -> None:
    async with sockets() as session:
        ws = await session.ws_connect(f"{server.url}/ws/events")
        client = WsClient(ws)
        await client.expect("connected")
        await client.send({"type": "reaction", "emoji": "🔥"})
        assert (await client.expect("error"))["code"] == "not_joined"
        await client.send({"id": "v1", "eventId": "no-such-match"})
        assert (await client.expect("error"))["code"] == "not_found"
        await client.send_raw("not json")
        assert (await client.expect("error"))["code"] == "bad_json"
        await ws.close()
    async with httpx.AsyncClient() as plain:
        info = await plain.get(f"{server.url}/ws/events")
    assert info.status_code == 200
    assert orjson.loads(info.content)["upgrade"] == "websocket"


@pytest.mark.parametrize("broker", ["redis", "postgres"])
async def test_two_nodes_count_viewers_and_add_up_reactions_together(
    tmp_path: Path, broker: str
) -> None:
    with (
        fresh_postgres_database("croupier_sports") as database_url,
        private_redis(tmp_path) as redis,
    ):
        # Presence is in Redis either way: it is what counts viewers across nodes.
        env = {
            "CROUPIER_DATABASE_URL": database_url,
            "CROUPIER_BROKER_URL": redis.url if broker == "redis" else database_url,
            "CROUPIER_PRESENCE_URL": redis.url,
        }
        with cluster(tmp_path, 2, env) as nodes:
            async with http(nodes[0]) as api_a, http(nodes[1]) as api_b, sockets() as session:
                await live_match(api_a)
                watchers = [
                    (await viewer(session, node, f"watcher{n}"))[0] for n, node in enumerate(nodes)
                ]
                fans = await asyncio.gather(
                    *(
                        viewer(session, nodes[i % 2], f"f{i}", player_token=token(f"fan{i}"))
                        for i in range(30)
                    )
                )
                for api in (api_a, api_b):
                    await _until_viewers(api, 32)

                # A ball posted on one node reaches the viewers of both.
                await _ball(api_b, 1)
                for client, _, _ in fans[:4]:
                    assert await _score_seqs(client, 1) == [1]

                for i, (client, _, _) in enumerate(fans):
                    for k in range(3):
                        await client.send(
                            {
                                "type": "reaction",
                                "emoji": "🔥" if k else "🏏",
                                "comment": f"fan{i}",
                                "id": k,
                            }
                        )
                for client, _, _ in fans:
                    for _ in range(3):
                        await _next(client, "published")
                # Every node's viewers see every node's reactions, each exactly once.
                for watcher in watchers:
                    summaries = await _summaries_until(watcher, 90, 10)
                    assert sum(s["total"] for s in summaries) == 90
                    assert sum(s["counts"].get("🏏", 0) for s in summaries) == 30
                    extra = [
                        d for d in await _collect(watcher, 1.5) if d["type"] == "reactions.summary"
                    ]
                    assert extra == []

                for client, _, _ in fans[:10]:
                    await client.ws.close()
                for api in (api_a, api_b):
                    doc = await _until_viewers(api, 22)
                    assert doc["peak"] == 32
                for client in [*watchers, *(c for c, _, _ in fans[10:])]:
                    await client.ws.close()


async def test_a_plain_subscribe_gets_the_snapshot_then_every_later_ball(
    server: ServerProcess,
) -> None:
    async with http(server) as api, sockets() as session:
        await live_match(api)
        before = WsClient(await session.ws_connect(server.ws_url))
        await before.expect("connected")
        await before.subscribe(f"match:{MATCH}")
        snapshot = (await before.expect("snapshot"))["data"]
        assert (snapshot["seq"], snapshot["snapshot"]) == (0, {})
        for n in range(1, 4):
            await _ball(api, n)
        # Every stored event after the (empty) snapshot: the status change, then each ball.
        stored = [e["type"] for e in await before.events(4)]
        assert stored == ["sport.event.updated"] + ["score.updated"] * 3

        viewers = []
        for i in range(20):
            client = WsClient(
                await session.ws_connect(server.ws_url, params={"token": token(f"p{i}")})
            )
            await client.expect("connected")
            subscribed = await client.subscribe(f"match:{MATCH}")
            assert subscribed["recovered"] is True
            snapshot = (await client.expect("snapshot"))["data"]
            # Where the stream starts: at the snapshot's update, not at the channel's end.
            assert subscribed["position"] == snapshot["position"]
            viewers.append((client, snapshot))
            await _ball(api, 4 + i)
        for client, snapshot in viewers:
            assert snapshot["snapshot"]["ball"] == snapshot["seq"]
            assert await _score_seqs(client, 23) == list(range(snapshot["seq"] + 1, 24))
        # Resuming with a position: no snapshot, just what was missed.
        again = WsClient(await session.ws_connect(server.ws_url))
        await again.expect("connected")
        position = viewers[0][1]["position"]
        await again.subscribe(f"match:{MATCH}", since=position)
        first = await again.recv_quiet()
        assert first["type"] == "score.updated"
        assert first["data"]["seq"] == viewers[0][1]["seq"] + 1
        for client in [before, again, *(c for c, _ in viewers)]:
            await client.ws.close()
        await _until_viewers(api, 0)
