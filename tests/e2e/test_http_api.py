"""The backends' HTTP API (DESIGN §5) against a real server with scoped keys from a file."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import API_KEY, ServerProcess, timeout, token

from .wsclient import (
    channel_names,
    configured_server,
    history,
    http,
    metric,
    publish,
    ws_connect,
)

pytestmark = pytest.mark.e2e

READ_KEY = "k-reader-0123456789"
PUBLISH_KEY = "k-publisher-0123456789"
CONFIG = f"""
[server]
trim_interval = 0.2

[[api_keys]]
name = "reader"
key = "{READ_KEY}"
scopes = ["read"]

[[api_keys]]
name = "publisher"
key = "{PUBLISH_KEY}"
scopes = ["publish"]

[namespaces.short]
history_size = 5
subscribe = "public"
"""
fresh = channel_names("api")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with configured_server(tmp_path_factory.mktemp("api"), CONFIG) as server:
        yield server


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str)
    assert error["message"]


# -- keys and scopes ------------------------------------------------------------------------


async def test_keys_and_scopes(srv: ServerProcess) -> None:
    channel = fresh()
    body = {"channel": channel, "type": "a.b", "data": {}}
    hist = f"/api/v1/channels/{channel}/history"
    async with httpx.AsyncClient(base_url=srv.url, timeout=timeout(10)) as raw:
        assert_error(await raw.post("/api/v1/publish", json=body), 401, "unauthorized")
        assert_error(await raw.get(hist), 401, "unauthorized")
        wrong = {"Authorization": "Bearer not-a-key"}
        assert_error(
            await raw.post("/api/v1/publish", json=body, headers=wrong), 401, "invalid_key"
        )
    async with http(srv, READ_KEY) as reader, http(srv, PUBLISH_KEY) as publisher:
        assert_error(await reader.post("/api/v1/publish", json=body), 403, "forbidden")
        assert_error(await reader.post("/api/v1/tokens", json={"sub": "p1"}), 403, "forbidden")
        assert_error(await publisher.get(hist), 403, "forbidden")
        assert_error(await publisher.get("/api/v1/channels"), 403, "forbidden")
        assert (await publisher.post("/api/v1/publish", json=body)).status_code == 200
        doc = (await reader.get(hist)).json()
        assert [e["offset"] for e in doc["events"]] == [1]


async def test_minted_token_works_on_the_websocket(srv: ServerProcess) -> None:
    async with http(srv) as admin:
        response = await admin.post(
            "/api/v1/tokens", json={"sub": "p9", "brand": "7", "name": "Nine", "ttl": 600}
        )
        assert response.status_code == 200, response.text
        minted = response.json()
    assert minted["expires_in"] == 600
    async with ws_connect(srv, minted["token"]) as c:
        assert c.connected["expires_in"] <= 600
        await c.subscribe("player:7:p9")


# -- bad requests ----------------------------------------------------------------------------


async def test_bad_requests_are_json_errors_and_store_nothing(srv: ServerProcess) -> None:
    channel = fresh()
    async with http(srv) as api:
        await publish(api, channel, "a.b", {"keep": True})

        async def post(body: Any, path: str = "/api/v1/publish") -> httpx.Response:
            if isinstance(body, bytes):
                return await api.post(
                    path, content=body, headers={"Content-Type": "application/json"}
                )
            return await api.post(path, json=body)

        assert_error(await post(b"{not json"), 400, "bad_json")
        assert_error(await post({"channel": channel}), 400, "bad_request")
        assert_error(
            await post({"channel": channel, "type": "a.b", "extra": 1}), 400, "bad_request"
        )
        assert_error(await post({"channel": "no spaces", "type": "a.b"}), 400, "bad_channel")
        assert_error(await post({"channel": "nowhere:1", "type": "a.b"}), 400, "unknown_namespace")
        assert_error(await post({"channel": channel, "type": "bad type!"}), 400, "bad_type")
        too_big = {"channel": channel, "type": "a.b", "data": {"pad": "x" * (64 * 1024 + 1)}}
        assert_error(await post(too_big), 413, "too_large")
        # One bad event spoils a whole batch: nothing of it is stored.
        mixed = {
            "events": [
                {"channel": channel, "type": "a.b", "data": {"n": 1}},
                {"channel": "bad channel", "type": "a.b"},
            ]
        }
        assert_error(await post(mixed, "/api/v1/batch"), 400, "bad_channel")
        too_many = {"events": [{"channel": channel, "type": "a.b"}] * 1001}
        assert_error(await post(too_many, "/api/v1/batch"), 400, "bad_request")
        huge = b'{"channel": "x", "type": "a.b", "data": "' + b"x" * (17 << 20) + b'"}'
        assert_error(await post(huge), 413, "too_large")
        twice = {"channels": [channel, channel], "type": "a.b"}
        assert_error(await post(twice, "/api/v1/broadcast"), 400, "bad_request")
        assert_error(
            await api.get(f"/api/v1/channels/{channel}/history?limit=0"), 400, "bad_request"
        )
        assert_error(
            await api.get(f"/api/v1/channels/{channel}/history?since=x"), 400, "bad_request"
        )
        assert_error(await api.get("/api/v1/channels/bad%20name/history"), 400, "bad_channel")
        assert_error(await api.get("/api/v1/nothing-here"), 404, "not_found")
        assert_error(await api.get("/api/v1/publish"), 405, "method_not_allowed")
        doc = await history(api, channel)
        assert [e["data"] for e in doc["events"]] == [{"keep": True}]
        assert doc["position"]["offset"] == 1


# -- publishing -------------------------------------------------------------------------------


async def test_publish_result_and_idempotency(srv: ServerProcess) -> None:
    channel = fresh()
    async with http(srv) as api:
        first = await publish(api, channel, "bet.placed", {"n": 1}, idempotency_key="bet-1")
        assert set(first) == {"channel", "offset", "epoch", "ts", "duplicate"}
        assert (first["channel"], first["offset"], first["duplicate"]) == (channel, 1, False)
        again = await publish(api, channel, "bet.placed", {"n": 1}, idempotency_key="bet-1")
        assert again == {**first, "duplicate": True}
        other = await publish(api, channel, "bet.placed", {"n": 2}, idempotency_key="bet-2")
        assert (other["offset"], other["duplicate"]) == (2, False)
        # The same key on another channel is another event.
        elsewhere = await publish(api, fresh(), "bet.placed", {}, idempotency_key="bet-1")
        assert (elsewhere["offset"], elsewhere["duplicate"]) == (1, False)
        doc = await history(api, channel)
        assert [e["data"] for e in doc["events"]] == [{"n": 1}, {"n": 2}]


async def test_batch_and_broadcast(srv: ServerProcess) -> None:
    a, b, c = fresh(), fresh("room"), fresh("match")
    async with http(srv) as api, ws_connect(srv, token("p1")) as ws:
        await ws.subscribe(b)
        events = [
            {"channel": a, "type": "x.one", "data": {"n": 1}},
            {"channel": b, "type": "x.one", "data": {"n": 2}},
            {"channel": a, "type": "x.two", "data": {"n": 3}},
        ]
        response = await api.post("/api/v1/batch", json={"events": events})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [(r["channel"], r["offset"]) for r in results] == [(a, 1), (b, 1), (a, 2)]
        response = await api.post(
            "/api/v1/broadcast", json={"channels": [a, b, c], "type": "x.all", "data": {"z": 1}}
        )
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [(r["channel"], r["offset"]) for r in results] == [(a, 3), (b, 2), (c, 1)]
        got = await ws.events(2)
        assert [(e["type"], e["offset"], e["data"]) for e in got] == [
            ("x.one", 1, {"n": 2}),
            ("x.all", 2, {"z": 1}),
        ]
        doc = await history(api, c)
        assert [e["type"] for e in doc["events"]] == ["x.all"]


async def test_ephemeral_publish_is_delivered_not_stored(srv: ServerProcess) -> None:
    channel = fresh("match")
    async with http(srv) as api, ws_connect(srv) as ws:
        await ws.subscribe(channel)
        result = await publish(api, channel, "reaction", {"emoji": "fire"}, ephemeral=True)
        assert result["offset"] is None
        assert result["epoch"] is None
        got = await ws.recv_quiet()
        assert got == {
            "type": "reaction",
            "channel": channel,
            "ts": result["ts"],
            "data": {"emoji": "fire"},
        }
        stored = await publish(api, channel, "score.updated", {"home": 1})
        assert stored["offset"] == 1
        doc = await history(api, channel)
        assert [e["type"] for e in doc["events"]] == ["score.updated"]


# -- reading ----------------------------------------------------------------------------------


async def test_history_paging(srv: ServerProcess) -> None:
    channel = fresh()
    async with http(srv) as api:
        response = await api.post(
            "/api/v1/batch",
            json={
                "events": [{"channel": channel, "type": "p.n", "data": {"i": i}} for i in range(25)]
            },
        )
        assert response.status_code == 200
        pages = []
        since = 0
        while True:
            doc = await history(api, channel, since=since, limit=10)
            assert doc["complete"] is True
            assert doc["position"]["offset"] == 25
            assert doc["first"] == 1
            if not doc["events"]:
                break
            pages.append([e["offset"] for e in doc["events"]])
            since = doc["events"][-1]["offset"]
        assert pages == [list(range(1, 11)), list(range(11, 21)), list(range(21, 26))]
        event = (await history(api, channel, since=24))["events"][0]
        assert set(event) == {"type", "channel", "offset", "epoch", "ts", "data"}
        assert event["data"] == {"i": 24}
        empty = await history(api, fresh())
        assert (empty["events"], empty["position"]["offset"], empty["complete"]) == ([], 0, True)


async def test_history_trimmed_is_not_complete(srv: ServerProcess) -> None:
    channel = fresh("short")
    async with http(srv) as api:
        for i in range(12):
            await publish(api, channel, "p.n", {"i": i})
        # The retention task runs every 0.2 s here; wait for it to keep the last 5.
        deadline = asyncio.get_running_loop().time() + timeout(10)
        while (doc := await history(api, channel))["first"] != 8:
            assert asyncio.get_running_loop().time() < deadline, doc
            await asyncio.sleep(0.05)
        assert [e["offset"] for e in doc["events"]] == [8, 9, 10, 11, 12]
        assert doc["complete"] is False
        assert (await history(api, channel, since=7))["complete"] is True
        assert (await history(api, channel, since=3))["complete"] is False
        # A client resuming from before the trimmed range is told to reload, not given a part.
        async with ws_connect(srv) as ws:
            epoch = doc["position"]["epoch"]
            subscribed = await ws.subscribe(channel, since={"offset": 3, "epoch": epoch})
            assert subscribed["recovered"] is False
            assert await ws.barrier() == []


async def test_presence_members_and_channel_list(srv: ServerProcess) -> None:
    channel = fresh()
    async with (
        http(srv) as api,
        ws_connect(srv, token("p1", name="Ann")) as one,
        ws_connect(srv, token("p2")) as two,
    ):
        await one.subscribe(channel)
        await two.subscribe(channel)
        await publish(api, channel, "a.b", {})
        response = await api.get(f"/api/v1/channels/{channel}/presence")
        assert response.status_code == 200, response.text
        doc = response.json()
        assert doc["channel"] == channel
        assert doc["count"] == 2
        members = sorted(doc["members"], key=lambda m: m["id"])
        assert [(m["id"], m.get("name")) for m in members] == [("p1", "Ann"), ("p2", None)]
        assert all(m["client"].startswith("c-") for m in members)
        listed = (await api.get("/api/v1/channels", params={"prefix": channel})).json()
        assert listed["channels"] == [
            {
                "channel": channel,
                "offset": 1,
                "epoch": listed["channels"][0]["epoch"],
                "subscribers": 2,
            }
        ]
    async with http(srv) as api:
        deadline = asyncio.get_running_loop().time() + timeout(10)
        while (await api.get(f"/api/v1/channels/{channel}/presence")).json()["count"]:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)


# -- operations -------------------------------------------------------------------------------


async def test_health_ready_and_metrics(srv: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=srv.url, timeout=timeout(10)) as raw:
        assert (await raw.get("/healthz")).json() == {"status": "ok"}
        ready = await raw.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"
        async with ws_connect(srv, token("p1")) as ws:
            channel = fresh()
            await ws.subscribe(channel)
            async with http(srv) as api:
                await publish(api, channel, "m.n", {})
            await ws.events(1)
            response = await raw.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = response.text
    assert metric(text, "croupier_connections") >= 1
    assert metric(text, "croupier_subscriptions") >= 1
    assert metric(text, "croupier_connections_opened_total") >= 1
    assert metric(text, "croupier_events_published_total") >= 1
    assert metric(text, "croupier_events_delivered_total") >= 1
    assert metric(text, "croupier_slow_consumer_disconnects_total") == 0
    assert metric(text, "croupier_publish_seconds_count") >= 1
    assert metric(text, "croupier_log_append_seconds_count") >= 1
    assert 'croupier_publish_seconds_bucket{le="0.005"}' in text
    assert "croupier_log_append_seconds_bucket" in text


async def test_api_key_from_environment_has_every_scope(srv: ServerProcess) -> None:
    async with http(srv, API_KEY) as api:
        await publish(api, fresh(), "a.b", {})
        assert (await api.get("/api/v1/channels")).status_code == 200
        assert (await api.post("/api/v1/tokens", json={"sub": "x"})).status_code == 200
