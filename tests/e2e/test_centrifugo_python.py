"""The real ``centrifuge-python`` SDK against ``/connection/websocket``, and one event reaching
every kind of client: native WebSocket, SSE and a Centrifugo SDK."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import httpx_sse
import orjson
import pytest
from aiohttp import web
from centrifuge import (
    Client,
    ReplyError,
    StreamPosition,
)

from croupier.app import build_app
from croupier.config import Settings
from croupier.core.channels import Claims
from croupier.errors import Forbidden
from croupier.gateway import Gateway
from tests.support import SECRET, ServerProcess, free_port, running_server, timeout, token

from .browser import Publisher
from .centrifugo_sdk import Recorder, fresh, shared_server
from .sseclient import publish
from .wsclient import ws_connect

pytestmark = pytest.mark.e2e


def url(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.port}/connection/websocket"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("centrifugo-py")
    with shared_server(tmp) as server:
        yield server


@contextlib.asynccontextmanager
async def connected(
    server: ServerProcess,
    player: str | None = "p1",
    get_token: Callable[[], Awaitable[str]] | None = None,
    **token_claims: Any,
) -> AsyncIterator[tuple[Client, Recorder]]:
    events = Recorder()
    client = Client(
        url(server),
        events=events,
        token=token(player, **token_claims) if player else "",
        get_token=get_token,
        min_reconnect_delay=0.05,
        max_reconnect_delay=0.4,
        timeout=timeout(5),
    )
    await client.connect()
    try:
        yield client, events
    finally:
        await client.disconnect()


async def test_subscribe_receive_publish_presence_history(srv: ServerProcess) -> None:
    tournament, room = fresh("tournament"), fresh("room")
    async with connected(srv, name="Ann") as (client, events):
        await events.wait("connected")
        sub = client.new_subscription(tournament, events=events)
        await sub.subscribe()
        [subscribed] = await events.wait("subscribed")
        assert (subscribed.recoverable, subscribed.positioned) == (True, True)
        stored = await asyncio.to_thread(publish, srv, tournament, "t.score", {"score": 5})
        [pub] = await events.wait("publication")
        assert (pub.pub.data, pub.pub.offset) == ({"score": 5}, 1)
        assert pub.pub.tags == {"type": "t.score"}

        history = await sub.history(limit=10)
        assert [(p.offset, p.data) for p in history.publications] == [(1, {"score": 5})]
        assert (history.offset, history.epoch) == (1, stored["epoch"])
        since = await sub.history(limit=10, since=StreamPosition(1, stored["epoch"]))
        assert since.publications == []

        chat = client.new_subscription(room, events=events)
        await chat.subscribe()
        await events.wait("subscribed", 2)
        await chat.publish({"type": "chat.message", "text": "hi"})
        pubs = await events.wait("publication", 2)
        assert pubs[-1].pub.data == {"text": "hi", "from": {"id": "p1", "name": "Ann"}}
        presence = await chat.presence()
        assert [c.user for c in presence.clients.values()] == ["p1"]
        stats = await chat.presence_stats()
        assert (stats.num_clients, stats.num_users) == (1, 1)

        with pytest.raises(ReplyError) as refused:
            await client.publish(fresh("lobby"), {"news": 1})
        assert refused.value.code == 103  # players may not publish in the lobby
        with pytest.raises(ReplyError) as no_rpc:
            await client.rpc("teleport", {})
        assert no_rpc.value.code == 108

        other = client.new_subscription("player:1001:p2", events=events)
        await other.subscribe()
        [gone] = await events.wait("unsubscribed")
        assert gone.code == 103


async def test_refresh_keeps_the_connection_and_refuses_another_player(
    srv: ServerProcess,
) -> None:
    tournament = fresh("tournament")
    handed = asyncio.Event()

    async def same_player() -> str:
        handed.set()
        return token("p1", ttl=3600)

    async with connected(srv, get_token=same_player, ttl=8) as (client, events):
        sub = client.new_subscription(tournament, events=events)
        await sub.subscribe()
        await events.wait("subscribed")
        await asyncio.wait_for(handed.wait(), timeout(12))
        await asyncio.sleep(timeout(3))  # past the first token's expiry
        await asyncio.to_thread(publish, srv, tournament, "t.after", {"n": 1})
        await events.wait("publication")
        assert len(events.of("connected")) == 1
        assert events.of("disconnected") == []

    async def someone_else() -> str:
        return token("p2", ttl=3600)

    async with connected(srv, get_token=someone_else, ttl=4) as (client, events):
        [gone] = await events.wait("disconnected", seconds=15)
        assert gone.code == 103  # a refresh must be for the same player


async def test_not_recovered_when_history_was_trimmed(srv: ServerProcess) -> None:
    channel = fresh("short")
    async with connected(srv, None) as (client, events):
        sub = client.new_subscription(channel, events=events)
        await sub.subscribe()
        await events.wait("subscribed")
        await asyncio.to_thread(publish, srv, channel, "t.x", {"n": 1})
        await events.wait("publication")
        await client.disconnect()
        for n in range(2, 12):
            await asyncio.to_thread(publish, srv, channel, "t.x", {"n": n})
        async with httpx.AsyncClient(base_url=srv.url, headers=srv.headers) as api:
            async with asyncio.timeout(timeout(10)):
                while True:
                    r = await api.get(f"/api/v1/channels/{channel}/history")
                    if r.json()["events"][0]["offset"] > 2:
                        break
                    await asyncio.sleep(0.1)
        await client.connect()
        subscribed = await events.wait("subscribed", 2)
        assert subscribed[-1].was_recovering is True
        assert subscribed[-1].recovered is False
        assert subscribed[-1].stream_position.offset == 11
        assert len(events.of("publication")) == 1


TOTAL = 60


async def test_resume_across_a_graceful_restart_and_a_crash(tmp_path: Path) -> None:
    channel = "tournament:py-resume"
    with running_server(tmp_path) as server:
        async with connected(server) as (client, events):
            sub = client.new_subscription(channel, events=events)
            await sub.subscribe()
            await events.wait("subscribed")
            publisher = Publisher(server, [channel], TOTAL)
            try:
                publisher.start()
                await events.wait("publication", 15, 30)
                await asyncio.to_thread(server.stop)
                await asyncio.to_thread(server.start)
                await events.wait("publication", 35, 30)
                await asyncio.to_thread(server.restart)
                await asyncio.to_thread(publisher.join, timeout(60))
                assert publisher.error is None, publisher.error
                await events.wait("publication", TOTAL, 30)
                await asyncio.sleep(0.3)  # a duplicate would show up now
            finally:
                publisher.stop.set()
            pubs = [ctx.pub for ctx in events.of("publication")]
            resumed = events.of("subscribed")[1:]
    assert [p.data["n"] for p in pubs] == list(range(1, TOTAL + 1))
    assert [p.offset for p in pubs] == list(range(1, TOTAL + 1))
    assert len(resumed) >= 2
    assert all(s.recovered and s.was_recovering for s in resumed)


async def test_one_event_reaches_native_sse_and_centrifugo_clients_once_each(
    srv: ServerProcess,
) -> None:
    channel = fresh("tournament")
    player = token("p1")
    async with (
        connected(srv) as (client, events),
        ws_connect(srv, player) as native,
        httpx.AsyncClient(timeout=timeout(10)) as http,
        httpx_sse.aconnect_sse(
            http, "GET", f"{srv.url}/sse", params={"channel": channel, "token": player}
        ) as sse,
    ):
        sub = client.new_subscription(channel, events=events)
        await sub.subscribe()
        await events.wait("subscribed")
        await native.subscribe(channel)
        stream = sse.aiter_sse()
        assert json.loads((await anext(stream)).data)["type"] == "connected"
        await asyncio.to_thread(publish, srv, channel, "t.once", {"n": 1})

        [pub] = await events.wait("publication")
        assert (pub.pub.data, pub.pub.offset) == ({"n": 1}, 1)
        native_events = await native.events(1)
        assert [(e["type"], e["data"]) for e in native_events] == [("t.once", {"n": 1})]
        async with asyncio.timeout(timeout(10)):
            async for message in stream:
                doc = json.loads(message.data)
                if doc.get("type") == "t.once":
                    assert doc["data"] == {"n": 1}
                    break
        # Once each: a marker published next is the very next thing everyone gets.
        await asyncio.to_thread(publish, srv, channel, "t.marker", {})
        pubs = await events.wait("publication", 2)
        assert [p.pub.tags["type"] for p in pubs] == ["t.once", "t.marker"]
        assert [e["type"] for e in await native.events(1)] == ["t.marker"]
        async with asyncio.timeout(timeout(10)):
            async for message in stream:
                doc = json.loads(message.data)
                if "offset" in doc:
                    assert doc["type"] == "t.marker"
                    break


async def test_rpc_and_send_reach_the_handlers_a_service_registered() -> None:
    # In process, so a handler can be registered as a service would; the client still
    # talks to a real listening socket.
    gateway = Gateway(Settings(database_url="memory://", jwt_secret=SECRET))
    sent: list[Any] = []
    arrived = asyncio.Event()

    async def whoami(claims: Claims | None, data: Any) -> Any:
        if data.get("fail"):
            raise Forbidden("not you")
        if data.get("crash"):
            raise ValueError("a bug in the handler")
        return {"user": None if claims is None else claims.sub, "echo": data}

    async def inbox(claims: Claims | None, data: Any) -> None:
        sent.append((None if claims is None else claims.sub, data))
        arrived.set()

    gateway.hooks.handle_rpc("whoami", whoami)
    gateway.hooks.handle_rpc("", inbox)
    runner = web.AppRunner(build_app(gateway))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        client = Client(
            f"ws://127.0.0.1:{port}/connection/websocket", token=token("p4"), timeout=timeout(5)
        )
        await client.connect()
        try:
            result = await client.rpc("whoami", {"n": 1})
            assert result.data == {"user": "p4", "echo": {"n": 1}}
            with pytest.raises(ReplyError) as refused:
                await client.rpc("whoami", {"fail": True})
            assert refused.value.code == 103
            with pytest.raises(ReplyError) as crashed:
                await client.rpc("whoami", {"crash": True})
            assert crashed.value.code == 100  # and the connection stays
            assert (await client.rpc("whoami", {"n": 2})).data["echo"] == {"n": 2}
        finally:
            await client.disconnect()
        # centrifuge-python has no send(): the JavaScript SDK's one-way message, as it frames it.
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"ws://127.0.0.1:{port}/connection/websocket") as ws,
        ):
            await ws.send_str(orjson.dumps({"id": 1, "connect": {"token": token("p4")}}).decode())
            assert "connect" in orjson.loads((await ws.receive(timeout(5))).data)
            await ws.send_str('{"send":{"data":{"note":"hi"}}}')
            await asyncio.wait_for(arrived.wait(), timeout(5))
        assert sent == [("p4", {"note": "hi"})]
    finally:
        await runner.cleanup()


async def test_frames_that_cannot_be_read_close_the_connection_as_centrifugo_does(
    srv: ServerProcess,
) -> None:
    async def closing(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMessage:
        async with asyncio.timeout(timeout(10)):
            while (message := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                pass
        return message

    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url(srv)) as ws:
            await ws.send_str('{"id":1,"connect":{}}')
            assert "connect" in orjson.loads((await ws.receive(timeout(5))).data)
            data = {"type": "chat.message", "text": "x" * 70_000}  # over max_frame_bytes
            await ws.send_str(
                orjson.dumps({"id": 2, "publish": {"channel": "room:1", "data": data}}).decode()
            )
            closed = await closing(ws)
            assert (closed.data, closed.extra) == (1009, "message size limit exceeded")
        async with http.ws_connect(url(srv)) as ws:
            await ws.send_str('{"id":1,"connect":{}}')
            assert "connect" in orjson.loads((await ws.receive(timeout(5))).data)
            for n in range(2, 200):  # far over the per-connection message rate
                await ws.send_str(f'{{"id":{n},"ping":{{}}}}')
            closed = await closing(ws)
            assert (closed.data, closed.extra) == (3013, "too many requests")  # SDKs come back
