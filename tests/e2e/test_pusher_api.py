"""Pusher's HTTP API (issue 20) driven by the ``pusher`` server SDK from PyPI.

What the SDK triggers is a stored Croupier event: native clients get it live, the history
API holds it with its offset, and the channel routes count the channel's subscribers.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pusher
import pytest

from tests.support import ServerProcess, running_server, token

from .wsclient import WsClient, history, http, write_config, ws_connect

pytestmark = pytest.mark.e2e

APP_ID, KEY, SECRET = "4242", "app-key", "app-secret"
CONFIG = """
[[pusher.apps]]
id = "4242"
key = "app-key"
secret = "app-secret"
[[pusher.apps.channels]]
prefix = "private-tournament-"
namespace = "tournament"
"""
READER = token("reader", channels=["pusher:*"])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    config = write_config(tmp_path / "croupier.toml", CONFIG)
    with running_server(tmp_path, config=config) as srv:
        yield srv


@pytest.fixture
async def api(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with http(server) as client:
        yield client


def sdk(
    server: ServerProcess, secret: str = SECRET, app_id: str = APP_ID, key: str = KEY
) -> pusher.Pusher:
    return pusher.Pusher(
        app_id=app_id, key=key, secret=secret, host="127.0.0.1", port=server.port, ssl=False
    )


async def call(fn: Any, *args: Any, **kw: Any) -> Any:
    """Run a blocking SDK call off the event loop."""
    return await asyncio.to_thread(fn, *args, **kw)


async def test_a_triggered_event_is_stored_and_reaches_native_clients(
    server: ServerProcess, api: httpx.AsyncClient
) -> None:
    async with ws_connect(server, READER) as ws:
        await ws.subscribe("pusher:orders")
        answer = await call(sdk(server).trigger, ["orders"], "order.paid", {"id": 7, "total": 12})
        assert answer == {}
        event = await ws.expect("order.paid")
    assert event["channel"] == "pusher:orders"
    assert event["data"] == {"id": 7, "total": 12}
    stored = await history(api, "pusher:orders")
    assert [(e["type"], e["offset"], e["data"]) for e in stored["events"]] == [
        ("order.paid", 1, {"id": 7, "total": 12})
    ]
    assert event["offset"] == 1
    assert event["epoch"] == stored["position"]["epoch"]


async def test_several_channels_a_batch_and_laravel_event_names(
    server: ServerProcess, api: httpx.AsyncClient
) -> None:
    client = sdk(server)
    await call(client.trigger, ["orders", "private-tournament-42"], "App\\Events\\Paid", "x")
    await call(
        client.trigger_batch,
        [
            {"channel": "orders", "name": "second", "data": {"n": 2}},
            {"channel": "presence-room", "name": "third", "data": "plain"},
        ],
    )
    orders = await history(api, "pusher:orders")
    assert [(e["type"], e["data"]) for e in orders["events"]] == [
        ("App\\Events\\Paid", "x"),
        ("second", {"n": 2}),
    ]
    # A mapped private channel lives in the Croupier namespace of its rule.
    tournament = await history(api, "tournament:42")
    assert [e["type"] for e in tournament["events"]] == ["App\\Events\\Paid"]
    room = await history(api, "pusher:presence-room")
    assert [e["data"] for e in room["events"]] == ["plain"]


async def test_channel_routes_count_subscribers(server: ServerProcess) -> None:
    client = sdk(server)
    assert await call(client.channel_info, "orders", ["subscription_count"]) == {
        "occupied": False,
        "subscription_count": 0,
    }
    async with (
        ws_connect(server, token("ann", channels=["pusher:*"])) as ann,
        ws_connect(server, token("bob", channels=["pusher:*"])) as bob,
        ws_connect(server, token("bob", channels=["pusher:*"])) as bob_again,
    ):
        for ws in (ann, bob, bob_again):
            await ws.subscribe("pusher:presence-room")
        await ann.subscribe("pusher:orders")
        info = await call(
            client.channel_info, "presence-room", ["subscription_count", "user_count"]
        )
        assert info == {"occupied": True, "subscription_count": 3, "user_count": 2}
        users = await call(client.users_info, "presence-room")
        assert sorted(u["id"] for u in users["users"]) == ["ann", "bob"]
        listed = await call(client.channels_info)
        assert set(listed["channels"]) == {"orders", "presence-room"}
        presence = await call(client.channels_info, "presence-", ["user_count"])
        assert presence == {"channels": {"presence-room": {"user_count": 2}}}
        answer = await call(
            client.trigger, ["orders"], "ping.me", {}, None
        )  # info is not asked: an empty answer
        assert answer == {}


@pytest.mark.parametrize("change", ["secret", "app"])
async def test_wrong_signatures_are_refused_and_nothing_is_stored(
    server: ServerProcess, api: httpx.AsyncClient, change: str
) -> None:
    client = sdk(server, secret="wrong") if change == "secret" else sdk(server, app_id="9")
    error = pusher.errors.PusherBadAuth if change == "secret" else pusher.errors.PusherBadStatus
    with pytest.raises(error):
        await call(client.trigger, ["orders"], "order.paid", {"id": 1})
    assert (await history(api, "pusher:orders"))["events"] == []


async def test_stale_and_unsigned_requests_are_refused(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.url) as raw:
        unsigned = await raw.post(f"/apps/{APP_ID}/events", json={"name": "a", "data": "b"})
        assert unsigned.status_code == 401
        assert "auth_signature" in unsigned.json()["error"]["message"]
        # A request signed correctly eleven minutes ago.
        client = pusher.pusher_client.PusherClient(
            app_id=APP_ID, key=KEY, secret=SECRET, host="127.0.0.1", port=server.port
        )
        request = client.trigger.make_request(["orders"], "late", "x")
        then = str(int(time.time()) - 660)
        params = dict(request.query_params, auth_timestamp=then)
        params.pop("auth_signature")
        query = "&".join(f"{k}={params[k]}" for k in sorted(params))
        signed = pusher.signature.sign(SECRET, f"POST\n{request.path}\n{query}")
        stale = await raw.post(
            request.path + "?" + query + "&auth_signature=" + signed,
            content=request.body,
            headers={"Content-Type": "application/json"},
        )
        assert stale.status_code == 401
        assert "clock" in stale.json()["error"]["message"]


async def test_bad_requests_get_a_clear_400(server: ServerProcess) -> None:
    client = sdk(server)
    with pytest.raises(pusher.errors.PusherBadRequest, match="reserved"):
        await call(client.trigger, ["orders"], "pusher:subscribe", {})
    with pytest.raises(pusher.errors.PusherBadRequest, match="encrypted"):
        await call(
            client.trigger_batch,
            [{"channel": "private-encrypted-x", "name": "a", "data": "b"}],
            True,
        )
    with pytest.raises(pusher.errors.PusherBadRequest, match="presence"):
        await call(client.users_info, "orders")


# A second app, whose channels live in the namespace ``shop``.
OTHER_ID, OTHER_KEY, OTHER_SECRET = "4343", "other-key", "other-secret"
TWO_APPS = (
    CONFIG
    + f"""
[[pusher.apps]]
id = "{OTHER_ID}"
key = "{OTHER_KEY}"
secret = "{OTHER_SECRET}"
namespace = "shop"
"""
)


@asynccontextmanager
async def pusher_user(
    server: ServerProcess, key: str, signer: pusher.Pusher, user: str, channel: str
) -> AsyncIterator[WsClient]:
    """A bare Pusher client of the app ``key`` (whose backend is ``signer``), signed in as
    ``user`` and subscribed to the public ``channel``."""
    url = f"{server.url}/app/{key}?protocol=7"
    # No automatic close reply: the server may have gone by then, and aiohttp would replace
    # the close code it received with 1006 when the reply fails.
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, autoclose=False) as ws,
    ):
        client = WsClient(ws)
        established = await client.recv()
        assert established["event"] == "pusher:connection_established"
        socket_id = json.loads(established["data"])["socket_id"]
        signed = signer.authenticate_user(socket_id, {"id": user})
        await client.send({"event": "pusher:signin", "data": signed})
        assert (await client.recv())["event"] == "pusher:signin_success"
        await client.send({"event": "pusher:subscribe", "data": {"channel": channel}})
        assert (await client.recv())["event"] == "pusher_internal:subscription_succeeded"
        yield client


async def test_terminate_ends_only_that_apps_users_connections(tmp_path: Path) -> None:
    """Ann's connections to the app are closed with 4009; Bob's, Ann's to another app and
    Ann's native connection (a player with the same id) stay open."""
    with running_server(tmp_path, config=write_config(tmp_path / "c.toml", TWO_APPS)) as server:
        here, there = sdk(server), sdk(server, OTHER_SECRET, OTHER_ID, OTHER_KEY)
        async with (
            pusher_user(server, KEY, here, "ann", "orders") as ann,
            pusher_user(server, KEY, here, "ann", "orders") as ann_again,
            pusher_user(server, KEY, here, "bob", "orders") as bob,
            pusher_user(server, OTHER_KEY, there, "ann", "orders") as ann_elsewhere,
            ws_connect(server, token("ann", channels=["pusher:*"])) as ann_native,
        ):
            await ann_native.subscribe("pusher:orders")
            assert await call(here.terminate_user_connections, "ann") == {}
            for terminated in (ann, ann_again):
                seen = await terminated.wait_closed()
                assert [(d["event"], d["data"]["code"]) for d in seen] == [("pusher:error", 4009)]
                assert terminated.ws.close_code == 4009
            await call(here.trigger, ["orders"], "after", {"n": 1})
            await call(there.trigger, ["orders"], "after", {"n": 2})
            for client in (bob, ann_elsewhere):
                event = await client.recv()
                assert event["event"] == "after", event
            assert (await ann_native.expect("after"))["data"] == {"n": 1}
