"""The admin routes the console stands on, over real sockets: the live log, the channel
inspector, the connection inspector and disconnects, on one node and across nodes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import fresh_postgres_database
from tests.support import API_KEY, ServerProcess, running_server, timeout, token

from .cluster import cluster, private_redis
from .livelog import live_log
from .wsclient import http, publish, write_config, ws_connect

pytestmark = pytest.mark.e2e

ADMIN = {"Authorization": f"Bearer {API_KEY}"}
UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def test_admin_routes_need_an_admin_key(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=timeout(10)) as client:
        for path in ("/api/v1/admin/log", "/api/v1/admin/channels", "/api/v1/admin/connections"):
            r = await client.get(path)
            assert r.status_code == 401, r.text
            assert r.json()["error"]["code"] == "unauthorized"
            r = await client.get(path, headers={"Authorization": "Bearer nope"})
            assert r.status_code == 401
        r = await client.post("/api/v1/admin/players/p1/disconnect", json={})
        assert r.status_code == 401
        assert "set-cookie" not in r.headers


async def test_the_live_log_shows_publishes_and_says_it_is_sampled(
    server: ServerProcess, api: httpx.AsyncClient
) -> None:
    async with live_log(server) as log:
        assert log.hello["rate"] > 0
        assert log.hello["node"].startswith("n-")
        await publish(api, "tournament:log-1", "player.score.updated", {"score": 1})
        record = await log.until(lambda r: r["kind"] == "published")
        assert record["channel"] == "tournament:log-1"
        assert record["type"] == "player.score.updated"
        assert record["offset"] == 1
        assert record["by"] == "key:env-0"  # the key's name, never the key
        assert record["node"] == log.hello["node"]
        assert API_KEY not in json.dumps(log.seen)


async def test_the_live_log_filters_by_kind_and_channel(
    server: ServerProcess, api: httpx.AsyncClient
) -> None:
    async with live_log(server, kind="published", channel_prefix="room:") as log:
        await publish(api, "tournament:other", "t.x", {})
        await publish(api, "room:wanted", "t.x", {})
        record = await log.until(lambda r: True)
        assert record["channel"] == "room:wanted"
    async with httpx.AsyncClient(timeout=timeout(10)) as client:
        r = await client.get(
            server.url + "/api/v1/admin/log", params={"kind": "nonsense"}, headers=ADMIN
        )
        assert r.status_code == 400
        assert "unknown kind" in r.json()["error"]["message"]


async def test_channels_are_searched_and_paged_without_a_cap(
    server: ServerProcess, api: httpx.AsyncClient
) -> None:
    names = [f"room:page-{i:02d}" for i in range(7)] + ["tournament:needle-12345"]
    for name in names:
        await publish(api, name, "t.x", {"name": name})
    seen: list[str] = []
    after = ""
    for _ in range(10):
        r = await api.get(
            "/api/v1/admin/channels", params={"prefix": "room:", "limit": 3, "after": after}
        )
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [c["channel"] for c in page["channels"]]
        if page["next"] is None:
            break
        after = page["next"]
    assert seen == names[:7]
    r = await api.get("/api/v1/admin/channels", params={"contains": "12345"})
    assert [c["channel"] for c in r.json()["channels"]] == ["tournament:needle-12345"]


async def test_one_channel_its_history_by_offset_and_a_test_event(
    server: ServerProcess, api: httpx.AsyncClient
) -> None:
    channel = "tournament:inspect"
    for n in range(1, 6):
        await publish(api, channel, "t.tick", {"n": n})
    async with ws_connect(server, token("p7")) as ws, live_log(server) as log:
        await ws.subscribe(channel)
        detail = (await api.get(f"/api/v1/admin/channels/{channel}")).json()
        assert detail["position"]["offset"] == 5
        assert detail["first"] == 1
        assert detail["rules"]["namespace"] == "tournament"
        assert detail["nodes"] == [{"node": log.hello["node"], "subscribers": 1}]
        assert detail["presence"]["count"] == 1

        page = (await api.get(f"/api/v1/admin/channels/{channel}/history?since=2&limit=2")).json()
        assert [e["offset"] for e in page["events"]] == [3, 4]
        assert page["events"][0]["data"] == {"n": 3}

        r = await api.post(
            f"/api/v1/admin/channels/{channel}/publish",
            json={"type": "console.test", "data": {"hello": "operator"}},
        )
        assert r.status_code == 200, r.text
        assert r.json()["offset"] == 6
        got = await ws.expect("console.test")
        assert got["data"] == {"hello": "operator"}
        assert got["offset"] == 6
        record = await log.until(lambda r: r["kind"] == "published")
        assert record["by"].startswith("console:")
        assert record["offset"] == 6

        r = await api.post(f"/api/v1/admin/channels/{channel}/publish", json={"data": 1})
        assert r.status_code == 400
        r = await api.get("/api/v1/admin/channels/nope:x")
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "unknown_namespace"


async def test_a_players_connections_are_found_and_disconnected(
    server: ServerProcess, api: httpx.AsyncClient
) -> None:
    async with (
        ws_connect(server, token("p9", brand="1001")) as one,
        ws_connect(server, token("p9", brand="1001")) as two,
        ws_connect(server, token("p10", brand="1001")) as other,
    ):
        await publish(api, "tournament:c-1", "t.x", {"n": 1})
        await one.subscribe("tournament:c-1", since={"offset": 0})
        await one.events(1)
        found = (await api.get("/api/v1/admin/connections", params={"player": "p9"})).json()
        assert sorted(c["id"] for c in found["connections"]) == sorted(
            [one.connected["client"], two.connected["client"]]
        )
        first = next(c for c in found["connections"] if c["id"] == one.connected["client"])
        assert first["player"] == "p9"
        assert first["brand"] == "1001"
        assert first["transport"] == "websocket"
        assert first["protocol"] == "native"
        (subscription,) = first["subscriptions"]
        assert subscription["channel"] == "tournament:c-1"
        assert subscription["position"]["offset"] == 1
        assert first["outbox_limits"]["messages"] > 0
        assert first["outbox"] == 0
        now_ms = time.time() * 1000
        assert now_ms - 60_000 < first["created"] <= first["last_activity"] <= now_ms + 1000
        assert "token" not in json.dumps(found).lower()

        r = await api.post(
            f"/api/v1/admin/connections/{one.connected['client']}/disconnect",
            json={"reason": "operator", "reconnect": False},
        )
        assert r.json()["disconnected"] == 1
        messages = await one.wait_closed()
        assert {"type": "disconnect", "code": "operator", "reconnect": False} in messages

        r = await api.post("/api/v1/admin/players/p9/disconnect", json={"brand": "1002"})
        assert r.json()["disconnected"] == 0  # another brand's p9
        r = await api.post("/api/v1/admin/players/p9/disconnect", json={"brand": "1001"})
        assert r.json()["disconnected"] == 1
        assert {"type": "disconnect", "code": "operator", "reconnect": True} in (
            await two.wait_closed()
        )
        await other.send({"type": "ping", "id": "still"})
        assert await other.expect("pong")

        r = await api.post("/api/v1/admin/players/p9/disconnect", json={"reason": "No!"})
        assert r.status_code == 400
        assert "reason" in r.json()["error"]["message"]


# -- across nodes ------------------------------------------------------------------------------


@pytest.fixture(params=["redis", "postgres"])
def two_nodes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[ServerProcess]]:
    """Two nodes on one PostgreSQL log, with Redis or PostgreSQL (NOTIFY) as the broker."""
    with fresh_postgres_database("croupier_admin") as database:
        if request.param == "postgres":
            env = {"CROUPIER_DATABASE_URL": database, "CROUPIER_BROKER_URL": database}
            with cluster(tmp_path, 2, env) as nodes:
                yield nodes
            return
        with private_redis(tmp_path) as redis:
            env = {"CROUPIER_DATABASE_URL": database, "CROUPIER_BROKER_URL": redis.url}
            with cluster(tmp_path, 2, env) as nodes:
                yield nodes


async def _wait_for_peers(api: httpx.AsyncClient, count: int) -> None:
    """Until every node has heard of the others (they say so every few seconds)."""
    async with asyncio.timeout(timeout(20)):
        while True:
            answered = (await api.get("/api/v1/admin/connections")).json()["nodes"]
            if len(answered) >= count:
                return
            await asyncio.sleep(0.2)


async def test_connections_logs_and_disconnects_span_the_nodes(
    two_nodes: list[ServerProcess],
) -> None:
    a, b = two_nodes
    async with http(a) as api_a, http(b) as api_b:
        await _wait_for_peers(api_a, 2)
        async with live_log(a) as log, ws_connect(b, token("p-far")) as far:
            found = (await api_a.get("/api/v1/admin/connections?player=p-far")).json()
            assert [c["id"] for c in found["connections"]] == [far.connected["client"]]
            node_b = found["connections"][0]["node"]
            assert node_b != log.hello["node"]

            # A publish on node b reaches the log watched on node a.
            await publish(api_b, "tournament:far", "t.x", {})
            record = await log.until(lambda r: r["kind"] == "published")
            assert record["node"] == node_b
            assert record["channel"] == "tournament:far"

            r = await api_a.post("/api/v1/admin/players/p-far/disconnect", json={})
            assert r.json()["disconnected"] == 1
            assert sorted(r.json()["nodes"]) == sorted([node_b, log.hello["node"]])
            assert {"type": "disconnect", "code": "operator", "reconnect": True} in (
                await far.wait_closed()
            )
            record = await log.until(lambda r: r["kind"] == "disconnect.requested")
            assert record["node"] == node_b
            assert record["player"] == "p-far"


async def test_refused_api_keys_show_in_the_live_log_without_the_key(
    server: ServerProcess,
) -> None:
    async with live_log(server, kind="auth.failed") as log, http(server, "wrong-key") as bad:
        r = await bad.post("/api/v1/publish", json={"channel": "lobby", "type": "t", "data": 1})
        assert r.status_code == 401
        record = await log.until(lambda r: True)
        assert record["path"] == "/api/v1/publish"
        assert record["code"] == "invalid_key"
        assert "wrong-key" not in json.dumps(record)


async def test_the_live_log_follows_a_connection_from_open_to_close(
    server: ServerProcess, api: httpx.AsyncClient
) -> None:
    await publish(api, "tournament:life", "t.x", {"n": 1})
    async with live_log(server, player="p-life") as log, ws_connect(server, token("p-life")) as ws:
        client = ws.connected["client"]
        opened = await log.until(lambda r: r["kind"] == "connection.opened")
        assert opened["client"] == client
        assert opened["transport"] == "websocket"
        assert opened["brand"] == "1001"
        await ws.subscribe("tournament:life", since={"offset": 0})
        resumed = await log.until(lambda r: r["kind"] == "resumed")
        assert resumed["channel"] == "tournament:life"
        assert resumed["recovered"] is True
        assert resumed["replayed"] == 1
        await ws.send({"type": "subscribe", "channel": "player:1001:someone-else", "id": 2})
        refused = await log.until(lambda r: r["kind"] == "subscribe.refused")
        assert refused["channel"] == "player:1001:someone-else"
        assert refused["code"] == "forbidden"
        r = await api.post(
            f"/api/v1/admin/connections/{client}/disconnect",
            json={"reason": "operator", "reconnect": True},
        )
        assert r.json()["disconnected"] == 1
        closed = await log.until(lambda r: r["kind"] == "connection.closed")
        assert closed["client"] == client
        assert closed["reason"] == "operator"


async def test_refused_tokens_and_rate_limits_show_in_the_live_log(tmp_path: Path) -> None:
    config = write_config(tmp_path / "limits.toml", "[limits]\nclient_rate = 1\nclient_burst = 2\n")
    with running_server(tmp_path, config=config) as server:
        async with live_log(server) as log, http(server) as api:
            r = await api.get("/ws", params={"token": "not-a-jwt"}, headers=UPGRADE)
            assert r.status_code == 401
            refused = await log.until(lambda r: r["kind"] == "auth.failed")
            assert refused["path"] == "/ws"
            assert refused["code"] == "invalid_token"
            assert "not-a-jwt" not in json.dumps(log.seen)

            async with ws_connect(server, token("p-fast")) as ws:
                for n in range(5):
                    await ws.send({"type": "ping", "id": n})
                limited = await log.until(lambda r: r["kind"] == "rate_limited")
                assert limited["player"] == "p-fast"
                assert limited["client"] == ws.connected["client"]
